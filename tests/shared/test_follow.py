"""The follower's decisions (apply, reload, coalesce, safety net) over a scripted store, and the
announcing signal over real UDP on loopback. Against real Cassandra:
tests/integration/test_shared_stores.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.shared.announce import (
    AnnounceSender,
    ChannelChanged,
    Committed,
    Datagram,
    TrackChanged,
    listen,
)
from services.shared.errors import StoreUnavailable
from services.shared.follow import AnnouncingSignal, FollowedStore, Follower
from services.shared.signal import LocalSignal
from services.shared.store.index import Learned
from services.shared.timeline import FragmentEntry
from tests.shared.entries import entry

ME, PEER = 1, 2


@dataclass
class ScriptedStore:
    """Answers ``learn_entry`` with ``learned``; records every reload; ``gate`` holds reloads."""

    learned: Learned = Learned.APPLIED
    tracks: dict[str, list[str]] = field(default_factory=lambda: {"ch": ["a", "v"]})
    calls: list[tuple[str, ...]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    fail: bool = False

    def learn_entry(self, channel: str, track: str, entry: FragmentEntry) -> Learned:
        self.calls.append(("learn", channel, track))
        return self.learned

    async def _reload(self, *call: str) -> None:
        self.calls.append(call)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise StoreUnavailable("down")

    async def refresh_timeline(self, channel: str, track: str) -> int:
        await self._reload("refresh", channel, track)
        return 1

    async def reload_tracks(self, channel: str) -> None:
        await self._reload("tracks", channel)

    async def reload_channel(self, channel: str) -> bool:
        await self._reload("channel", channel)
        return True

    def known_tracks(self, channel: str) -> list[str] | None:
        return self.tracks.get(channel)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def follower(store: ScriptedStore, signal: LocalSignal, clock: Clock | None = None) -> Follower:
    return Follower(
        store, signal, sender=ME, tick_s=0.5, demand_s=60, reload_s=10, monotonic=clock or Clock()
    )


def committed(t: int, *, sender: int = PEER, track: str = "v") -> Datagram:
    return Datagram(sender=sender, announcement=Committed(channel="ch", track=track, entry=entry(t)))


async def settle(follow: Follower) -> None:
    """Let scheduled reloads run to the end."""
    for _ in range(20):
        await asyncio.sleep(0)
    await follow.close()


def test_the_scripted_store_is_a_followed_store() -> None:
    assert isinstance(ScriptedStore(), FollowedStore)


async def test_an_entry_that_follows_on_wakes_waiters_at_once() -> None:
    store, signal = ScriptedStore(), LocalSignal()
    follow = follower(store, signal)
    waiter = asyncio.create_task(signal.wait("ch", 5))
    await asyncio.sleep(0)
    follow.handle(committed(10))
    assert signal.version("ch") == 1  # synchronously, no store read
    assert await waiter
    assert store.calls == [("learn", "ch", "v")] and follow.applied == 1


async def test_own_and_known_announcements_change_nothing() -> None:
    store, signal = ScriptedStore(learned=Learned.KNOWN), LocalSignal()
    follow = follower(store, signal)
    follow.handle(committed(10, sender=ME))
    assert store.calls == []
    follow.handle(committed(10))
    await settle(follow)
    assert store.calls == [("learn", "ch", "v")] and signal.version("ch") == 0


async def test_a_gap_reloads_the_track_then_wakes_waiters() -> None:
    store, signal = ScriptedStore(learned=Learned.GAP), LocalSignal()
    follow = follower(store, signal)
    follow.handle(committed(30))
    assert signal.version("ch") == 0
    await settle(follow)
    assert store.calls == [("learn", "ch", "v"), ("refresh", "ch", "v")]
    assert signal.version("ch") == 1


async def test_reloads_of_one_key_coalesce_into_one_rerun() -> None:
    gate = asyncio.Event()
    store, signal = ScriptedStore(learned=Learned.GAP, gate=gate), LocalSignal()
    follow = follower(store, signal)
    follow.handle(committed(30))
    follow.handle(committed(40))  # before the reload started: that one reload covers it
    await asyncio.sleep(0)  # the reload is under way now (waiting on the gate)
    for t in (50, 60, 70):
        follow.handle(committed(t))  # may have missed these: exactly one more run
    follow.handle(committed(80, track="a"))
    gate.set()
    await settle(follow)
    reloads = [c for c in store.calls if c[0] != "learn"]
    assert sorted(reloads) == [("refresh", "ch", "a"), ("refresh", "ch", "v"), ("refresh", "ch", "v")]
    assert follow.reloads == 3


async def test_unknown_tracks_and_changes_reload_what_changed() -> None:
    store = ScriptedStore(learned=Learned.UNKNOWN_TRACK, tracks={"ch": ["v"], "other": [], "x": ["v"]})
    signal = LocalSignal()
    follow = follower(store, signal)
    follow.handle(committed(10))
    follow.handle(Datagram(sender=PEER, announcement=ChannelChanged(channel="other")))
    follow.handle(Datagram(sender=PEER, announcement=TrackChanged(channel="x", track="v")))
    # Channels not loaded here are left alone: discovery loads them as they are when asked for.
    follow.handle(Datagram(sender=PEER, announcement=ChannelChanged(channel="elsewhere")))
    follow.handle(Datagram(sender=PEER, announcement=TrackChanged(channel="elsewhere", track="v")))
    await settle(follow)
    reloads = sorted(c for c in store.calls if c[0] != "learn")
    assert reloads == [("channel", "other"), ("tracks", "ch"), ("tracks", "x")]
    assert signal.version("ch") == signal.version("other") == signal.version("x") == 1
    assert signal.version("elsewhere") == 0


async def test_a_commit_to_a_channel_not_loaded_here_loads_it() -> None:
    """Every packager follows every live channel: one taking a channel over finds it warm."""
    store, signal = ScriptedStore(learned=Learned.UNKNOWN_CHANNEL), LocalSignal()
    follow = follower(store, signal)
    follow.handle(committed(10))
    follow.handle(committed(11))
    follow.handle(committed(12))  # before the pending load has started: folded into it
    await settle(follow)
    assert [c for c in store.calls if c[0] != "learn"] == [("channel", "ch")]
    assert signal.version("ch") == 1


async def test_a_failed_reload_still_wakes_waiters_and_is_not_fatal() -> None:
    store, signal = ScriptedStore(learned=Learned.GAP, fail=True), LocalSignal()
    follow = follower(store, signal)
    follow.handle(committed(30))
    await settle(follow)
    assert signal.version("ch") == 1


async def test_safety_net_refreshes_quiet_tracks_of_requested_channels() -> None:
    clock = Clock()
    store, signal = ScriptedStore(tracks={"ch": ["a", "v"], "gone": []}), LocalSignal()
    follow = follower(store, signal, clock)
    follow.touch("ch")
    follow.touch("nope")  # not loaded here (a 404 flood, say): no store reads for it
    follow.handle(committed(10))  # "v" is current: only "a" is quiet
    follow.tick()
    await settle(follow)
    assert [c for c in store.calls if c[0] != "learn"] == [("refresh", "ch", "a")]

    store.calls.clear()
    clock.now += 0.5  # a tick later "v" has heard nothing either
    follow.tick()
    await settle(follow)
    assert sorted(store.calls) == [("refresh", "ch", "a"), ("refresh", "ch", "v")]

    store.calls.clear()
    follow.tick(full=True)
    await settle(follow)
    assert store.calls == [("channel", "ch")]

    store.calls.clear()
    clock.now += 60  # nobody asked for a minute: left alone
    follow.tick()
    follow.tick(full=True)
    await settle(follow)
    assert store.calls == []


async def test_ingest_nodes_only_reload_channels_now_and_then() -> None:
    store, signal = ScriptedStore(), LocalSignal()
    follow = Follower(store, signal, sender=ME, timelines=False, monotonic=Clock())
    follow.touch("ch")
    follow.tick()
    follow.tick(full=True)
    await settle(follow)
    assert store.calls == [("channel", "ch")]


async def test_the_safety_net_runs_by_itself() -> None:
    store, signal = ScriptedStore(), LocalSignal()
    follow = Follower(store, signal, sender=ME, tick_s=0.01, reload_s=0.02)
    follow.touch("ch")
    follow.start()
    await asyncio.sleep(0.1)
    await follow.close()
    assert ("refresh", "ch", "v") in store.calls and ("channel", "ch") in store.calls


async def test_announcing_signal_wakes_locally_and_tells_the_packagers() -> None:
    got: list[Datagram] = []
    arrived = asyncio.Event()

    def handle(datagram: Datagram) -> None:
        got.append(datagram)
        if len(got) == 3:
            arrived.set()

    endpoint = await listen("127.0.0.1", 0, handle)
    sender = AnnounceSender([f"127.0.0.1:{endpoint.port}"], sender=ME)
    await sender.open()
    local = LocalSignal()
    signal = AnnouncingSignal(local, sender)
    try:
        signal.committed("ch", "v", entry(10))
        signal.changed("ch", "v")
        signal.changed("ch", None)
        signal.notify("ch")  # local only
        async with asyncio.timeout(5):
            await arrived.wait()
    finally:
        sender.close()
        endpoint.close()
    assert signal.version("ch") == local.version("ch") == 4
    assert [d.announcement for d in got] == [
        Committed(channel="ch", track="v", entry=entry(10)),
        TrackChanged(channel="ch", track="v"),
        ChannelChanged(channel="ch"),
    ]
    assert not await signal.wait("ch", 0.01)
