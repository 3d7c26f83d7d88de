import asyncio

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.store.base import CommitResult
from services.shared.store.index import ExpiryQueue, KeyedLocks, StoreIndex
from tests.shared.entries import INFO, entry


def record(channel: str, name: str) -> TrackRecord:
    return TrackRecord(channel=channel, name=name, info=INFO, created_ms=1)


def test_channels_epochs_and_tracks() -> None:
    index = StoreIndex()
    index.put_channel(ChannelConfig(name="b"))
    index.put_channel(ChannelConfig(name="a", dvr_window_s=5))
    assert [c.name for c in index.list_channels()] == ["a", "b"]
    assert index.get_channel("a") == ChannelConfig(name="a", dvr_window_s=5)
    assert index.get_channel("zz") is None
    assert index.set_epoch("a", 10) == 10
    assert index.set_epoch("a", 20) == 10  # set once
    assert index.get_epoch("a") == 10
    index.put_track(record("a", "v2"))
    index.put_track(record("a", "v1"))
    assert [r.name for r in index.get_tracks("a")] == ["v1", "v2"]
    assert index.get_track("a", "v1") == record("a", "v1")
    assert index.get_tracks("b") == []


def test_timelines_are_created_on_first_use_and_dropped_with_their_track_or_channel() -> None:
    index = StoreIndex()
    assert index.find_timeline("a", "v") is None
    index.timeline("a", "v").append(entry(0))
    index.timeline("a", "w").append(entry(0))
    index.timeline("b", "v").append(entry(0))
    index.put_track(record("a", "v"))
    index.put_track(record("a", "w"))
    index.set_epoch("a", 1)
    assert len(index.timeline("a", "v")) == 1
    assert sorted(key for key, _ in index.timelines()) == [("a", "v"), ("a", "w"), ("b", "v")]

    index.drop_track("a", "w")
    assert index.find_timeline("a", "w") is None
    assert [r.name for r in index.get_tracks("a")] == ["v"]

    index.drop_channel("a")
    assert index.find_timeline("a", "v") is None
    assert index.get_tracks("a") == []
    assert index.get_epoch("a") is None
    assert index.find_timeline("b", "v") is not None


def test_commit_rules_duplicate_and_filler() -> None:
    index = StoreIndex()
    assert index.classify("a", "v", entry(0)) is CommitResult.STORED
    assert index.apply("a", "v", entry(0)) is CommitResult.STORED
    assert index.classify("a", "v", entry(0, size=9)) is CommitResult.DUPLICATE
    assert index.apply("a", "v", entry(0, size=9)) is CommitResult.DUPLICATE
    assert index.timeline("a", "v").entries() == (entry(0),)

    index.apply("a", "v", entry(10, filler=True))
    assert index.classify("a", "v", entry(10, filler=True)) is CommitResult.DUPLICATE  # filler over filler
    assert index.classify("a", "v", entry(10)) is CommitResult.REPLACED_FILLER
    assert index.apply("a", "v", entry(10)) is CommitResult.REPLACED_FILLER
    assert index.classify("a", "v", entry(10)) is CommitResult.DUPLICATE
    assert index.timeline("a", "v").entries() == (entry(0), entry(10))


def test_expiry_queue_reports_the_newest_expired_entry_per_track() -> None:
    queue = ExpiryQueue()
    queue.add("a", "v", 0, expires_ms=100)
    queue.add("a", "v", 10, expires_ms=110)
    queue.add("a", "v", 20, expires_ms=120)
    queue.add("a", "w", 0, expires_ms=105)
    assert queue.pop_expired(99) == {}
    assert queue.pop_expired(110) == {("a", "v"): 10, ("a", "w"): 0}
    assert len(queue) == 1
    assert queue.pop_expired(1000) == {("a", "v"): 20}
    assert len(queue) == 0


def test_expiry_queue_skips_superseded_and_dropped_entries() -> None:
    queue = ExpiryQueue()
    queue.add("a", "v", 0, expires_ms=100)  # filler ...
    queue.add("a", "v", 0, expires_ms=500)  # ... replaced later: lives longer
    queue.add("b", "v", 0, expires_ms=100)
    queue.add("c", "v", 0, expires_ms=100)
    queue.add("c", "w", 0, expires_ms=100)
    queue.drop("b")
    queue.drop("c", "w")
    assert queue.pop_expired(200) == {("c", "v"): 0}
    assert queue.pop_expired(500) == {("a", "v"): 0}


async def test_keyed_locks_serialize_one_key_only_and_clean_up() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, name: str, pause_s: float) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(pause_s)
            order.append(f"{name}-")

    await asyncio.gather(hold("k", "first", 0.02), hold("k", "second", 0), hold("other", "third", 0))
    assert order.index("first-") < order.index("second+")  # same key: one after the other
    assert order.index("third+") < order.index("first-")  # another key: not held up
    assert len(locks) == 0
