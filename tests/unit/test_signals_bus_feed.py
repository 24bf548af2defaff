"""Direct tests of the subscription mechanism, the live bus and the replay-then-live feed."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from hive_lab.core import events as ev
from hive_lab.core.bus import Broadcaster, Lagging
from hive_lab.core.feed import event_feed
from hive_lab.core.signals import Signal
from hive_lab.core.store import Store


def test_a_failing_subscriber_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    signal: Signal[int] = Signal("removed")
    seen: list[tuple[str, int]] = []
    signal.connect(lambda v: seen.append(("first", v)))
    signal.connect(lambda v: 1 / 0)
    undo = signal.connect(lambda v: seen.append(("third", v)))
    with caplog.at_level(logging.ERROR, "hive_lab.signals"):
        assert signal.emit(7) == 1
    assert seen == [("first", 7), ("third", 7)]
    assert "signal 'removed' failed" in caplog.text
    undo()
    signal.emit(8)
    assert seen[-1] == ("first", 8) and len(signal) == 2


def test_bus_drops_a_lagging_subscriber_without_blocking_the_others() -> None:
    bus = Broadcaster()
    slow, fast = bus.subscribe(maxsize=2), bus.subscribe(maxsize=100)
    for i in range(1, 6):
        bus.publish(i, f"e{i}")
    assert [i for i, _ in fast.drain()] == [1, 2, 3, 4, 5]
    with pytest.raises(Lagging):
        slow.drain()
    assert len(bus) == 1  # the lagging one is out of the fan-out


def _store_with(tmp_path: Path, n: int) -> Store:
    store = Store(tmp_path / "hive.db")
    store.insert_events([ev.internal("s", ev.GIT_CHANGED, {"n": i}) for i in range(n)])
    return store


async def _take(feed, count: int) -> list:
    out = []
    async for item in feed:
        out.append(item)
        if len(out) == count:
            break
    return out


def test_feed_replays_then_goes_live_with_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    store, bus = _store_with(tmp_path, 3), Broadcaster()

    async def run() -> list:
        feed = event_feed(store, bus, after=1, filters={}, queue_size=100, heartbeat=5)
        first = await _take(feed, 4)  # hello, events 2 and 3, live
        # events stored and published while the client is between replay and live
        fresh = [ev.internal("s", ev.GIT_CHANGED, {"n": 9})]
        store.insert_events(fresh)
        bus.publish(3, json.dumps({"id": 3}))  # a duplicate of a replayed event: skipped
        bus.publish(fresh[0].id, json.dumps(fresh[0].to_json()))
        rest = await _take(feed, 1)
        await feed.aclose()
        return first + rest

    items = asyncio.run(run())
    assert items[0].control["type"] == "hello"
    assert [json.loads(i.text)["id"] for i in items[1:3]] == [2, 3]
    assert items[3].control == {"type": "live", "last_id": 3}
    assert json.loads(items[4].text)["id"] == 4
    assert len(bus) == 0  # closing the feed unsubscribes


def test_feed_filters_and_heartbeats(tmp_path: Path) -> None:
    store, bus = Store(tmp_path / "hive.db"), Broadcaster()
    store.insert_events([ev.internal("a", ev.GIT_CHANGED, {}), ev.internal("b", ev.GIT_CHANGED, {})])

    async def run() -> list:
        feed = event_feed(store, bus, 0, {"session": "b"}, 100, heartbeat=0.05)
        items = await _take(feed, 4)
        await feed.aclose()
        return items

    hello, only_b, live, beat = asyncio.run(run())
    assert json.loads(only_b.text)["session"] == "b"
    assert live.control["type"] == "live" and beat.control["type"] == "heartbeat"


def test_feed_tells_a_consumer_that_fell_behind_to_resync(tmp_path: Path) -> None:
    store, bus = Store(tmp_path / "hive.db"), Broadcaster()

    async def run() -> list:
        feed = event_feed(store, bus, 0, {}, queue_size=3, heartbeat=5)
        items = await _take(feed, 2)  # hello, live
        for i in range(1, 10):
            bus.publish(i, json.dumps({"id": i}))
        items += await _take(feed, 1)
        await feed.aclose()
        return items

    items = asyncio.run(run())
    assert items[-1].control["type"] == "resync" and items[-1].control["after"] == 0
