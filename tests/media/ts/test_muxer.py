"""The segment muxer: PSI grid, continuity across independently made segments, PCR, pull/flush."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.media.ts.muxer import (
    MAX_PCR_INTERVAL,
    PCR_DELAY,
    PSI_PERIOD,
    ElementaryStream,
    Program,
    SegmentMuxer,
)
from services.shared.media.ts.timestamps import TIMESTAMP_MODULUS

from .packets import continuity_errors, packets

VIDEO, AUDIO = 0x100, 0x101
PROGRAM = Program(
    streams=(
        ElementaryStream(pid=VIDEO, stream_type=0x1B, stream_id=0xE0),
        ElementaryStream(pid=AUDIO, stream_type=0x0F, stream_id=0xC0),
    ),
    pcr_pid=VIDEO,
)
FRAME = 3600  # 25 fps
NEAR_WRAP = TIMESTAMP_MODULUS - 5 * 90_000


def segment(start: int, sizes: list[tuple[int, int]], *, frame: int = FRAME) -> bytes:
    """A segment of ``(pid, size)`` PES, ``frame`` ticks apart, from ``start``."""
    muxer = SegmentMuxer(PROGRAM, start=start, end=start + frame * len(sizes))
    out = b""
    for index, (pid, size) in enumerate(sizes):
        dts = start + index * frame
        muxer.push(pid, pts=dts + 7200, dts=dts, random_access=index == 0, payload=[b"\x01" * size])
        out += muxer.pull()
    return out + muxer.flush()


# segments of at least one PSI grid step (0.5 s): shorter ones repeat a PAT/PMT pair (tested below);
# PES of at least 16 bytes, as every access unit is (AUD, ADTS header): tinier ones are round-tripped
# in test_roundtrip_pyav, their header may straddle packets
PES_LISTS = st.lists(
    st.tuples(st.sampled_from([VIDEO, AUDIO]), st.integers(min_value=16, max_value=5000)),
    min_size=13,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(PES_LISTS, min_size=1, max_size=4), st.integers(min_value=0, max_value=1 << 40))
def test_independent_segments_chain_without_continuity_errors(
    plans: list[list[tuple[int, int]]], t0: int
) -> None:
    last: dict[int, int] = {}
    start = t0
    for sizes in plans:
        data = segment(start, sizes)
        assert continuity_errors(data, last) == []
        parsed = list(packets(data))
        assert [p.pid for p in parsed[:2]] == [0, 0x1000], "PAT and PMT open the segment"
        for pid in (VIDEO, AUDIO):
            assert sum(p.pid == pid and p.has_payload for p in parsed) % 16 == 0
        for packet in parsed:  # every PES header lies whole in the packet that starts it
            if packet.payload_unit_start and packet.pid in (VIDEO, AUDIO):
                assert packet.payload[:3] == b"\0\0\1" and len(packet.payload) >= 9 + packet.payload[8]
        start += FRAME * len(sizes)


def test_psi_sits_on_a_grid_and_counts_on() -> None:
    start = 10 * PSI_PERIOD + 123
    first = segment(start, [(VIDEO, 100)] * 50)  # 2 s: grid points 11..14 (ceil(start / P) = 11)
    psi = [p for p in packets(first) if p.pid == 0]
    assert [p.continuity_counter for p in psi] == [11, 12, 13, 14]
    second = segment(start + 50 * FRAME, [(VIDEO, 100)] * 50)
    assert [p.continuity_counter for p in packets(second) if p.pid == 0] == [15, 0, 1, 2]


def test_a_segment_shorter_than_the_psi_grid_repeats_its_neighbours_pair() -> None:
    first = segment(FRAME, [(VIDEO, 100)])  # [40 ms, 80 ms): no grid point inside, sends the next one's
    second = segment(2 * FRAME, [(VIDEO, 100)] * 20)  # starts before the same grid point
    pat_first = [p for p in packets(first) if p.pid == 0]
    pat_second = [p for p in packets(second) if p.pid == 0]
    assert [p.continuity_counter for p in pat_first] == [p.continuity_counter for p in pat_second] == [1]
    assert pat_first == pat_second  # a duplicate packet, which ISO/IEC 13818-1 allows once


def test_pcr_derives_from_dts_and_never_decreases() -> None:
    start = NEAR_WRAP
    data = segment(start, [(VIDEO, 3000), (AUDIO, 300)] * 30)
    pcrs = [p.pcr_base for p in packets(data) if p.pcr_base is not None]
    assert pcrs[0] == (start - PCR_DELAY) % TIMESTAMP_MODULUS
    unwrapped = [(b - pcrs[0]) % TIMESTAMP_MODULUS for b in pcrs]
    assert unwrapped == sorted(unwrapped)
    assert {p.pid for p in packets(data) if p.pcr_base is not None} == {VIDEO}


def test_pcr_only_packets_fill_video_gaps() -> None:
    muxer = SegmentMuxer(PROGRAM, start=0, end=90_000)
    muxer.push(VIDEO, pts=0, dts=0, random_access=True, payload=[b"v" * 1000])
    for dts in range(3000, 90_000, 3000):  # audio only for a second
        muxer.push(AUDIO, pts=dts, dts=dts, random_access=True, payload=[b"a" * 300])
    data = muxer.flush()
    clocks = [p.pcr_base for p in packets(data) if p.pcr_base is not None]
    assert all(b - a <= MAX_PCR_INTERVAL + 3000 for a, b in itertools.pairwise(clocks))
    adaptation_only = [p for p in packets(data) if p.pcr_base is not None and not p.has_payload]
    assert adaptation_only and all(p.pid == VIDEO for p in adaptation_only)
    assert continuity_errors(data) == []


def test_pulling_as_you_go_gives_the_same_bytes_as_one_flush() -> None:
    def run(*, pull: bool) -> list[bytes]:
        muxer = SegmentMuxer(PROGRAM, start=0, end=FRAME * 10)
        chunks = []
        for index in range(10):
            pid = VIDEO if index % 3 else AUDIO
            muxer.push(pid, pts=index * FRAME, dts=index * FRAME, random_access=False, payload=[b"x" * 900])
            if pull:
                chunks.append(muxer.pull())
        return [*chunks, muxer.flush()]

    pulled = run(pull=True)
    assert any(pulled[:-1]), "earlier PES come out before the flush"
    assert b"".join(pulled) == b"".join(run(pull=False))
    assert continuity_errors(b"".join(pulled)) == []


def test_misuse_is_refused() -> None:
    muxer = SegmentMuxer(PROGRAM, start=0, end=FRAME)
    with pytest.raises(ValueError):
        muxer.push(0x555, pts=0, dts=0, random_access=False, payload=[b"x"])
    muxer.flush()
    with pytest.raises(ValueError):
        muxer.push(VIDEO, pts=0, dts=0, random_access=False, payload=[b"x"])
    with pytest.raises(ValueError):
        Program(streams=PROGRAM.streams, pcr_pid=0x200)
