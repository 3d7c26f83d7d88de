"""The embedded default store: SQLite (WAL) on local disk, with every index held in memory.

Durability: each commit is one SQLite transaction in WAL mode with ``synchronous=NORMAL``, so a crash
or restart of the process keeps everything committed (a power loss may lose the last moments). Reads
of timelines, tracks and config are served from memory; fragment and header bytes from SQLite.

Threads, so that neither the event loop nor a commit waits on disk housekeeping: one writer thread
(every write, in order), a small pool of reader threads with their own connections (WAL readers never
block the writer), and one checkpoint thread. Inline auto-checkpoints are off: they copy the WAL into
the database and fsync on the committing thread, which put 100+ ms stalls into publish latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.errors import StoreError, StoreUnavailable
from services.shared.store.base import CommitResult
from services.shared.store.codec import from_json, to_json
from services.shared.store.index import StoreIndex
from services.shared.timeline import FragmentEntry, TrackTimeline

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (name TEXT PRIMARY KEY, config TEXT NOT NULL, epoch_ms INTEGER);
CREATE TABLE IF NOT EXISTS meta (channel TEXT, key TEXT, value BLOB, expires_ms INTEGER,
    PRIMARY KEY (channel, key));
CREATE TABLE IF NOT EXISTS tracks (channel TEXT, name TEXT, record TEXT NOT NULL, init BLOB NOT NULL,
    expires_ms INTEGER, PRIMARY KEY (channel, name));
CREATE TABLE IF NOT EXISTS fragments (channel TEXT, track TEXT, decode_time INTEGER, entry TEXT NOT NULL,
    data BLOB NOT NULL, expires_ms INTEGER, PRIMARY KEY (channel, track, decode_time));
CREATE INDEX IF NOT EXISTS fragments_expiry ON fragments (expires_ms);
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class EmbeddedStore:
    """``Store`` on one SQLite file under ``data_dir``."""

    def __init__(
        self, data_dir: Path, *, clock_ms: Callable[[], int] = _now_ms, checkpoint_interval_s: float = 1.0
    ) -> None:
        self._path = Path(data_dir) / "headwater.sqlite3"
        self._clock_ms = clock_ms
        self._checkpoint_interval_s = checkpoint_interval_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headwater-sqlite-w")
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="headwater-sqlite-r")
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headwater-sqlite-c")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None
        self._index = StoreIndex()

    # lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open_sync)
        self._checkpoint_task = asyncio.create_task(self._checkpoint_forever())

    async def close(self) -> None:
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoint_task
        for pool in (self._readers, self._checkpointer):
            pool.shutdown(wait=True)
        for conn in self._read_conns:
            conn.close()
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._read(lambda db: db.execute("SELECT 1").fetchone())

    async def _checkpoint_forever(self) -> None:
        """PASSIVE checkpoints from their own connection: never block the writer or readers."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._checkpoint_interval_s)
            try:
                await loop.run_in_executor(
                    self._checkpointer, lambda: self._reader_conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
                )
            except sqlite3.Error:  # a busy database just waits for the next round
                continue

    def _open_sync(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.executescript(_SCHEMA)
        self._db = db
        self._load(self._clock_ms())

    def _load(self, now_ms: int) -> None:
        db = self._conn()
        for config, epoch in db.execute("SELECT config, epoch_ms FROM channels"):
            channel = from_json(ChannelConfig, config)
            self._index.put_channel(channel)
            if epoch is not None:
                self._index.set_epoch(channel.name, epoch)
        for (record,) in db.execute("SELECT record FROM tracks WHERE expires_ms > ?", (now_ms,)):
            self._index.put_track(from_json(TrackRecord, record))
        rows = db.execute(
            "SELECT channel, track, entry FROM fragments WHERE expires_ms > ? "
            "ORDER BY channel, track, decode_time",
            (now_ms,),
        )
        for channel, track, entry in rows:
            self._index.timeline(channel, track).append(from_json(FragmentEntry, entry))

    # helpers -----------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("embedded store is not open")
        return self._db

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            self._read_conns.append(conn)
        return conn

    async def _run(self, fn: Callable[[], T], executor: ThreadPoolExecutor | None = None) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor or self._executor, fn)
        except sqlite3.OperationalError as exc:  # disk full, locked, I/O error
            raise StoreUnavailable(f"embedded store: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"embedded store: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(lambda: fn(self._reader_conn()), self._readers)

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        self._conn().execute(sql, params)

    # channels ----------------------------------------------------------------------------------

    async def put_channel(self, config: ChannelConfig) -> None:
        await self._run(
            lambda: self._write(
                "INSERT INTO channels (name, config) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET config = excluded.config",
                (config.name, to_json(config)),
            )
        )
        self._index.put_channel(config)

    async def get_channel(self, name: str) -> ChannelConfig | None:
        return self._index.get_channel(name)

    async def list_channels(self) -> list[ChannelConfig]:
        return self._index.list_channels()

    async def delete_channel(self, name: str) -> None:
        def delete() -> None:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                for table, column in (
                    ("channels", "name"),
                    ("meta", "channel"),
                    ("tracks", "channel"),
                    ("fragments", "channel"),
                ):
                    db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

        await self._run(delete)
        self._index.drop_channel(name)

    async def set_epoch_if_absent(self, channel: str, epoch_ms: int) -> int:
        current = self._index.get_epoch(channel)
        if current is not None:
            return current
        await self._run(
            lambda: self._write(
                "INSERT INTO channels (name, config, epoch_ms) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET epoch_ms = COALESCE(channels.epoch_ms, excluded.epoch_ms)",
                (channel, to_json(self._index.get_channel(channel) or ChannelConfig(name=channel)), epoch_ms),
            )
        )
        return self._index.set_epoch(channel, epoch_ms)

    async def get_epoch(self, channel: str) -> int | None:
        return self._index.get_epoch(channel)

    async def put_meta(self, channel: str, key: str, value: bytes, *, ttl_s: int) -> None:
        expires = self._clock_ms() + ttl_s * 1000
        await self._run(
            lambda: self._write(
                "INSERT OR REPLACE INTO meta (channel, key, value, expires_ms) VALUES (?, ?, ?, ?)",
                (channel, key, value, expires),
            )
        )

    async def get_meta(self, channel: str, key: str) -> bytes | None:
        now = self._clock_ms()
        row = await self._read(
            lambda db: db.execute(
                "SELECT value FROM meta WHERE channel = ? AND key = ? AND expires_ms > ?",
                (channel, key, now),
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    # tracks ------------------------------------------------------------------------------------

    async def put_track(self, record: TrackRecord, init: bytes, *, ttl_s: int) -> None:
        expires = self._clock_ms() + ttl_s * 1000
        await self._run(
            lambda: self._write(
                "INSERT OR REPLACE INTO tracks (channel, name, record, init, expires_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.channel, record.name, to_json(record), init, expires),
            )
        )
        self._index.put_track(record)

    async def get_tracks(self, channel: str) -> list[TrackRecord]:
        return self._index.get_tracks(channel)

    async def delete_track(self, channel: str, track: str) -> None:
        def delete() -> None:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.execute("DELETE FROM tracks WHERE channel = ? AND name = ?", (channel, track))
                db.execute("DELETE FROM fragments WHERE channel = ? AND track = ?", (channel, track))

        await self._run(delete)
        self._index.drop_track(channel, track)

    async def get_init(self, channel: str, track: str) -> bytes | None:
        row = await self._read(
            lambda db: db.execute(
                "SELECT init FROM tracks WHERE channel = ? AND name = ?", (channel, track)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    # fragments ---------------------------------------------------------------------------------

    async def commit_fragment(
        self, channel: str, track: str, entry: FragmentEntry, data: bytes, *, ttl_s: int
    ) -> CommitResult:
        if self._index.classify(channel, track, entry) is CommitResult.DUPLICATE:
            return CommitResult.DUPLICATE
        expires = self._clock_ms() + ttl_s * 1000
        await self._run(
            lambda: self._write(
                "INSERT OR REPLACE INTO fragments (channel, track, decode_time, entry, data, expires_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (channel, track, entry.decode_time, to_json(entry), data, expires),
            )
        )
        return self._index.apply(channel, track, entry)

    async def get_timeline(self, channel: str, track: str) -> TrackTimeline:
        return self._index.find_timeline(channel, track) or TrackTimeline()

    async def get_fragment(self, channel: str, track: str, decode_time: int) -> bytes | None:
        row = await self._read(
            lambda db: db.execute(
                "SELECT data FROM fragments WHERE channel = ? AND track = ? AND decode_time = ?",
                (channel, track, decode_time),
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    # retention ---------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete what outlived its TTL, from disk and from the in-memory indexes."""
        now = self._clock_ms()

        def delete() -> list[tuple[str, str, int]]:
            db = self._conn()
            gone = db.execute(
                "SELECT channel, track, MAX(decode_time) FROM fragments WHERE expires_ms <= ? "
                "GROUP BY channel, track",
                (now,),
            ).fetchall()
            db.execute("DELETE FROM fragments WHERE expires_ms <= ?", (now,))
            db.execute("DELETE FROM tracks WHERE expires_ms <= ?", (now,))
            db.execute("DELETE FROM meta WHERE expires_ms <= ?", (now,))
            return [(c, t, int(d)) for c, t, d in gone]

        removed = 0
        for channel, track, newest_gone in await self._run(delete):
            timeline = self._index.find_timeline(channel, track)
            if timeline is not None:
                entry = timeline.find(newest_gone)
                removed += timeline.drop_before(entry.end_time if entry else newest_gone + 1)
        return removed
