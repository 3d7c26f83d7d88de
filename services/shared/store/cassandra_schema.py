"""The CQL schema of the Cassandra store, every statement it runs, and how their rows read. No I/O.

Tables, by object class (base.py) and how each is read:

  channels  (name) config                  no TTL; read whole at start. Explicit deletes only.
  epochs    (channel) epoch_ms             set once per channel with a lightweight transaction
            (INSERT ... IF NOT EXISTS). A table of its own so that only Paxos ever writes it: mixing
            LWT and plain writes on the same cells loses the LWT's guarantees.
  meta      ((channel), key) value         TTL = the channel's init TTL; read by key.
  tracks    ((channel), name) record, init TTL = init TTL; init segments are small (a few KB), so
            they sit beside the record. Read whole at start (record only).
  objects   ((channel, track, decode_time), generation DESC, chunk) data
            + static committed, chunk_count, total_size, crc32
            Fragment bytes, never one huge cell: chunks of at most ``chunk_bytes``, then the static
            header that commits them, written once every chunk is acknowledged (a fragment of one
            chunk is written with its header: one row write, atomic, one round trip). One partition
            per fragment keeps partitions small and spreads a track's writes over the ring. Each
            write is its own ``generation``: a real fragment replacing "slat" filler writes new rows
            and flips the header, so a reader never mixes chunks of two writes (the header names
            the generation to assemble and its CRC proves it whole).
  timeline  ((channel, track, bucket), decode_time) entry
            The timeline index, in partitions of one wall-clock hour of ingest time (``bucket``):
            a 24x7 channel never grows one partition forever, and loading a track reads only the
            buckets its segment TTL covers.

Retention: every write carries ``USING TTL`` for its object class (the caller's ``ttl_s``); no table
has a ``default_time_to_live``. ``objects`` and ``timeline`` are written in time order and only
expire, which is what TimeWindowCompactionStrategy is for: rows of one hour share SSTables, and a
whole SSTable is dropped, without compaction, once everything in it has expired. Windows of 1 hour
suit segment TTLs of about an hour (the default 65 min); a much longer DVR gives many windows
(7 days: 168), still workable. Channels with different TTLs share windows, so a window is freed only
when its longest-lived row expires. Read repair is off there: it would copy old rows into the
current window's SSTables and keep those alive past their time (quorum reads still see the newest
acknowledged write).

Tombstones and ``gc_grace_seconds``: gc grace is how long a deletion marker must be kept so that a
replica that missed the delete cannot bring the data back through repair. TTL'd data needs no such
guard (it expires on every replica by itself), so the TTL'd tables keep 3 hours (the hint window):
their tombstones go away soon. Explicit deletes do exist — deleting a channel or a track writes
partition tombstones into every TTL'd table — and a replica that stays down longer than 3 hours
past such a delete may bring the deleted rows back after repair; they then stay only until their
own TTL runs out and no index points at them. ``channels`` and ``epochs`` never expire, so they keep
Cassandra's default gc grace (10 days): a resurrected channel would otherwise live for ever.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from services.shared.errors import StoreError
from services.shared.store.codec import from_json
from services.shared.timeline import FragmentEntry

#: Width of one timeline partition, by ingest wall-clock time. Part of the on-disk format: changing
#: it makes stored timelines unreadable.
BUCKET_MS = 3_600_000
#: A header this close to its TTL may have outlived its chunks by the moments between their writes.
EXPIRY_SLACK_S = 2
#: gc_grace_seconds of the TTL'd tables (see the module docstring).
TTL_TABLE_GC_GRACE_S = 3 * 3600

_KEYSPACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
_REPLICATION_WORD = re.compile(r"[A-Za-z0-9_.]+")

_TIME_WINDOWED = (
    "compaction = {'class': 'TimeWindowCompactionStrategy',"
    " 'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}"
    " AND read_repair = 'NONE'"
)
_TTL_TABLE = f"default_time_to_live = 0 AND gc_grace_seconds = {TTL_TABLE_GC_GRACE_S}"


def bucket_of(time_ms: int) -> int:
    return time_ms // BUCKET_MS


def buckets_covering(start_ms: int, end_ms: int) -> list[int]:
    """The timeline buckets holding ingest times in [start_ms, end_ms], newest first."""
    return list(range(bucket_of(end_ms), bucket_of(start_ms) - 1, -1))


def keyspace_name(name: str) -> str:
    if not _KEYSPACE_NAME.fullmatch(name):
        raise ValueError(f"keyspace name {name!r} must be a letter then up to 47 letters, digits or '_'")
    return name


def keyspace_ddl(keyspace: str, replication: dict[str, object]) -> str:
    """CREATE KEYSPACE for e.g. {"class": "NetworkTopologyStrategy", "dc1": 3}."""
    pairs = []
    for key, value in replication.items():
        for word in (key, str(value)):
            if not _REPLICATION_WORD.fullmatch(word):
                raise ValueError(f"replication setting {word!r} is not a plain name or number")
        pairs.append(f"'{key}': '{value}'")
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace_name(keyspace)} "
        f"WITH replication = {{{', '.join(pairs)}}} AND durable_writes = true"
    )


def tables_ddl(ks: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {ks}.channels (name text PRIMARY KEY, config text)",
        f"CREATE TABLE IF NOT EXISTS {ks}.epochs (channel text PRIMARY KEY, epoch_ms bigint)",
        f"CREATE TABLE IF NOT EXISTS {ks}.meta (channel text, key text, value blob,"
        f" PRIMARY KEY ((channel), key)) WITH {_TTL_TABLE}",
        f"CREATE TABLE IF NOT EXISTS {ks}.tracks (channel text, name text, record text, init blob,"
        f" PRIMARY KEY ((channel), name)) WITH {_TTL_TABLE}",
        # Media bytes do not compress: compression would only cost CPU on every read and write.
        f"CREATE TABLE IF NOT EXISTS {ks}.objects (channel text, track text, decode_time bigint,"
        " generation bigint, chunk int, data blob,"
        " committed bigint static, chunk_count int static, total_size bigint static, crc32 bigint static,"
        " PRIMARY KEY ((channel, track, decode_time), generation, chunk))"
        " WITH CLUSTERING ORDER BY (generation DESC, chunk ASC)"
        f" AND {_TIME_WINDOWED} AND {_TTL_TABLE} AND compression = {{'enabled': 'false'}}",
        f"CREATE TABLE IF NOT EXISTS {ks}.timeline (channel text, track text, bucket bigint,"
        " decode_time bigint, entry text, PRIMARY KEY ((channel, track, bucket), decode_time))"
        f" WITH CLUSTERING ORDER BY (decode_time ASC) AND {_TIME_WINDOWED} AND {_TTL_TABLE}",
    ]


#: Statements that must not be retried blindly (lightweight transactions).
NOT_IDEMPOTENT = ("set_epoch", "delete_epoch")


def statements(ks: str) -> dict[str, str]:
    """Every statement the store runs, by name; each is prepared once at open."""
    obj = f"{ks}.objects WHERE channel = ? AND track = ? AND decode_time = ?"
    entries = f"{ks}.timeline WHERE channel = ? AND track = ? AND bucket = ?"
    return {
        "put_channel": f"INSERT INTO {ks}.channels (name, config) VALUES (?, ?)",
        "all_channels": f"SELECT config FROM {ks}.channels",
        "delete_channel": f"DELETE FROM {ks}.channels WHERE name = ?",
        "set_epoch": f"INSERT INTO {ks}.epochs (channel, epoch_ms) VALUES (?, ?) IF NOT EXISTS",
        "all_epochs": f"SELECT channel, epoch_ms FROM {ks}.epochs",
        "delete_epoch": f"DELETE FROM {ks}.epochs WHERE channel = ? IF EXISTS",
        "put_meta": f"INSERT INTO {ks}.meta (channel, key, value) VALUES (?, ?, ?) USING TTL ?",
        "get_meta": f"SELECT value FROM {ks}.meta WHERE channel = ? AND key = ?",
        "delete_meta": f"DELETE FROM {ks}.meta WHERE channel = ?",
        "put_track": f"INSERT INTO {ks}.tracks (channel, name, record, init) VALUES (?, ?, ?, ?) USING TTL ?",
        "all_tracks": f"SELECT record FROM {ks}.tracks",
        "channel_tracks": f"SELECT name FROM {ks}.tracks WHERE channel = ?",
        "get_init": f"SELECT init FROM {ks}.tracks WHERE channel = ? AND name = ?",
        "delete_tracks": f"DELETE FROM {ks}.tracks WHERE channel = ?",
        "delete_track": f"DELETE FROM {ks}.tracks WHERE channel = ? AND name = ?",
        "put_chunk": f"INSERT INTO {ks}.objects (channel, track, decode_time, generation, chunk, data)"
        " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
        # The header (static columns) alone, or with the only chunk: either is one atomic row write.
        "put_object_header": f"INSERT INTO {ks}.objects"
        " (channel, track, decode_time, committed, chunk_count, total_size, crc32)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "put_chunk_with_header": f"INSERT INTO {ks}.objects"
        " (channel, track, decode_time, generation, chunk, data, committed, chunk_count, total_size, crc32)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
        "get_object": "SELECT generation, chunk, data, committed, chunk_count, total_size, crc32,"
        f" TTL(crc32) FROM {obj}",
        "delete_object": f"DELETE FROM {obj}",
        "put_entry": f"INSERT INTO {ks}.timeline (channel, track, bucket, decode_time, entry)"
        " VALUES (?, ?, ?, ?, ?) USING TTL ?",
        "get_entries": f"SELECT entry, TTL(entry) FROM {entries}",
        "get_entries_after": f"SELECT entry, TTL(entry) FROM {entries} AND decode_time > ?",
        "bucket_times": f"SELECT decode_time FROM {entries}",
        "delete_bucket": f"DELETE FROM {entries}",
        "ping": "SELECT release_version FROM system.local",
    }


def sync_statements(ks: str) -> dict[str, str]:
    """The reads ``cassandra_sync.IndexSync`` runs to learn other processes' writes: one channel's
    config, epoch and track records, and timeline rows with their decode time. Prepared with
    ``statements``; no name is shared with it."""
    entries = f"{ks}.timeline WHERE channel = ? AND track = ? AND bucket = ?"
    return {
        "channel_config": f"SELECT config FROM {ks}.channels WHERE name = ?",
        "channel_epoch": f"SELECT epoch_ms FROM {ks}.epochs WHERE channel = ?",
        "channel_records": f"SELECT record FROM {ks}.tracks WHERE channel = ?",
        "timed_entries": f"SELECT decode_time, entry, TTL(entry) FROM {entries}",
        "timed_entries_after": f"SELECT decode_time, entry, TTL(entry) FROM {entries} AND decode_time > ?",
    }


# rows ---------------------------------------------------------------------------------------------


def merge_entries(rows: list[Any]) -> list[tuple[FragmentEntry, int | None]]:
    """Timeline rows (entry JSON, TTL left) of several buckets, in decode-time order, one per time.

    The same decode time can appear twice only if a filler and its replacement landed in different
    buckets (written by different versions or processes): the real fragment wins.
    """
    merged: dict[int, tuple[FragmentEntry, int | None]] = {}
    for text, ttl_left in rows:
        entry = from_json(FragmentEntry, text)
        seen = merged.get(entry.decode_time)
        if seen is None or (seen[0].filler and not entry.filler):
            merged[entry.decode_time] = (entry, ttl_left)
    return [merged[t] for t in sorted(merged)]


def assemble(rows: list[Any], *, what: str) -> bytes | None:
    """The object the rows of one ``objects`` partition hold, checked against its header.

    Rows: (generation, chunk, data, committed, chunk_count, total_size, crc32, TTL(crc32)); the
    static header columns repeat on every row. No header: never committed (or expired) -> None.
    """
    if not rows:
        return None
    committed, count, size, crc, ttl_left = rows[0][3:8]
    if committed is None:
        return None
    parts: dict[int, bytes] = {}
    for generation, chunk, data, *_ in rows:
        if generation == committed and chunk is not None and data is not None and 0 <= chunk < count:
            parts[chunk] = data
    if len(parts) != count:
        if ttl_left is not None and ttl_left <= EXPIRY_SLACK_S:
            return None  # expiring: the chunks went a moment before their header
        raise StoreError(f"cassandra object {what}: {count - len(parts)} of {count} chunks missing")
    value = parts[0] if count == 1 else b"".join(parts[i] for i in range(count))
    if len(value) != size or zlib.crc32(value) != crc:
        raise StoreError(f"cassandra object {what}: size or CRC32 does not match its header")
    return value


def first_blob(rows: list[Any]) -> bytes | None:
    if not rows:
        return None
    value = rows[0][0]
    return b"" if value is None else bytes(value)
