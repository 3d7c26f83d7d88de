import itertools

from hypothesis import given
from hypothesis import strategies as st

from services.shared.timeline import FragmentEntry, TrackTimeline, place_fragment


def entries(
    durations: list[int], keyframes: list[bool], *, target: int, start: int = 0
) -> list[FragmentEntry]:
    out: list[FragmentEntry] = []
    t = start
    for duration, key in zip(durations, keyframes, strict=True):
        p = place_fragment(
            out[-1] if out else None,
            decode_time=t,
            duration_ticks=duration,
            independent=key,
            target_ticks=target,
        )
        out.append(
            FragmentEntry(
                decode_time=t,
                duration_ticks=duration,
                sample_count=1,
                independent=key,
                segment_number=p.segment_number,
                segment_start=p.segment_start,
                part_number=p.part_number,
                size=100,
                ingest_time_ms=t,
            )
        )
        t += duration
    return out


def test_gop_equal_to_target_gives_one_segment_per_fragment() -> None:
    es = entries([2000] * 5, [True] * 5, target=2000)
    assert [e.segment_number for e in es] == [0, 1, 2, 3, 4]
    assert all(e.part_number == 0 for e in es)


def test_first_segment_number_is_on_the_target_grid() -> None:
    es = entries([2000] * 3, [True] * 3, target=2000, start=90_000 * 2000)
    assert es[0].segment_number == 90_000


def test_chunks_join_until_target_then_close_at_next_keyframe() -> None:
    # 0.5 s chunks, keyframe every 2 s: 4 parts per segment
    keys = [i % 4 == 0 for i in range(12)]
    es = entries([500] * 12, keys, target=2000)
    assert [e.segment_number for e in es] == [0] * 4 + [1] * 4 + [2] * 4
    assert [e.part_number for e in es[:5]] == [0, 1, 2, 3, 0]


def test_per_frame_fragments_close_at_the_frame_nearest_the_target() -> None:
    # AAC at 48 kHz, one 1024-sample frame per fragment, 2 s target: 94 frames (2.0053 s) is nearest
    es = entries([1024] * 200, [True] * 200, target=96000)
    first = [e for e in es if e.segment_number == es[0].segment_number]
    assert len(first) == 94


def test_close_gop_to_target_gives_gop_sized_segments() -> None:
    es = entries([1920] * 4, [True] * 4, target=2000)  # 1.92 s GOPs, 2 s target
    assert [e.part_number for e in es] == [0, 0, 0, 0]


def test_segment_cannot_close_without_a_keyframe() -> None:
    keys = [True, False, False, False, False, False, True]
    es = entries([500] * 7, keys, target=2000)
    assert [e.segment_number for e in es] == [0] * 6 + [1]


def test_gap_starts_a_new_segment_at_a_keyframe() -> None:
    es = entries([500, 500], [True, True], target=2000)
    after_gap = place_fragment(
        es[-1], decode_time=5000, duration_ticks=500, independent=True, target_ticks=2000
    )
    assert (after_gap.segment_number, after_gap.part_number) == (1, 0)


def test_segments_group_and_completion() -> None:
    keys = [i % 4 == 0 for i in range(10)]
    timeline = TrackTimeline(entries([500] * 10, keys, target=2000))
    segments = list(timeline.segments())
    assert [s.number for s in segments] == [0, 1, 2]
    assert [s.complete for s in segments] == [True, True, False]
    assert segments[1].start_time == 2000 and segments[1].duration_ticks == 2000
    seg = timeline.segment_at(2000)
    assert seg is not None and seg.complete and len(seg.fragments) == 4
    assert timeline.segment_at(2500) is None  # a part, not a segment start


def test_append_refuses_going_back() -> None:
    timeline = TrackTimeline(entries([1000, 1000], [True, True], target=1000))
    try:
        timeline.append(timeline.entries()[0])
    except ValueError:
        pass
    else:
        raise AssertionError("append accepted a decreasing decode time")


def test_drop_before_leaves_no_headless_segment() -> None:
    keys = [i % 4 == 0 for i in range(12)]
    timeline = TrackTimeline(entries([500] * 12, keys, target=2000))
    v = timeline.version
    assert timeline.drop_before(1000) == 2
    assert timeline.version > v
    # segment 0 lost its head: it is no longer listed
    assert [s.number for s in timeline.segments()] == [1, 2]


@given(
    st.lists(st.tuples(st.integers(1, 5000), st.booleans()), min_size=1, max_size=60),
    st.integers(100, 6000),
)
def test_segments_partition_the_timeline(frags: list[tuple[int, bool]], target: int) -> None:
    durations = [d for d, _ in frags]
    keys = [True] + [k for _, k in frags[1:]]
    timeline = TrackTimeline(entries(durations, keys, target=target))
    segments = list(timeline.segments())
    assert sum(len(s.fragments) for s in segments) == len(frags)
    numbers = [s.number for s in segments]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    for a, b in itertools.pairwise(segments):
        assert a.end_time == b.start_time
        assert b.fragments[0].independent


@given(
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30),
    st.integers(min_value=-20, max_value=600),
    st.integers(min_value=0, max_value=300),
)
def test_overlapping_matches_a_linear_scan(durations: list[int], start: int, length: int) -> None:
    es = entries(durations, [True] * len(durations), target=100, start=7)
    line = TrackTimeline(es)
    end = start + length
    assert line.overlapping(start, end) == tuple(e for e in es if e.end_time > start and e.decode_time < end)


@given(
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30),
    st.integers(min_value=-20, max_value=600),
    st.integers(min_value=0, max_value=40),
)
def test_preceding_matches_a_linear_scan(durations: list[int], time: int, count: int) -> None:
    es = entries(durations, [True] * len(durations), target=100, start=7)
    before = [e for e in es if e.decode_time < time]
    assert TrackTimeline(es).preceding(time, count) == tuple(before[max(0, len(before) - count) :])
