"""PES/TS packetization read back by an independent demuxer (libavformat through PyAV).

Private-data streams (stream_type 0x06, stream_id 0xBD) come back from FFmpeg's demuxer as one packet
per PES with no parser in between, so each payload and its PTS/DTS can be compared exactly: random
sizes (one byte to several packets), random timestamps including ones that cross 2**33.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.media.ts.muxer import ElementaryStream, Program, SegmentMuxer
from services.shared.media.ts.timestamps import TIMESTAMP_MODULUS

from .packets import continuity_errors
from .pyav import demux

PRIVATE_STREAM_1 = 0xBD
PROGRAM = Program(
    streams=(
        ElementaryStream(pid=0x100, stream_type=0x06, stream_id=PRIVATE_STREAM_1),
        ElementaryStream(pid=0x101, stream_type=0x06, stream_id=PRIVATE_STREAM_1),
    ),
    pcr_pid=0x100,
)
STARTS = st.one_of(
    st.integers(min_value=0, max_value=1 << 36),
    st.integers(min_value=TIMESTAMP_MODULUS - 200_000, max_value=TIMESTAMP_MODULUS + 10_000),  # the wrap
    st.integers(min_value=3 * TIMESTAMP_MODULUS - 200_000, max_value=3 * TIMESTAMP_MODULUS),
)
UNITS = st.lists(
    st.tuples(
        st.sampled_from([0x100, 0x101]),
        st.integers(min_value=1, max_value=9000),  # decode time step
        st.integers(min_value=0, max_value=20_000),  # composition offset
        st.binary(min_size=1, max_size=2500),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(start=STARTS, units=UNITS)
def test_payloads_and_timestamps_round_trip(start: int, units: list[tuple[int, int, int, bytes]]) -> None:
    dts = start
    expected = []
    end = start + sum(step for _, step, _, _ in units)
    muxer = SegmentMuxer(PROGRAM, start=start, end=end)
    for pid, step, offset, payload in units:
        muxer.push(pid, pts=dts + offset, dts=dts, random_access=False, payload=[payload[:7], payload[7:]])
        expected.append((pid, dts + offset, dts, payload))
        dts += step
    data = muxer.flush()
    assert continuity_errors(data) == []
    got = demux(data)
    assert [(p.pid, p.data) for p in got] == [(pid, payload) for pid, _, _, payload in expected]
    # libavformat unwraps 33-bit times against the first one it sees: compare modulo 2**33
    for packet, (_, want_pts, want_dts, _) in zip(got, expected, strict=True):
        assert (packet.pts - want_pts) % TIMESTAMP_MODULUS == 0
        assert (packet.dts - want_dts) % TIMESTAMP_MODULUS == 0


@settings(max_examples=150, deadline=None)
@given(
    size=st.one_of(st.integers(min_value=150, max_value=200), st.integers(min_value=5_300, max_value=5_350)),
    random_access=st.booleans(),
    before=st.integers(min_value=0, max_value=20),
)
def test_last_pes_with_a_pcr_that_spills_into_a_second_packet(
    size: int, random_access: bool, before: int
) -> None:
    """PES lengths just under a packet multiple: the PCR field pushes the head over two packets, and
    then the continuity padding spreads that last PES again."""
    muxer = SegmentMuxer(PROGRAM, start=0, end=90_000)
    payloads = [bytes([index % 251]) * size for index in range(before + 2)]
    for index, payload in enumerate(payloads):
        pid = 0x101 if index == before else 0x100
        muxer.push(pid, pts=index * 10, dts=index * 10, random_access=random_access, payload=[payload])
    data = muxer.flush()
    assert continuity_errors(data) == []
    assert [p.data for p in demux(data)] == payloads
