"""Packet layout: payload spread, adaptation fields, assembly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.shared.media.ts.packets import (
    BODY_SIZE,
    PidHeaders,
    adaptation_field,
    assemble,
    packets_needed,
    payload_layout,
    split_bodies,
    stuffing_field,
)

from .packets import packets


@given(
    length=st.integers(min_value=19, max_value=20_000),
    reserved=st.sampled_from([0, 2, 8]),
    extra=st.integers(min_value=0, max_value=15),
    header=st.sampled_from([1, 14, 19]),
)
def test_layout_fills_exactly_the_packets_asked_for(
    length: int, reserved: int, extra: int, header: int
) -> None:
    count = packets_needed(length, reserved) + extra
    if count > length:
        with pytest.raises(ValueError):
            payload_layout(length, count, reserved, first_minimum=header)
        return
    heads, tail = payload_layout(length, count, reserved, first_minimum=header)
    assert len(heads) + tail == count
    assert sum(heads) + BODY_SIZE * tail == length
    assert min(header, length - count + 1) <= heads[0] <= BODY_SIZE - reserved
    assert all(1 <= size <= BODY_SIZE for size in heads[1:])
    if extra == 0 and reserved == 0 and header == 1:
        assert len(heads) == 1  # the fewest packets: one short first packet, the rest full


def test_fewest_packets_puts_an_oversized_field_into_two_heads() -> None:
    heads, tail = payload_layout(180, packets_needed(180, 8), 8)  # 180 bytes + an 8-byte PCR field
    assert heads == (176, 4) and tail == 0


def test_a_pes_header_never_straddles_two_packets() -> None:
    length = 184 * 3 + 5  # 5 bytes would be left for the first packet
    assert payload_layout(length, 4, 0) == ((5,), 3)
    assert payload_layout(length, 4, 0, first_minimum=19) == ((184, 5), 2)


@given(size=st.integers(min_value=1, max_value=BODY_SIZE))
def test_stuffing_fields(size: int) -> None:
    field = stuffing_field(size)
    assert len(field) == size and field[0] == size - 1
    assert field[2:] == b"\xff" * (size - 2)


@given(size=st.integers(min_value=8, max_value=BODY_SIZE), base=st.integers(min_value=0, max_value=1 << 40))
def test_pcr_field(size: int, base: int) -> None:
    field = adaptation_field(size, pcr_base=base, random_access=True)
    assert len(field) == size and field[0] == size - 1 and field[1] == 0x50
    assert int.from_bytes(field[2:8], "big") >> 15 == base % (1 << 33)


def test_fields_too_small_for_their_flags_are_refused() -> None:
    with pytest.raises(ValueError):
        adaptation_field(7, pcr_base=0)
    with pytest.raises(ValueError):
        adaptation_field(1, random_access=True)


@given(st.lists(st.binary(min_size=BODY_SIZE, max_size=BODY_SIZE), min_size=1, max_size=3000))
def test_assemble_interleaves_headers_and_bodies(bodies: list[bytes]) -> None:
    headers = PidHeaders(pid=0x123)
    data = assemble(headers.run(0, len(bodies)), bodies)
    parsed = list(packets(data))
    assert [p.payload for p in parsed] == bodies
    assert [p.continuity_counter for p in parsed] == [i % 16 for i in range(len(bodies))]
    assert {p.pid for p in parsed} == {0x123}


def test_split_refuses_partial_bodies() -> None:
    with pytest.raises(ValueError):
        split_bodies(b"\0" * (BODY_SIZE + 1))


def test_header_runs_longer_than_the_cycle() -> None:
    run = PidHeaders(pid=1).run(7, 20_000)
    assert len(run) == 20_000 and run[0][3] & 0x0F == 7 and run[-1][3] & 0x0F == (7 + 19_999) % 16
