"""LiveState: the control room's one consumer of the event stream, shared by every view.

Why one: each view following the stream itself would multiply WebSocket connections and
fetches by the number of views. Here the stream task (on the kernel's loop, where widgets may
be touched) never makes an HTTP call: it records the event, notes which *parts* of the data
it made stale, and wakes the painter. The painter fetches the stale parts in a worker thread
(``asyncio.to_thread``: cells keep running meanwhile), then calls every ``on_change``
callback once with the set of parts that changed, at most once per :data:`MIN_PAINT_SECONDS`
whatever the event rate (redraws are coalesced).

``live.data.<part>`` holds plain dicts/lists exactly as the REST API returns them:

========== ===================================================================
sessions   ``GET sessions`` list
git        ``GET git`` ``sessions`` map (name -> git state)
usage      ``GET usage?by=session`` rows keyed by ``sessionId``
collisions ``GET git/conflicts``
tasks      ``GET tasks`` list
budgets    ``GET budgets`` report (``budgets`` list, ``paused`` map)
scopes     ``GET scope-requests?state=pending`` list
notifications ``GET notifications`` list (newest first)
pipelines  ``GET pipelines/{id}`` of each pipeline (newest :data:`PIPELINES_KEPT`), with
           ``history``, ``findings``, ``cost``
merges     ``GET merges`` list
events     the last :data:`RECENT` events seen (oldest first; no fetch, from the stream)
========== ===================================================================

``live.hooks[name]`` keeps each session's last agent (hook) payloads, newest first, from the
stream, so a "Needs you" card can say what is asked without another request.
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .. import wire
from ..client import HiveAPIError, HiveClient
from .fetchorder import FetchOrder

log = logging.getLogger(__name__)

MIN_PAINT_SECONDS = 0.15  # rounds start at most ~7 times a second (250 ms p95 needs < 0.25)
QUIET_SECONDS = 30.0  # on a quiet fleet, sessions are refetched so "since" stays true
RECENT = 200  # events kept in data.events
HOOKS_KEPT = 12  # agent payloads kept per session
SEED_EVENTS = 500  # events read at start to seed data.events and hooks
PIPELINES_KEPT = 30  # pipelines fetched in detail (newest first)

PARTS = frozenset({"sessions", "git", "usage", "collisions", "tasks", "budgets", "scopes",
                   "notifications", "pipelines", "merges", "events"})
FETCHED = PARTS - {"events"}

_TASKS = {"tasks"}
STALE_BY_EVENT: dict[str, set[str]] = {
    # StateChanged carries the new state itself: applied without a fetch (see _note), and a
    # task's own transitions come as TaskChanged
    wire.STATE_CHANGED: set(),
    wire.SESSION_CREATED: {"sessions"},
    wire.SESSION_REMOVED: {"sessions", "git", "collisions", "usage", "tasks"},
    wire.GIT_CHANGED: {"git", "collisions"},
    wire.CONFLICT_PREDICTED: {"collisions"},
    wire.USAGE_UPDATED: {"usage", "budgets"},
    wire.NOTIFICATION: {"notifications"},
    "TaskChanged": {"tasks", "sessions"},
    "CheckRan": _TASKS,
    "ScopeViolation": _TASKS,
    "ScopeRequested": {"scopes", "tasks"},
    wire.SCOPE_REQUEST_HOOK: {"scopes", "tasks"},
    wire.AGENT_RESTARTED: {"tasks", "sessions"},
    **{name: {"budgets", "tasks", "sessions"} for name in wire.BUDGET_EVENTS},
    **{name: {"pipelines"} for name in wire.PIPELINE_EVENTS},
    wire.MERGE_CHANGED: {"merges", "pipelines"},  # a pipeline's ``offered`` follows its item
}

Callback = Callable[[set[str]], None]


@dataclass
class LiveData:
    """What the views draw from; parts are replaced by fetches, never mutated in place."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    git: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    collisions: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    budgets: dict[str, Any] = field(default_factory=dict)
    scopes: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def session(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.sessions if s.get("name") == name), None)


def fetch_parts(client: HiveClient, parts: Iterable[str]) -> dict[str, Any]:
    """GET the given parts (blocking: call it off the loop). A part whose endpoint fails is
    left out (its old value stays); an unreachable server raises for the caller to retry."""
    wanted = set(parts)
    getters: dict[str, Callable[[], Any]] = {
        "sessions": client.sessions,
        "git": lambda: client.git()["sessions"],
        "usage": lambda: {u["sessionId"]: u for u in client.usage(by="session")["sessions"]},
        "collisions": client.conflicts,
        "tasks": client.tasks,
        "budgets": lambda: client.request("GET", "budgets"),
        "scopes": lambda: client.scope_requests(state="pending"),
        "notifications": lambda: client.notifications(limit=50),
        "pipelines": lambda: pipeline_details(client),
        "merges": client.merges,
    }
    out: dict[str, Any] = {}
    for part in ("sessions", *sorted(wanted - {"sessions"})):  # the table first
        if part not in wanted or part not in getters:
            continue
        try:
            out[part] = getters[part]()
        except HiveAPIError as exc:
            if exc.status == 0:
                raise  # unreachable: nothing else will work either
            log.debug("live: %s unavailable: %s", part, exc.detail)
    return out


_DETAILS: "weakref.WeakKeyDictionary[HiveClient, dict[str, tuple[dict[str, Any], dict[str, Any]]]]" \
    = weakref.WeakKeyDictionary()
SETTLED_SECONDS = 120.0  # a finished pipeline's stage costs are read from transcripts late


def pipeline_details(client: HiveClient) -> list[dict[str, Any]]:
    """Each pipeline with its history and findings (the list has neither), newest first.

    Why a cache: every StageChanged makes the part stale, and one GET per pipeline per round
    adds up. A finished pipeline (ready or canceled for :data:`SETTLED_SECONDS`) whose list
    entry is unchanged keeps the detail fetched before; the others are fetched again."""
    listed = sorted(client.pipelines(), key=lambda p: -float(p.get("created") or 0))
    cache = _DETAILS.setdefault(client, {})
    now = time.time()
    out, kept = [], {}
    for p in listed[:PIPELINES_KEPT]:
        pid = str(p["id"])
        state = p.get("state") or {}
        old = cache.get(pid)
        settled = (state.get("name") in ("ready", "canceled")
                   and now - float(state.get("since") or now) > SETTLED_SECONDS)
        if old is not None and settled and old[0] == p:
            detail = old[1]
        else:
            try:
                detail = client.pipeline(pid)
            except HiveAPIError as exc:
                if exc.status != 404:  # removed between the two calls: left out
                    raise
                continue
        kept[pid] = (p, detail)
        out.append(detail)
    _DETAILS[client] = kept
    return out


class LiveState:
    """Shared live data of one Hive Lab server for the control room's views."""

    def __init__(self, client: HiveClient | None = None, start: bool = True) -> None:
        self.client = client or HiveClient.discover()
        self.data = LiveData()
        self.hooks: dict[str, deque[dict[str, Any]]] = {}
        self._events: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._callbacks: list[Callback] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake: asyncio.Event | None = None
        self._stale: set[str] = set()
        self._events_dirty = False
        self._states: dict[str, dict[str, Any]] = {}  # from StateChanged, applied next round
        self.last_id = 0  # the newest event received
        self.drawn_id = 0  # every event up to this id is reflected in data (and views told)
        self.paints = 0  # coalesced rounds done (tests and benchmarks read it)
        self.fetches = 0  # worker-thread fetches done
        self.errors = 0  # callbacks that raised (logged, the others still ran)
        self._order = FetchOrder()  # an earlier-started fetch never overwrites a later one
        self.seed()
        if start:
            self.start()

    # -- subscriptions ------------------------------------------------------------------------
    def on_change(self, callback: Callback) -> Callback:
        """Call ``callback(parts)`` on the loop after each coalesced fetch; returns it."""
        self._callbacks.append(callback)
        return callback

    def off_change(self, callback: Callback) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def _notify(self, parts: set[str]) -> None:
        for callback in list(self._callbacks):
            try:
                callback(set(parts))
            except Exception:  # one broken view must not stop the others
                self.errors += 1
                log.exception("live: a view's on_change raised")

    # -- data -----------------------------------------------------------------------------
    def seed(self) -> None:
        """Blocking first load: every part, and recent events for ``events`` and ``hooks``."""
        try:
            self.last_id = int(self.client.status().get("last_event_id", 0))
            self.apply(fetch_parts(self.client, FETCHED))
            for event in self.client.events(after=max(0, self.last_id - SEED_EVENTS),
                                            limit=SEED_EVENTS):
                self._note(event)
            self._states.clear()  # older than the sessions just fetched
            self._stale.clear()
        except HiveAPIError as exc:
            log.warning("live: cannot reach Hive Lab: %s", exc.detail)
        self.data.events = list(self._events)
        self.drawn_id = self.last_id

    def refresh(self, parts: Iterable[str] = FETCHED) -> set[str]:
        """Fetch ``parts`` now (blocking) and tell the views; for buttons and cells."""
        ticket = self._order.start()
        fresh = self._order.newer(ticket, fetch_parts(self.client, parts))
        self.apply(fresh)
        changed = set(fresh)
        self._notify(changed)
        return changed

    def mark_stale(self, *parts: str) -> None:
        """Ask for a refetch on the painter's next round (after an action, say)."""
        self._stale |= set(parts) & FETCHED
        if self._wake is not None:
            self._wake.set()

    def apply(self, fresh: dict[str, Any]) -> None:
        for key, value in fresh.items():
            if key in PARTS:
                setattr(self.data, key, value)

    def hook_payloads(self, name: str) -> list[dict[str, Any]]:
        """The session's last agent payloads, newest first (what notify.text expects)."""
        return list(self.hooks.get(name, ()))

    def _note(self, event: dict[str, Any]) -> None:
        self._events.append(event)
        self._events_dirty = True
        self.last_id = max(self.last_id, int(event.get("id") or 0))
        name = event.get("session")
        if event.get("agent") != wire.HIVE_AGENT and name and isinstance(event.get("payload"), dict):
            self.hooks.setdefault(name, deque(maxlen=HOOKS_KEPT)).appendleft(event["payload"])
        elif event.get("event") == wire.SESSION_REMOVED and name:
            self.hooks.pop(name, None)
        self._stale |= STALE_BY_EVENT.get(str(event.get("event")), set())
        if event.get("event") == wire.STATE_CHANGED and event.get("agent") == wire.HIVE_AGENT:
            state = (event.get("payload") or {}).get("state")
            if isinstance(state, dict) and name and state.get("name") != wire.EXITED:
                self._states[name] = state
            else:  # an exit brings its status with the record: fetch it
                self._stale.add("sessions")

    def _apply_states(self) -> bool:
        """Put the states StateChanged events carried into data.sessions (a new list)."""
        if not self._states:
            return False
        states, self._states = self._states, {}
        known = {s.get("name") for s in self.data.sessions}
        if set(states) - known:
            self._stale.add("sessions")  # a session this copy has not seen yet
        self.data.sessions = [{**s, "state": states[s["name"]]} if s.get("name") in states
                              else s for s in self.data.sessions]
        return True

    # -- live -----------------------------------------------------------------------------
    def start(self) -> bool:
        """Follow the stream on the running loop; False when there is no loop (a script)."""
        if self.running:
            return True
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return False
        self._wake = asyncio.Event()
        self._tasks = [loop.create_task(self._follow()), loop.create_task(self._paint())]
        return True

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _follow(self) -> None:
        """Note each event; never wait on anything but the stream."""
        async for event in self.client.stream(after=self.last_id):
            self._note(event)
            assert self._wake is not None
            self._wake.set()

    async def _paint(self) -> None:
        """Fetch what is stale off the loop, then tell the views, coalescing what arrived."""
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), QUIET_SECONDS)
            except asyncio.TimeoutError:
                self._stale.add("sessions")
            self._wake.clear()
            started = asyncio.get_running_loop().time()
            changed: set[str] = set()
            if self._apply_states():
                changed.add("sessions")
            seen, parts = self.last_id, self._stale
            self._stale = set()
            ok = True
            if parts:
                ticket = self._order.start()
                try:
                    fresh = self._order.newer(
                        ticket, await asyncio.to_thread(fetch_parts, self.client, parts))
                    self.fetches += 1
                    self.apply(fresh)
                    changed |= set(fresh)
                except HiveAPIError:
                    self._stale |= parts  # server away: try again on the next wake
                    ok = False
            if self._events_dirty:
                self._events_dirty = False
                self.data.events = list(self._events)
                changed.add("events")
            if changed:
                self._notify(changed)
            if ok:
                self.drawn_id = max(self.drawn_id, seen)
            self.paints += 1
            # rounds start at most every MIN_PAINT_SECONDS (the fetch counts towards it)
            elapsed = asyncio.get_running_loop().time() - started
            await asyncio.sleep(max(0.0, MIN_PAINT_SECONDS - elapsed))
