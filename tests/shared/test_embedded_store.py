from pathlib import Path

from services.shared.channels import ChannelConfig, TrackRecord
from services.shared.store.base import CommitResult
from services.shared.store.embedded import EmbeddedStore
from services.shared.timeline import FragmentEntry
from tests.shared import entries
from tests.shared.entries import INFO


def entry(t: int, *, filler: bool = False, size: int = 3) -> FragmentEntry:
    """A 2 s, 50-frame fragment at ``t``."""
    return entries.entry(t, duration=180000, samples=50, filler=filler, size=size)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.open()
    await store.put_channel(ChannelConfig(name="ch", dvr_window_s=60))
    await store.put_track(TrackRecord(channel="ch", name="v", info=INFO, created_ms=5), b"INIT", ttl_s=60)
    assert await store.set_epoch_if_absent("ch", 1234) == 1234
    assert await store.set_epoch_if_absent("ch", 9999) == 1234
    for t in (0, 180000):
        assert (
            await store.commit_fragment("ch", "v", entry(t), b"frag%d" % t, ttl_s=60) is CommitResult.STORED
        )
    await store.put_meta("ch", "k", b"value", ttl_s=60)
    await store.close()

    again = EmbeddedStore(tmp_path)
    await again.open()
    assert (await again.get_channel("ch")) == ChannelConfig(name="ch", dvr_window_s=60)
    assert [r.info for r in await again.get_tracks("ch")] == [INFO]
    assert await again.get_init("ch", "v") == b"INIT"
    assert await again.get_epoch("ch") == 1234
    timeline = await again.get_timeline("ch", "v")
    assert [e.decode_time for e in timeline.entries()] == [0, 180000]
    assert await again.get_fragment("ch", "v", 180000) == b"frag180000"
    assert await again.get_meta("ch", "k") == b"value"
    await again.close()


async def test_duplicate_is_not_stored_twice_and_filler_is_replaced(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.open()
    assert await store.commit_fragment("ch", "v", entry(0), b"first", ttl_s=60) is CommitResult.STORED
    assert (
        await store.commit_fragment("ch", "v", entry(0, size=6), b"second", ttl_s=60)
        is CommitResult.DUPLICATE
    )
    assert await store.get_fragment("ch", "v", 0) == b"first"
    await store.commit_fragment("ch", "v", entry(180000, filler=True), b"slate", ttl_s=60)
    result = await store.commit_fragment("ch", "v", entry(180000), b"real", ttl_s=60)
    assert result is CommitResult.REPLACED_FILLER
    assert await store.get_fragment("ch", "v", 180000) == b"real"
    found = (await store.get_timeline("ch", "v")).find(180000)
    assert found is not None and not found.filler
    await store.close()


async def test_ttl_sweep_expires_bytes_and_entries(tmp_path: Path) -> None:
    clock = Clock()
    store = EmbeddedStore(tmp_path, clock_ms=clock)
    await store.open()
    await store.commit_fragment("ch", "v", entry(0), b"old", ttl_s=10)
    clock.ms += 5_000
    await store.commit_fragment("ch", "v", entry(180000), b"new", ttl_s=10)
    clock.ms += 6_000  # the first expired, the second not
    assert await store.sweep() == 1
    assert await store.get_fragment("ch", "v", 0) is None
    assert await store.get_fragment("ch", "v", 180000) == b"new"
    assert [e.decode_time for e in (await store.get_timeline("ch", "v")).entries()] == [180000]
    await store.close()


async def test_delete_channel_removes_everything(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.open()
    await store.put_channel(ChannelConfig(name="ch"))
    await store.commit_fragment("ch", "v", entry(0), b"x", ttl_s=60)
    await store.delete_channel("ch")
    assert await store.get_channel("ch") is None
    assert len(await store.get_timeline("ch", "v")) == 0
    assert await store.get_fragment("ch", "v", 0) is None
    await store.close()
