"""One way to subscribe to what happens inside the control plane.

Monitors (git, usage, later orchestration) react to the same few happenings: an event was
stored, a session's state changed, a pane printed, a session was removed, new usage rows
arrived. Each is a :class:`Signal`; a subscriber that raises is logged and skipped, so one
broken subscriber can never abort the caller half-way (a kill that stopped the agent but not
its bookkeeping) nor starve the subscribers after it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

log = logging.getLogger("hive_lab.signals")

T = TypeVar("T")


class Signal(Generic[T]):
    """A named happening with an ordered list of subscribers, each called in isolation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[[T], Any]] = []

    def connect(self, subscriber: Callable[[T], Any]) -> Callable[[], None]:
        """Subscribe; returns the function that unsubscribes again."""
        self._subscribers.append(subscriber)
        return lambda: self.disconnect(subscriber)

    def disconnect(self, subscriber: Callable[[T], Any]) -> None:
        try:
            self._subscribers.remove(subscriber)
        except ValueError:
            pass

    def emit(self, value: T) -> int:
        """Call every subscriber with ``value``; returns how many failed (each is logged)."""
        failed = 0
        for subscriber in list(self._subscribers):
            try:
                subscriber(value)
            except Exception:
                failed += 1
                log.exception("subscriber %r of signal %r failed", subscriber, self.name)
        return failed

    def __len__(self) -> int:
        return len(self._subscribers)


@dataclass(frozen=True)
class StateChange:
    """``session`` moved from ``previous`` to ``state`` (both :class:`~.status.State`)."""

    session: str
    state: Any
    previous: Any


@dataclass
class Signals:
    """Every signal of one control plane, created together and handed to each component."""

    stored: Signal[Any] = field(default_factory=lambda: Signal("stored"))  # an Event, committed
    state_changed: Signal[StateChange] = field(default_factory=lambda: Signal("state_changed"))
    activity: Signal[Any] = field(default_factory=lambda: Signal("activity"))  # a Session printed
    removed: Signal[Any] = field(default_factory=lambda: Signal("removed"))  # a Session removed
    usage: Signal[str] = field(default_factory=lambda: Signal("usage"))  # session with new rows
    # A hook the agent waited on that reached us only later, through the spool: no policy
    # could answer it in time (the guard failed open for it).
    unguarded: Signal[Any] = field(default_factory=lambda: Signal("unguarded"))
