"""The event feed behind the WebSocket stream: replay from the store, then live, no gap.

It subscribes to the live bus *before* replaying, and skips live events it already sent, so a
client reconnecting with its last id sees every event exactly once. The transport (a
WebSocket in :mod:`hive_lab.server.stream`) only writes what this yields, which keeps the
ordering logic testable without a server.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncGenerator

from ..wire import MSG_HEARTBEAT, MSG_HELLO, MSG_LIVE, MSG_RESYNC
from .bus import Broadcaster, Lagging
from .store import Store

REPLAY_PAGE = 500


@dataclass(frozen=True)
class FeedItem:
    """Either an event (``text`` is its JSON) or a control message (``control`` is its dict).

    ``batch_end`` marks the last event of what was queued at once, so a transport can wait
    for its socket once per batch instead of once per message.
    """

    text: str | None = None
    control: dict[str, Any] | None = None
    batch_end: bool = True


def _wanted(text: str, filters: dict[str, str]) -> bool:
    if not filters:
        return True
    data = json.loads(text)
    return all(data.get(k) == v for k, v in filters.items())


async def event_feed(store: Store, bus: Broadcaster, after: int, filters: dict[str, str],
                     queue_size: int, heartbeat: float) -> AsyncGenerator[FeedItem, None]:
    """``hello``, the replay, ``live``, then live events and heartbeats; ``resync`` when the
    consumer fell more than ``queue_size`` behind (it should reconnect with ``after``)."""
    last = after
    sub = None
    try:
        yield FeedItem(control={"type": MSG_HELLO, "after": last,
                                "last_id": store.last_event_id()})
        while True:  # replay; if we fell behind while replaying, replay again
            sub = bus.subscribe(queue_size)
            while True:
                rows = store.events(after=last, limit=REPLAY_PAGE, session=filters.get("session"),
                                    event=filters.get("event"))
                if not rows:
                    break
                for event in rows:
                    yield FeedItem(text=json.dumps(event.to_json(), ensure_ascii=False))
                    last = event.id or last
            if not sub.lagging:
                break
            bus.unsubscribe(sub)
        yield FeedItem(control={"type": MSG_LIVE, "last_id": last})
        while True:
            item = await sub.get(timeout=heartbeat)
            if item is None:
                yield FeedItem(control={"type": MSG_HEARTBEAT, "last_id": last})
                continue
            batch = [item, *sub.drain()]
            wanted = []
            for event_id, text in batch:
                if event_id <= last:
                    continue
                if _wanted(text, filters):
                    wanted.append(text)
                last = event_id
            for i, text in enumerate(wanted):
                yield FeedItem(text=text, batch_end=i == len(wanted) - 1)
    except Lagging:
        yield FeedItem(control={"type": MSG_RESYNC, "after": last,
                                "detail": "client fell behind; reconnect with after"})
    finally:
        if sub is not None:
            bus.unsubscribe(sub)
