"""Announcements between Headwater nodes: one UDP datagram per commit or change, no broker.

With N ingest and M packager processes on one Cassandra keyspace, a packager must learn of a commit
made elsewhere in well under a segment's duration. Polling Cassandra that often for every track
would cost far more than the commits themselves, so after each commit the ingest node sends one
datagram to every packager (``--packagers``): channel, track and the full ``FragmentEntry``. A
packager records the entry in its in-memory index without reading anything, since the entry is
durable before it is announced (the commit rule), and wakes its waiting requests. On loopback or a
LAN this takes well under a millisecond, with no broker to run, size or fail over.

UDP may drop or reorder datagrams. That is accepted, not repaired here: a receiver records an entry
only if it continues the track's known timeline exactly, and otherwise reloads the track from
Cassandra, where every committed entry is. A datagram lost at the end of a burst shows no gap, so
packagers also refresh the tracks of channels they serve about once a second
(``services/shared/follow.py``): a lost datagram costs at most that second. Track changes (a new or
re-sent CMAF header) and channel changes (control API PUT/DELETE) are announced the same way.

This module is the wire format (``encode`` / ``decode``: pure, no I/O) and two thin asyncio
endpoints (``AnnounceSender``, ``listen``). Version 1 is compact JSON, UTF-8, one object:

    {"v":1,"n":<sender id>,"k":"f","c":<channel>,"t":<track>,"e":[<entry fields, _ENTRY_FIELDS order>]}
    {"v":1,"n":<sender id>,"k":"t","c":<channel>,"t":<track>}     track changed
    {"v":1,"n":<sender id>,"k":"c","c":<channel>}                 channel changed

Names are at most 128 ASCII bytes (``channels.validate_name``), so a datagram stays far below
``MAX_DATAGRAM_BYTES`` (no IP fragmentation on any usual MTU). Unknown keys are ignored; another
version is rejected, like anything malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.shared.channels import validate_name
from services.shared.errors import HeadwaterError
from services.shared.timeline import FragmentEntry

log = logging.getLogger("headwater.announce")

VERSION = 1
MAX_DATAGRAM_BYTES = 1200
#: Wire order of the entry fields (part of version 1: append only in a new version).
_ENTRY_FIELDS = (
    "decode_time", "duration_ticks", "sample_count", "independent", "segment_number", "segment_start",
    "part_number", "size", "ingest_time_ms", "last", "filler",
)  # fmt: skip
_BOOL_FIELDS = frozenset(("independent", "last", "filler"))
_MAX_INT = 2**63 - 1  # Cassandra bigint, and what every field fits in
#: Receive buffer asked of the kernel, for bursts (many tracks committing at once).
_RCVBUF_BYTES = 4 * 1024 * 1024


class BadAnnouncement(ValueError):
    """A datagram that is not a version-1 announcement (or too big to be one)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Committed:
    """A fragment was committed: its bytes and its timeline entry are durable."""

    channel: str
    track: str
    entry: FragmentEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackChanged:
    """The track's record changed (a new or re-sent CMAF header): reload the channel's tracks."""

    channel: str
    track: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelChanged:
    """The channel's config was created, changed or deleted: reload (or drop) the channel."""

    channel: str


Announcement = Committed | TrackChanged | ChannelChanged


@dataclass(frozen=True, slots=True, kw_only=True)
class Datagram:
    sender: int  # random per process: a node that is also a packager skips its own announcements
    announcement: Announcement


# codec (pure) -----------------------------------------------------------------------------------


def encode(announcement: Announcement, *, sender: int) -> bytes:
    doc: dict[str, Any] = {"v": VERSION, "n": sender, "c": announcement.channel}
    if isinstance(announcement, Committed):
        doc |= {
            "k": "f",
            "t": announcement.track,
            "e": [getattr(announcement.entry, f) for f in _ENTRY_FIELDS],
        }
    elif isinstance(announcement, TrackChanged):
        doc |= {"k": "t", "t": announcement.track}
    else:
        doc["k"] = "c"
    data = json.dumps(doc, separators=(",", ":")).encode()
    if len(data) > MAX_DATAGRAM_BYTES:
        raise BadAnnouncement(f"announcement of {len(data)} bytes exceeds {MAX_DATAGRAM_BYTES}")
    return data


def decode(data: bytes) -> Datagram:
    """The datagram's announcement; ``BadAnnouncement`` for anything else (never another error)."""
    if len(data) > MAX_DATAGRAM_BYTES:
        raise BadAnnouncement(f"{len(data)} bytes: too big for an announcement")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadAnnouncement(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION or type(doc.get("v")) is not int:
        raise BadAnnouncement("not a version-1 announcement")
    sender = _int(doc, "n")
    channel = _name(doc, "c", "channel")
    kind = doc.get("k")
    if kind == "c":
        return Datagram(sender=sender, announcement=ChannelChanged(channel=channel))
    track = _name(doc, "t", "track")
    if kind == "t":
        return Datagram(sender=sender, announcement=TrackChanged(channel=channel, track=track))
    if kind == "f":
        entry = _entry(doc.get("e"))
        return Datagram(sender=sender, announcement=Committed(channel=channel, track=track, entry=entry))
    raise BadAnnouncement(f"unknown kind {kind!r}")


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if type(value) is not int or not 0 <= value <= _MAX_INT:
        raise BadAnnouncement(f"{key!r} is not an integer in 0..2^63-1")
    return value


def _name(doc: dict[str, Any], key: str, kind: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise BadAnnouncement(f"{kind} name missing")
    try:
        return validate_name(kind, value)
    except HeadwaterError as exc:
        raise BadAnnouncement(str(exc)) from None


def _entry(values: object) -> FragmentEntry:
    if not isinstance(values, list) or len(values) != len(_ENTRY_FIELDS):
        raise BadAnnouncement(f"entry is not a list of {len(_ENTRY_FIELDS)} values")
    fields: dict[str, Any] = {}
    for name, value in zip(_ENTRY_FIELDS, values, strict=True):
        if name in _BOOL_FIELDS:
            if type(value) is not bool:
                raise BadAnnouncement(f"entry field {name} is not a boolean")
        elif type(value) is not int or not 0 <= value <= _MAX_INT:
            raise BadAnnouncement(f"entry field {name} is not an integer in 0..2^63-1")
        fields[name] = value
    return FragmentEntry(**fields)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as (host, port); ValueError if it is not one."""
    host, sep, port = address.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host, int(port)


# I/O --------------------------------------------------------------------------------------------


class AnnounceSender:
    """Sends each announcement to every peer, best effort: a datagram that cannot go is dropped
    (and counted), never waited for; the receivers' refresh makes up for it.

    A peer name may stand for several nodes: every address it resolves to is a target (on Kubernetes
    ``--packagers`` names the packagers' headless Service, whose DNS answer lists every ready packager
    pod). ``resolve()`` re-reads the names; the node calls it every ``--peers-refresh-s`` so packagers
    that start, move or turn unready are followed. Sending never waits on DNS: it uses the last answer.
    """

    def __init__(self, peers: Sequence[str], *, sender: int) -> None:
        self._peers = [parse_address(p) for p in peers]
        self.sender = sender
        self._resolved: dict[tuple[str, int], list[tuple[int, Any]]] = {}  # peer -> (family, address)
        self._targets: list[tuple[socket.socket, Any]] = []
        self._sockets: dict[int, socket.socket] = {}
        self.sent = 0
        self.dropped = 0

    @property
    def targets(self) -> tuple[Any, ...]:
        """The socket addresses announcements go to now."""
        return tuple(address for _, address in self._targets)

    async def open(self, *, strict: bool = True) -> None:
        """Resolve the peers; with ``strict`` a name that does not resolve is an error (a fixed peer
        list at start-up), without it the name has no target until a later ``resolve()``."""
        await self.resolve(strict=strict)

    async def resolve(self, *, strict: bool = False) -> None:
        """Re-read every peer's addresses. A name that fails to resolve raises with ``strict``;
        otherwise it keeps its previous addresses (a DNS hiccup must not silence the fan-out)."""
        loop = asyncio.get_running_loop()
        for host, port in self._peers:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            except OSError as exc:
                if strict:
                    raise
                log.warning("peer %s:%d did not resolve (keeping its last addresses): %s", host, port, exc)
                continue
            self._resolved[(host, port)] = [(info[0], info[4]) for info in infos]
        targets: dict[Any, socket.socket] = {}
        for addresses in self._resolved.values():
            for family, address in addresses:
                sock = self._sockets.get(family)
                if sock is None:
                    sock = self._sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
                    sock.setblocking(False)
                targets.setdefault(address, sock)
        self._targets = [(sock, address) for address, sock in targets.items()]

    def send(self, announcement: Announcement) -> None:
        data = encode(announcement, sender=self.sender)
        for sock, address in self._targets:
            try:
                sock.sendto(data, address)
            except OSError as exc:  # a full buffer, an unreachable peer: lost like any datagram
                self.dropped += 1
                log.debug("announcement to %s dropped: %s", address, exc)
            else:
                self.sent += 1

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self._targets.clear()
        self._resolved.clear()


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, handle: Callable[[Datagram], None]) -> None:
        self._handle = handle
        self.received = 0
        self.rejected = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            datagram = decode(data)
        except BadAnnouncement as exc:
            self.rejected += 1
            log.debug("ignored a datagram from %s: %s", addr, exc)
            return
        self.received += 1
        try:
            self._handle(datagram)
        except Exception:  # a receiver bug must not close the endpoint: the refresh still runs
            log.exception("announcement from %s failed", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("announcement socket error: %s", exc)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listening:
    """A bound announcement endpoint: close it with ``close()``; counters on ``stats``."""

    transport: asyncio.DatagramTransport
    stats: _Listener
    port: int

    def close(self) -> None:
        self.transport.close()


async def listen(host: str, port: int, handle: Callable[[Datagram], None]) -> Listening:
    """Receive announcements on UDP ``host:port`` (0: any free port); ``handle`` runs for each valid
    one, on the event loop, and must not block."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Listener(handle), local_addr=(host, port)
    )
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError):  # the kernel may cap it (net.core.rmem_max): best effort
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF_BYTES)
    return Listening(transport=transport, stats=protocol, port=int(sock.getsockname()[1]))
