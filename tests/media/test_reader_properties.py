"""Properties of the reader: split-independence, and nothing but MediaError on any input."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from services.shared.media.errors import MediaError
from services.shared.media.reader import CmafReader, Event
from services.shared.media.synthetic import audio_entry, make_fragment, make_header

HEADER_SLACK = 16  # a partial box header beyond the current run


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """A valid header and 1-4 contiguous fragments with varied sizes, brands and prft."""
    audio = draw(st.booleans())
    out = make_header(handler="soun", entry=audio_entry()) if audio else make_header()
    decode_time = draw(st.integers(0, 1 << 40))
    for number in range(1, draw(st.integers(1, 4)) + 1):
        count = draw(st.integers(1, 5))
        durations = draw(st.lists(st.integers(1, 5000), min_size=count, max_size=count))
        sizes = draw(st.lists(st.integers(0, 300), min_size=count, max_size=count))
        out += make_fragment(
            sequence_number=number,
            decode_time=decode_time,
            sample_durations=durations,
            sample_sizes=sizes,
            keyframe_first=draw(st.booleans()),
            brands=draw(st.sampled_from([None, ("msdh", "msix"), ("cmfs", "lmsg")])),
            prft_wallclock_ms=draw(st.one_of(st.none(), st.integers(0, 2_000_000_000_000))),
        )
        decode_time += sum(durations)
    return out


def chunks(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos = 0
    for size in sizes:
        yield data[pos : pos + size]
        pos += size
    yield data[pos:]


def read(data: bytes, sizes: list[int], reader: CmafReader) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks(data, sizes):
        events += reader.feed(chunk)
    reader.close()
    return events


split_sizes = st.lists(st.integers(0, 400), max_size=30)


@given(streams(), split_sizes)
def test_any_split_gives_the_same_events(data: bytes, sizes: list[int]) -> None:
    whole = read(data, [], CmafReader())
    assert read(data, sizes, CmafReader()) == whole
    assert read(data, [1] * min(len(data), 64), CmafReader()) == whole


def assert_only_media_errors(data: bytes, sizes: list[int], max_box_bytes: int) -> None:
    reader = CmafReader(max_box_bytes=max_box_bytes)
    try:
        for chunk in chunks(data, sizes):
            reader.feed(chunk)
            assert reader.buffered_bytes <= max_box_bytes + HEADER_SLACK
        reader.close()
    except MediaError:
        pass


max_boxes = st.sampled_from([64, 1000, 4096, 64 * 1024 * 1024])


@given(st.binary(max_size=3000), split_sizes, max_boxes)
def test_random_bytes_raise_only_media_errors(data: bytes, sizes: list[int], max_box_bytes: int) -> None:
    assert_only_media_errors(data, sizes, max_box_bytes)


@given(
    streams(),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), min_size=1, max_size=8),
    split_sizes,
    max_boxes,
)
def test_bit_flips_raise_only_media_errors(
    data: bytes, flips: list[tuple[int, int]], sizes: list[int], max_box_bytes: int
) -> None:
    mutated = bytearray(data)
    for position, bit in flips:
        mutated[position % len(mutated)] ^= 1 << bit
    assert_only_media_errors(bytes(mutated), sizes, max_box_bytes)


@given(streams(), st.integers(0, 1 << 20), split_sizes)
def test_truncations_raise_only_media_errors(data: bytes, cut: int, sizes: list[int]) -> None:
    assert_only_media_errors(data[: cut % (len(data) + 1)], sizes, 64 * 1024 * 1024)


@given(
    st.tuples(streams(), streams()), st.integers(0, 1 << 20), st.integers(0, 1 << 20), split_sizes, max_boxes
)
def test_splices_raise_only_media_errors(
    pair: tuple[bytes, bytes], cut: int, start: int, sizes: list[int], max_box_bytes: int
) -> None:
    first, second = pair
    spliced = first[: cut % (len(first) + 1)] + second[start % (len(second) + 1) :]
    assert_only_media_errors(spliced, sizes, max_box_bytes)


@given(st.integers(0, 0xFFFFFFFF), st.binary(min_size=4, max_size=4), st.binary(max_size=64), max_boxes)
def test_any_box_header_after_a_header_raises_only_media_errors(
    size: int, box_type: bytes, rest: bytes, max_box_bytes: int
) -> None:
    data = make_header() + size.to_bytes(4, "big") + box_type + rest
    assert_only_media_errors(data, [], max_box_bytes)
