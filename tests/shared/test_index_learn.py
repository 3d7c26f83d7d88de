"""Entries learned from other processes: ``StoreIndex.learn``, out-of-order ``apply`` and
``TrackTimeline.insert``."""

from __future__ import annotations

import pytest

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.store.base import CommitResult
from services.shared.store.index import Learned, StoreIndex
from services.shared.timeline import TrackTimeline
from tests.shared.entries import INFO, entry


def loaded(*times: int) -> StoreIndex:
    index = StoreIndex()
    index.put_channel(ChannelConfig(name="ch"))
    index.put_track(TrackRecord(channel="ch", name="v", info=INFO, created_ms=1))
    for t in times:
        index.apply("ch", "v", entry(t))
    return index


def decode_times(index: StoreIndex) -> list[int]:
    return [e.decode_time for e in index.timeline("ch", "v").entries()]


def test_insert_puts_an_entry_in_its_place_and_bumps_the_version() -> None:
    timeline = TrackTimeline([entry(0), entry(20), entry(30)])
    version = timeline.version
    timeline.insert(entry(10))
    assert [e.decode_time for e in timeline.entries()] == [0, 10, 20, 30]
    assert timeline.version == version + 1
    assert timeline.find(10) == entry(10)
    assert [e.decode_time for e in timeline.overlapping(5, 25)] == [0, 10, 20]
    timeline.insert(entry(-10))  # before the first one, too
    assert timeline.first == entry(-10)
    with pytest.raises(ValueError, match="exists already"):
        timeline.insert(entry(20))


def test_learn_appends_only_what_follows_on() -> None:
    index = loaded(0, 10)
    assert index.learn("ch", "v", entry(20)) is Learned.APPLIED
    assert index.learn("ch", "v", entry(20)) is Learned.KNOWN
    assert index.learn("ch", "v", entry(40)) is Learned.GAP  # 30 is missing: reload instead
    assert index.learn("ch", "v", entry(5)) is Learned.GAP  # before the last: reload instead
    assert decode_times(index) == [0, 10, 20]


def test_learn_replaces_filler_with_the_real_fragment() -> None:
    index = loaded(0)
    index.apply("ch", "v", entry(10, filler=True))
    assert index.learn("ch", "v", entry(10)) is Learned.APPLIED
    assert index.timeline("ch", "v").find(10) == entry(10)
    assert index.learn("ch", "v", entry(10, filler=True)) is Learned.KNOWN


def test_learn_needs_a_loaded_channel_track_and_timeline() -> None:
    index = loaded()
    assert index.learn("other", "v", entry(0)) is Learned.UNKNOWN_CHANNEL
    assert index.learn("ch", "a", entry(0)) is Learned.UNKNOWN_TRACK
    assert index.learn("ch", "v", entry(0)) is Learned.GAP  # empty timeline: is it the first?


def test_apply_inserts_a_commit_older_than_the_last_entry() -> None:
    index = loaded(0, 20)
    assert index.apply("ch", "v", entry(10)) is CommitResult.STORED
    assert index.apply("ch", "v", entry(10)) is CommitResult.DUPLICATE
    assert decode_times(index) == [0, 10, 20]


def test_set_tracks_and_put_epoch_take_what_storage_holds() -> None:
    index = loaded(0)
    index.set_epoch("ch", 5)
    index.put_epoch("ch", 6)
    assert index.get_epoch("ch") == 6
    index.put_epoch("ch", None)
    assert index.get_epoch("ch") is None
    audio = TrackRecord(channel="ch", name="a", info=INFO, created_ms=2)
    index.set_tracks("ch", [audio])
    assert index.get_tracks("ch") == [audio]
    assert index.find_timeline("ch", "v") is None
