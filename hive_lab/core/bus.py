"""In-process publish/subscribe for the live event stream.

Each subscriber has a bounded queue. Publishing never waits: a subscriber whose queue is full
is marked lagging and dropped from the fan-out, and its reader tells the client to resync from
the last id it delivered. One slow client can therefore neither stall the server nor the others.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


class Lagging(Exception):
    """The subscriber fell more than its queue size behind."""


@dataclass(eq=False)
class Subscription:
    maxsize: int = 1000
    queue: deque[tuple[int, str]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lagging: bool = False
    closed: bool = False

    def push(self, item: tuple[int, str]) -> bool:
        if len(self.queue) >= self.maxsize:
            self.lagging = True
            self.queue.clear()
            self.wake.set()
            return False
        self.queue.append(item)
        self.wake.set()
        return True

    def drain(self) -> list[tuple[int, str]]:
        """Everything queued right now (raises :class:`Lagging` once behind)."""
        if self.lagging:
            raise Lagging()
        items = list(self.queue)
        self.queue.clear()
        return items

    async def get(self, timeout: float | None = None) -> tuple[int, str] | None:
        """Next ``(id, json)``; None on timeout; raises :class:`Lagging` once behind."""
        while not self.queue:
            if self.lagging:
                raise Lagging()
            if self.closed:
                return None
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        if self.lagging:
            raise Lagging()
        return self.queue.popleft()


class Broadcaster:
    """Fan-out of already-serialised events to every live subscriber."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(maxsize=maxsize)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        sub.wake.set()
        self._subs.discard(sub)

    def publish(self, event_id: int, text: str) -> None:
        for sub in list(self._subs):
            if not sub.push((event_id, text)):
                self._subs.discard(sub)

    def close(self) -> None:
        for sub in list(self._subs):
            self.unsubscribe(sub)

    def __len__(self) -> int:
        return len(self._subs)
