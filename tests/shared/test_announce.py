"""The announcement datagram codec (round trips, rejection of anything else) and its UDP endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.shared import announce
from services.shared.announce import (
    MAX_DATAGRAM_BYTES,
    AnnounceSender,
    BadAnnouncement,
    ChannelChanged,
    Committed,
    Datagram,
    TrackChanged,
    decode,
    encode,
    listen,
    parse_address,
)
from services.shared.channels import MAX_NAME_BYTES
from services.shared.timeline import FragmentEntry

INT64 = st.integers(min_value=0, max_value=2**63 - 1)
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", fullmatch=True)
ENTRIES = st.builds(
    FragmentEntry,
    decode_time=INT64,
    duration_ticks=INT64,
    sample_count=INT64,
    independent=st.booleans(),
    segment_number=INT64,
    segment_start=INT64,
    part_number=INT64,
    size=INT64,
    ingest_time_ms=INT64,
    last=st.booleans(),
    filler=st.booleans(),
)


def entry(t: int = 180_000) -> FragmentEntry:
    return FragmentEntry(
        decode_time=t,
        duration_ticks=90_000,
        sample_count=25,
        independent=True,
        segment_number=1,
        segment_start=t,
        part_number=0,
        size=1234,
        ingest_time_ms=1_700_000_000_000,
    )


def committed_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode(Committed(channel="ch", track="v", entry=entry()), sender=7))
    return doc


# codec ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Committed(channel="ch", track="video720", entry=entry()),
        TrackChanged(channel="ch", track="audio128"),
        ChannelChanged(channel="ch"),
    ],
)
def test_each_kind_round_trips(message: announce.Announcement) -> None:
    assert decode(encode(message, sender=42)) == Datagram(sender=42, announcement=message)


def test_the_wire_order_names_every_entry_field_once() -> None:
    assert sorted(announce._ENTRY_FIELDS) == sorted(f.name for f in dataclasses.fields(FragmentEntry))


@given(entry=ENTRIES, channel=NAMES, track=NAMES, sender=INT64)
def test_any_entry_round_trips_within_the_size_limit(
    entry: FragmentEntry, channel: str, track: str, sender: int
) -> None:
    message = Committed(channel=channel, track=track, entry=entry)
    data = encode(message, sender=sender)
    assert len(data) <= MAX_DATAGRAM_BYTES
    assert decode(data) == Datagram(sender=sender, announcement=message)


def test_the_largest_announcement_fits() -> None:
    big = 2**63 - 1
    fields: dict[str, Any] = {f.name: big for f in dataclasses.fields(FragmentEntry)}
    fields |= {"independent": True, "last": True, "filler": True}
    name = "x" * MAX_NAME_BYTES
    data = encode(Committed(channel=name, track=name, entry=FragmentEntry(**fields)), sender=big)
    assert len(data) < MAX_DATAGRAM_BYTES // 2


@given(st.binary(max_size=2 * MAX_DATAGRAM_BYTES))
def test_random_bytes_are_rejected_only_with_bad_announcement(data: bytes) -> None:
    with contextlib.suppress(BadAnnouncement):
        decode(data)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8), lambda inner: (
    st.lists(inner, max_size=12) | st.dictionaries(st.sampled_from("vnkcte"), inner, max_size=6)
)))  # fmt: skip
def test_any_json_is_decoded_or_rejected_with_bad_announcement(doc: object) -> None:
    with contextlib.suppress(BadAnnouncement):
        decode(json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"v": 2}, "version"),
        ({"v": True}, "version"),
        ({"n": -1}, "sender"),
        ({"n": "7"}, "sender"),
        ({"k": "x"}, "kind"),
        ({"c": "../etc"}, "channel"),
        ({"c": ""}, "channel"),
        ({"t": None}, "track"),
        ({"e": [1, 2, 3]}, "entry length"),
        ({"e": "entry"}, "entry type"),
    ],
)
def test_malformed_announcements_are_rejected(change: dict[str, Any], what: str) -> None:
    doc = committed_doc() | change
    with pytest.raises(BadAnnouncement):
        decode(json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("position", "value"),
    [(0, True), (0, -1), (0, 2**63), (0, 1.5), (3, 1), (9, 0), (10, None), (8, "1")],
)
def test_entry_fields_must_have_their_exact_type(position: int, value: object) -> None:
    doc = committed_doc()
    doc["e"][position] = value
    with pytest.raises(BadAnnouncement):
        decode(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe", b"[" * 1100, b"null", b"[]", b"x" * (MAX_DATAGRAM_BYTES + 1), b'{"v":1}'],
)
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(BadAnnouncement):
        decode(data)


def test_parse_address() -> None:
    assert parse_address("10.0.0.1:8080") == ("10.0.0.1", 8080)
    assert parse_address(" packager-1:9 ") == ("packager-1", 9)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("host", "host:", ":80", "host:0", "host:65536", "host:http"):
        with pytest.raises(ValueError, match="host:port"):
            parse_address(bad)


# UDP ------------------------------------------------------------------------------------------------


async def test_sender_reaches_every_peer_and_garbage_never_breaks_a_listener() -> None:
    got: list[list[Datagram]] = [[], []]
    wake = asyncio.Event()

    def handler(i: int) -> Any:
        def handle(datagram: Datagram) -> None:
            got[i].append(datagram)
            wake.set()
            if datagram.announcement == ChannelChanged(channel="boom"):
                raise RuntimeError("a handler bug")

        return handle

    first = await listen("127.0.0.1", 0, handler(0))
    second = await listen("127.0.0.1", 0, handler(1))
    sender = AnnounceSender([f"127.0.0.1:{first.port}", f"localhost:{second.port}"], sender=3)
    await sender.open()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for junk in (b"", b"junk", b"\x00" * 2000, b'{"v":1,"n":1,"k":"c","c":"../x"}'):
            raw.sendto(junk, ("127.0.0.1", first.port))
        sender.send(ChannelChanged(channel="boom"))  # the handler raises: logged, endpoint stays
        sender.send(TrackChanged(channel="ch", track="v"))
        async with asyncio.timeout(5):
            while len(got[0]) < 2 or len(got[1]) < 2:
                wake.clear()
                await wake.wait()
    finally:
        raw.close()
        sender.close()
        first.close()
        second.close()
    expected = [ChannelChanged(channel="boom"), TrackChanged(channel="ch", track="v")]
    assert [d.announcement for d in got[0]] == expected
    assert [d.announcement for d in got[1]] == expected
    assert {d.sender for d in got[0] + got[1]} == {3}
    assert first.stats.rejected == 4 and first.stats.received == 2
    assert sender.sent == 4 and sender.dropped == 0


@given(st.lists(st.binary(max_size=MAX_DATAGRAM_BYTES + 10), max_size=20))
def test_a_listener_survives_any_datagrams(datagrams: list[bytes]) -> None:
    handled: list[Datagram] = []
    listener = announce._Listener(handled.append)
    for data in datagrams:
        listener.datagram_received(data, ("127.0.0.1", 9))
    assert listener.received + listener.rejected == len(datagrams) == len(handled) + listener.rejected


async def test_a_peer_name_fans_out_to_every_address_and_follows_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A headless Service's name: every address it resolves to gets the announcement; a new answer
    moves the fan-out; a failed lookup keeps the last answer; at start an unresolved name is no error."""
    got: dict[str, list[Datagram]] = {"127.0.0.1": [], "127.0.0.2": []}
    first = await listen("127.0.0.1", 0, got["127.0.0.1"].append)
    port = first.port
    second = await listen("127.0.0.2", port, got["127.0.0.2"].append)
    answer: list[str] | None = None  # None: the name does not resolve

    async def getaddrinfo(host: str, p: int, **_: Any) -> list[tuple[Any, ...]]:
        assert host == "packagers.headless.test" and p == port
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (a, p)) for a in answer]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    sender = AnnounceSender([f"packagers.headless.test:{port}"], sender=5)

    async def announce(channel: str) -> None:
        sender.send(ChannelChanged(channel=channel))
        await asyncio.sleep(0.05)

    try:
        with pytest.raises(socket.gaierror):
            await sender.open()  # strict: a fixed peer list must resolve
        await sender.open(strict=False)
        assert sender.targets == ()
        answer = ["127.0.0.1", "127.0.0.2"]
        await sender.resolve()
        await announce("both")
        answer = ["127.0.0.2"]
        await sender.resolve()
        await announce("second")
        answer = None
        await sender.resolve()  # a DNS failure keeps the last answer
        await announce("still")
    finally:
        sender.close()
        first.close()
        second.close()
    channels = {address: [d.announcement.channel for d in got[address]] for address in got}
    assert channels == {"127.0.0.1": ["both"], "127.0.0.2": ["both", "second", "still"]}
