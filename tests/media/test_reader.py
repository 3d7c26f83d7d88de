"""CmafReader on streams built in code: events, fragment data, defaults, and every rejection."""

from __future__ import annotations

import struct

import pytest

from services.shared.media.boxes import (
    EventMessageBox,
    FreeSpaceBox,
    MediaDataBox,
    MovieFragmentBox,
    MovieFragmentHeaderBox,
    TrackExtendsBox,
    TrackFragmentBox,
    TrackFragmentDecodeTimeBox,
    TrackFragmentHeaderBox,
    TrackRunBox,
    UnknownBox,
    parse_boxes,
    serialize,
)
from services.shared.media.errors import (
    BoxTooLarge,
    MalformedBox,
    MediaError,
    MissingHeader,
    NotIsoBmff,
    Truncated,
    UnsupportedCodec,
)
from services.shared.media.header import parse_header
from services.shared.media.models import CmafFragment, CmafHeader
from services.shared.media.reader import CmafReader, Event, FragmentReceived, HeaderReceived
from services.shared.media.synthetic import (
    make_fragment,
    make_header,
    make_header_of,
    make_moof,
    make_stream,
    make_trak,
)


def read_all(data: bytes, *, chunk: int | None = None, reader: CmafReader | None = None) -> list[Event]:
    reader = reader or CmafReader()
    step = chunk or max(len(data), 1)
    events: list[Event] = []
    for start in range(0, len(data), step):
        events += reader.feed(data[start : start + step])
    reader.close()
    return events


def fragments(events: list[Event]) -> list[CmafFragment]:
    return [e.fragment for e in events if isinstance(e, FragmentReceived)]


def headers(events: list[Event]) -> list[CmafHeader]:
    return [e.header for e in events if isinstance(e, HeaderReceived)]


def test_header_and_fragments() -> None:
    data = make_stream(fragments=3, samples=4, duration=3000)
    events = read_all(data)
    assert isinstance(events[0], HeaderReceived)
    frags = fragments(events)
    assert [f.sequence_number for f in frags] == [1, 2, 3]
    assert [f.decode_time for f in frags] == [0, 12000, 24000]
    assert all(f.duration_ticks == 12000 and f.sample_count == 4 and f.starts_with_keyframe for f in frags)
    assert [s.is_sync for s in frags[0].samples] == [True, False, False, False]
    assert [s.size for s in frags[0].samples] == [50, 57, 64, 71]
    assert headers(events)[0].data + b"".join(f.data for f in frags) == data


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    data = make_stream(fragments=2)
    assert read_all(data, chunk=1) == read_all(data)


def test_prefix_boxes_belong_to_the_fragment() -> None:
    emsg = EventMessageBox(scheme_id_uri="urn:x", value="1", presentation_time=0, message_data=b"hi")
    fragment = make_fragment(brands=("msdh", "msix", "lmsg"), prft_wallclock_ms=1_700_000_000_123, emsg=emsg)
    (frag,) = fragments(read_all(make_header() + fragment))
    assert frag.data == fragment
    assert frag.brands == ("msdh", "msdh", "msix", "lmsg")
    assert frag.is_last and not frag.is_filler
    assert frag.prft is not None
    assert (frag.prft.wallclock_ms, frag.prft.media_time) == (1_700_000_000_123, 0)


def test_slat_marks_a_filler_fragment() -> None:
    (frag,) = fragments(read_all(make_header() + make_fragment(brands=("cmfs", "slat"))))
    assert frag.is_filler and not frag.is_last


def test_filler_between_runs_is_dropped_and_inside_a_run_is_kept() -> None:
    free = serialize(FreeSpaceBox(payload=b"pad"))
    styp_fragment = make_fragment(brands=("msdh",))
    styp_len = int.from_bytes(styp_fragment[:4], "big")
    inner = styp_fragment[:styp_len] + free + styp_fragment[styp_len:]
    mfra = serialize(UnknownBox(box_type="mfra", payload=bytes(8)))
    events = read_all(free + make_header() + free + inner + free + mfra)
    assert [f.data for f in fragments(events)] == [inner]


def test_header_without_ftyp_is_accepted() -> None:
    data = make_header()
    moov = data[int.from_bytes(data[:4], "big") :]
    (header,) = headers(read_all(moov))
    assert (header.major_brand, header.data) == ("", moov)


def test_seeded_header_reads_a_bare_segment() -> None:
    header = parse_header(make_header(track_id=7))
    segment = make_fragment(track_id=7, brands=("msdh",)) + make_fragment(track_id=7, sequence_number=2)
    frags = fragments(read_all(segment, reader=CmafReader(header=header)))
    assert [f.track_id for f in frags] == [7, 7]


def test_fragment_without_any_header_is_missing_header() -> None:
    with pytest.raises(MissingHeader):
        read_all(make_fragment())


def test_fragment_of_a_track_not_in_the_header() -> None:
    with pytest.raises(MalformedBox) as excinfo:
        read_all(make_header(track_id=1) + make_fragment(track_id=2))
    assert (excinfo.value.box_type, excinfo.value.field) == ("tfhd", "track_id")


def test_later_header_replaces_the_tracks() -> None:
    data = (
        make_header(track_id=1)
        + make_fragment(track_id=1)
        + make_header(track_id=2)
        + make_fragment(track_id=2)
    )
    events = read_all(data)
    assert [type(e).__name__ for e in events] == ["HeaderReceived", "FragmentReceived"] * 2
    with pytest.raises(MalformedBox):
        read_all(make_header(track_id=1) + make_header(track_id=2) + make_fragment(track_id=1))


def test_two_track_header_and_interleaved_fragments() -> None:
    header = make_header_of([make_trak(track_id=1), make_trak(track_id=2, handler="soun")], [])
    data = (
        header
        + make_fragment(track_id=1)
        + make_fragment(track_id=2)
        + make_fragment(track_id=1, sequence_number=2)
    )
    assert [f.track_id for f in fragments(read_all(data))] == [1, 2, 1]


def defaults_fragment(tfhd: TrackFragmentHeaderBox, trun: TrackRunBox, mdat_size: int) -> bytes:
    moof = make_moof(track_id=1, sequence_number=1, decode_time=0, trun=trun, tfhd=tfhd)
    return moof + serialize(MediaDataBox(payload=bytes(mdat_size)))


def test_samples_fall_back_to_trex_then_tfhd_defaults() -> None:
    header = make_header(
        default_sample_duration=1024, default_sample_size=10, default_sample_flags=0x01010000
    )
    trun = TrackRunBox.build(sample_count=3, data_offset=0, first_sample_flags=0x02000000)
    (frag,) = fragments(read_all(header + defaults_fragment(TrackFragmentHeaderBox(), trun, 30)))
    assert [(s.size, s.duration_ticks, s.is_sync) for s in frag.samples] == [
        (10, 1024, True),
        (10, 1024, False),
        (10, 1024, False),
    ]
    tfhd = TrackFragmentHeaderBox(flags=0x020018, default_sample_duration=960, default_sample_size=4)
    (frag,) = fragments(read_all(header + defaults_fragment(tfhd, trun, 12)))
    assert [(s.size, s.duration_ticks) for s in frag.samples] == [(4, 960)] * 3
    assert frag.duration_ticks == 2880


def test_composition_offsets_are_resolved() -> None:
    fragment = make_fragment(sample_durations=(3000,) * 3, composition_offsets=(3000, -3000, 0))
    (frag,) = fragments(read_all(make_header() + fragment))
    assert [s.composition_offset_ticks for s in frag.samples] == [3000, -3000, 0]


def moof_with_runs(*runs: TrackRunBox) -> bytes:
    traf = TrackFragmentBox(children=(TrackFragmentHeaderBox(), TrackFragmentDecodeTimeBox(), *runs))
    return serialize(MovieFragmentBox(children=(MovieFragmentHeaderBox(), traf)))


def test_several_truns_continue_in_the_mdat() -> None:
    second = TrackRunBox.build(sample_count=2, sample_sizes=(3, 4), sample_durations=(10, 10))

    def first(offset: int) -> TrackRunBox:
        return TrackRunBox.build(
            sample_count=1, data_offset=offset, sample_sizes=(5,), sample_durations=(10,)
        )

    moof = moof_with_runs(first(len(moof_with_runs(first(0), second)) + 8), second)
    (frag,) = fragments(read_all(make_header() + moof + serialize(MediaDataBox(payload=bytes(12)))))
    assert [s.size for s in frag.samples] == [5, 3, 4]
    with pytest.raises(MalformedBox, match="overrun"):
        read_all(make_header() + moof + serialize(MediaDataBox(payload=bytes(11))))


def test_mdat_with_largesize_is_accepted() -> None:
    trun = TrackRunBox.build(sample_count=1, data_offset=0, sample_sizes=(6,), sample_durations=(1,))
    moof = make_moof(track_id=1, sequence_number=1, decode_time=0, trun=trun)  # data after an 8-byte header
    large_mdat = serialize(MediaDataBox(payload=b"sample", large_size=True))
    with pytest.raises(MalformedBox, match="data_offset"):
        read_all(make_header() + moof + large_mdat)
    moof = moof.replace(struct.pack(">i", len(moof) + 8), struct.pack(">i", len(moof) + 16))
    (frag,) = fragments(read_all(make_header() + moof + large_mdat))
    assert frag.data == moof + large_mdat


# -- rejections ---------------------------------------------------------------------------------------


def test_truncated_box_is_reported_on_close() -> None:
    data = make_stream(fragments=1)
    reader = CmafReader()
    reader.feed(data[:-5])
    assert reader.buffered_bytes > 0
    with pytest.raises(Truncated) as excinfo:
        reader.close()
    assert excinfo.value.box_type == "mdat"


@pytest.mark.parametrize(
    ("cut", "box_type"),
    [(4, "file"), (None, "moov")],
    ids=["inside-a-header", "ftyp-without-moov"],
)
def test_stream_ending_early(cut: int | None, box_type: str) -> None:
    data = make_header()
    ftyp = data[: int.from_bytes(data[:4], "big")]
    with pytest.raises(Truncated) as excinfo:
        read_all(ftyp[:cut] if cut else ftyp)
    assert excinfo.value.box_type == box_type


def test_fragment_cut_after_its_styp_or_moof() -> None:
    fragment = make_fragment(brands=("msdh",))
    styp_len = int.from_bytes(fragment[:4], "big")
    moof_len = int.from_bytes(fragment[styp_len : styp_len + 4], "big")
    with pytest.raises(Truncated, match="before the moof"):
        read_all(make_header() + fragment[:styp_len])
    with pytest.raises(Truncated, match="before the mdat"):
        read_all(make_header() + fragment[: styp_len + moof_len])


def test_size_zero_is_rejected() -> None:
    with pytest.raises(MalformedBox) as excinfo:
        read_all(make_header() + struct.pack(">I4s", 0, b"mdat") + bytes(100))
    assert (excinfo.value.box_type, excinfo.value.field) == ("mdat", "size")


@pytest.mark.parametrize("size", [1, 4, 7])
def test_sizes_below_the_header_are_rejected(size: int) -> None:
    extra = struct.pack(">Q", 9) if size == 1 else b""
    with pytest.raises(MalformedBox) as excinfo:
        read_all(make_header() + struct.pack(">I4s", size, b"free") + extra + bytes(16))
    assert excinfo.value.field == "size"


def test_size_beyond_the_body_is_truncated() -> None:
    with pytest.raises(Truncated):
        read_all(make_header() + struct.pack(">I4s", 1000, b"free") + bytes(10))


def test_box_over_the_limit_is_rejected_before_it_is_buffered() -> None:
    reader = CmafReader(max_box_bytes=10_000)
    header = make_header()
    reader.feed(header)
    with pytest.raises(BoxTooLarge) as excinfo:  # raised on the 8-byte header alone
        reader.feed(struct.pack(">I4s", 1 << 30, b"free"))
    assert (excinfo.value.box_type, excinfo.value.size) == ("free", 1 << 30)
    assert reader.buffered_bytes == 0
    with pytest.raises(BoxTooLarge):  # the reader stays failed
        reader.feed(b"")


def test_largesize_over_the_limit() -> None:
    reader = CmafReader(max_box_bytes=1000)
    with pytest.raises(BoxTooLarge):
        reader.feed(struct.pack(">I4sQ", 1, b"mdat", 1 << 40))


def test_a_fragment_run_over_the_limit() -> None:
    fragment = make_fragment(sample_sizes=(400, 400, 400), brands=("msdh",))
    header = make_header()
    reader = CmafReader(max_box_bytes=1200)
    reader.feed(header)
    with pytest.raises(BoxTooLarge) as excinfo:
        reader.feed(fragment)
    assert excinfo.value.box_type == "mdat"
    assert len(fragments(read_all(header + fragment, reader=CmafReader(max_box_bytes=len(fragment))))) == 1


def test_mdat_without_moof() -> None:
    with pytest.raises(MalformedBox, match="without a preceding moof"):
        read_all(make_header() + serialize(MediaDataBox(payload=b"x")))


def test_moof_followed_by_moof() -> None:
    fragment = make_fragment()
    moof = fragment[: int.from_bytes(fragment[:4], "big")]
    with pytest.raises(MalformedBox, match="followed by its mdat"):
        read_all(make_header() + moof + fragment)


def test_header_inside_a_fragment() -> None:
    styp = make_fragment(brands=("msdh",))[:20]
    with pytest.raises(MalformedBox, match="inside a fragment"):
        read_all(make_header() + styp + make_header())


def test_trun_sizes_larger_than_the_mdat() -> None:
    fragment = make_fragment(sample_sizes=(10, 10, 10))
    moof_len = int.from_bytes(fragment[:4], "big")
    short = fragment[:moof_len] + serialize(MediaDataBox(payload=bytes(29)))
    with pytest.raises(MalformedBox) as excinfo:
        read_all(make_header() + short)
    assert (excinfo.value.box_type, excinfo.value.field) == ("trun", "sample_size")


def test_trun_data_offset_into_the_moof() -> None:
    trun = TrackRunBox.build(sample_count=1, data_offset=8, sample_sizes=(1,), sample_durations=(1,))
    moof = make_moof(track_id=1, sequence_number=1, decode_time=0, trun=trun)
    moof = moof.replace(struct.pack(">i", len(moof) + 8), struct.pack(">i", 8))
    with pytest.raises(MalformedBox) as excinfo:
        read_all(make_header() + moof + serialize(MediaDataBox(payload=b"x")))
    assert excinfo.value.field == "data_offset"


def test_two_trafs_in_a_moof() -> None:
    fragment = make_fragment()
    moof_len = int.from_bytes(fragment[:4], "big")
    (moof,) = parse_boxes(fragment[:moof_len])
    assert isinstance(moof, MovieFragmentBox)
    traf = moof.first(TrackFragmentBox)
    assert traf is not None
    doubled = serialize(MovieFragmentBox(children=(*moof.children, traf)))
    with pytest.raises(MalformedBox) as excinfo:
        read_all(make_header() + doubled + fragment[moof_len:])
    assert (excinfo.value.box_type, excinfo.value.field) == ("moof", "traf")


def test_unknown_codec_is_unsupported() -> None:
    with pytest.raises(UnsupportedCodec, match="vp09"):
        read_all(make_header(entry=UnknownBox(box_type="vp09", payload=bytes(78))))


def mpeg_ts(packets: int) -> bytes:
    return b"".join(bytes([0x47, 0x40, 0x00, 0x10]) + bytes(184) for _ in range(packets))


@pytest.mark.parametrize(
    "data",
    [mpeg_ts(3), b"<!DOCTYPE html><html></html>", b'{"hello": "world"}', b"hello world, not a box"],
    ids=["mpeg-ts", "html", "json", "text"],
)
def test_not_iso_bmff(data: bytes) -> None:
    with pytest.raises(NotIsoBmff):
        read_all(data)
    with pytest.raises(NotIsoBmff):
        read_all(data, chunk=1)


def test_garbage_box_type_mid_stream() -> None:
    with pytest.raises(MalformedBox, match="not a box type"):
        read_all(make_header() + struct.pack(">I", 16) + b"\x00\x01\x02\x03" + bytes(8))


def test_events_before_an_error_are_returned_and_the_error_follows() -> None:
    data = make_stream(fragments=1)
    reader = CmafReader()
    events = reader.feed(data + serialize(MediaDataBox(payload=b"x")))
    assert len(events) == 2
    with pytest.raises(MalformedBox, match="without a preceding moof"):
        reader.close()
    with pytest.raises(MediaError):
        reader.feed(b"more")


def test_buffered_bytes_counts_the_pending_run() -> None:
    reader = CmafReader()
    header = make_header()
    reader.feed(header[:10])
    assert reader.buffered_bytes == 10
    reader.feed(header[10:])
    assert reader.buffered_bytes == 0
    reader.feed(make_fragment()[:50])
    assert reader.buffered_bytes == 50


def test_trex_defaults_of_a_header_seeded_reader() -> None:
    header = parse_header(
        make_header_of([make_trak(track_id=1)], [TrackExtendsBox(track_id=1, default_sample_duration=7)])
    )
    trun = TrackRunBox.build(sample_count=2, data_offset=0, sample_sizes=(1, 1))
    data = make_moof(track_id=1, sequence_number=1, decode_time=0, trun=trun) + serialize(
        MediaDataBox(payload=b"ab")
    )
    (frag,) = fragments(read_all(data, reader=CmafReader(header=header)))
    assert frag.duration_ticks == 14
