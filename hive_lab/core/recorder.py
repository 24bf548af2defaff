"""Recording events: group commit, status derivation and live publishing in one pass.

Concurrent hook calls are gathered and written in one SQLite transaction per loop iteration.
Inside that transaction every new hook event goes through the status machine; a state change
becomes a ``StateChanged`` event stored in the same transaction, so an event and the state it
caused are never half-written. Only after the commit are events published, in id order.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Sequence

from . import events as ev
from .bus import Broadcaster
from .events import Event
from .signals import Signals, StateChange
from .status import State, Tracker
from .store import Store

log = logging.getLogger("hive_lab.recorder")


def state_event(session: str, state: State, previous: State | None) -> Event:
    payload = {"state": state.to_json(), "record": state.to_record(),
               "previous": previous.to_json() if previous else None,
               "previous_record": previous.to_record() if previous else None}
    summary = state.name + (f" ({state.reason}{': ' + state.tool if state.tool else ''})"
                            if state.reason else "")
    return ev.internal(session, ev.STATE_CHANGED, payload, summary)


class Recorder:
    def __init__(self, store: Store, bus: Broadcaster, tracker: Tracker,
                 signals: Signals) -> None:
        self.store = store
        self.bus = bus
        self.tracker = tracker
        self.signals = signals
        self._pending: list[tuple[Event, asyncio.Future[tuple[int, bool]]]] = []
        self._scheduled = False

    async def record(self, event: Event) -> tuple[int, bool]:
        """Store ``event`` (batched with its neighbours); returns ``(id, duplicate)``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, bool]] = loop.create_future()
        self._pending.append((event, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            results = self.record_now([e for e, _ in batch])
        except Exception as exc:  # the database failed: every caller hears it, nothing half-done
            log.exception("storing %d events failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

    def record_now(self, events: Sequence[Event]) -> list[tuple[int, bool]]:
        """Store synchronously in one transaction, derive states, then publish."""
        fresh: list[Event] = []
        before = dict(self.tracker.states)

        def derive(event: Event) -> list[Event]:
            fresh.append(event)
            if event.agent == "hive":
                return []
            prev = self.tracker.states.get(event.session)
            state = self.tracker.on_hook(event.session, event.event, event.payload, event.time)
            if state is None:
                return []
            extra = state_event(event.session, state, prev)
            fresh.append(extra)
            return [extra]

        try:
            results = self.store.insert_events(events, on_inserted=derive)
        except BaseException:
            self.tracker.states = before  # the transaction rolled back: so does the state
            raise
        self.publish(fresh)
        return results

    def transition(self, session: str, state: State, previous: State | None) -> Event:
        """Record a state change decided outside hooks (pane, screen, spawn)."""
        event = state_event(session, state, previous)
        self.record_now([event])
        return event

    def publish(self, fresh: Sequence[Event]) -> None:
        """After the commit: the stream first, then the subscribers, in id order."""
        for event in sorted(fresh, key=lambda e: e.id or 0):
            if event.id is None:
                continue
            self.bus.publish(event.id, json.dumps(event.to_json(), ensure_ascii=False))
            self.signals.stored.emit(event)
            if event.event == ev.STATE_CHANGED and event.agent == ev.HIVE_AGENT:
                prev = event.payload.get("previous_record")
                self.signals.state_changed.emit(StateChange(
                    event.session, State.from_record(event.payload["record"]),
                    State.from_record(prev) if prev else None))

