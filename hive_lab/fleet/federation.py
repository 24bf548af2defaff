"""The control room's view of its nodes: health, merged listings, placement, one feed.

Each node stays authoritative for its own sessions, tasks and events; the federation only
mirrors what it last saw (refreshed every ``interval``) and routes requests. A node that stops
answering is ``unreachable`` with ``last_seen``: its sessions keep the state they had (they may
well be running) and are marked ``stale``, never ``exited``. The feed reads each node's stream
from a per-host position, so a reconnect after an outage delivers what the node recorded
meanwhile, none lost and none twice (the node's own feed guarantees that per connection).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncGenerator, AsyncIterator, Callable

from ..core.errors import BadRequest, Conflict, NotFound
from ..wire import EXITED, ERROR, NAME_RE
from .hosts import LABEL_RE, Host, HostConfigError, HostsFile, parse_hosts
from .node import NodeClient, NodeUnreachable
from .placement import Candidate, NoPlacement, Placement, place

log = logging.getLogger("hive_lab.fleet")

OK, UNREACHABLE, REFUSED, UNKNOWN = "ok", "unreachable", "refused", "unknown"
FINAL_TASK_STATES = ("done", "failed", "canceled")
FEED_QUEUE = 10000

Source = Callable[[int], AsyncIterator[dict[str, Any]]]
StateHook = Callable[[str, str, dict[str, Any]], None]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class HostView:
    """What the control room last saw of one node."""

    host: Host
    client: NodeClient
    state: str = UNKNOWN
    last_seen: float | None = None
    down_since: float | None = None
    error: str | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def live(self) -> int:
        return sum(1 for s in self.sessions if task_state(s) not in (EXITED, ERROR))

    def candidate(self) -> Candidate:
        return Candidate(self.host.name, self.host.labels, self.state == OK, self.live,
                         self.host.capacity)

    def to_json(self) -> dict[str, Any]:
        return {**self.host.to_json(), "state": self.state, "last_seen": iso(self.last_seen),
                "unreachable_since": iso(self.down_since), "error": self.error,
                "sessions": len(self.sessions), "live": self.live,
                "tasks": len(self.tasks)}


class Federation:
    """The nodes of ``c.HiveLab.hosts`` and the hosts file, behind plain methods."""

    def __init__(self, hosts: list[Host], hosts_file: HostsFile | None, local: str = "local",
                 timeout: float = 3.0, on_state: StateHook | None = None) -> None:
        self.local = local
        self.timeout = timeout
        self.on_state = on_state
        self._config = hosts
        self._file = hosts_file
        self._views: dict[str, HostView] = {}
        self._polls: dict[str, asyncio.Future[None]] = {}
        self._sync()

    # -- the host list -------------------------------------------------------------------------
    def _sync(self) -> None:
        """Config hosts plus the hosts file's (re-read when it changed); a clash: config wins."""
        wanted = {h.name: h for h in self._config}
        if self._file is not None:
            try:
                for h in self._file.cached():
                    if h.name in wanted or h.name == self.local:
                        log.warning("hosts file: %r is already configured; ignored", h.name)
                        continue
                    wanted[h.name] = h
            except HostConfigError as exc:
                log.error("hosts file ignored: %s", exc)
        for name in list(self._views):
            if name not in wanted or self._views[name].host != wanted[name]:
                view = self._views.pop(name)
                asyncio.ensure_future(view.client.close()) if _loop_running() else None
        for name, host in wanted.items():
            if name not in self._views:
                self._views[name] = HostView(host, NodeClient(host, self.timeout))

    @property
    def views(self) -> dict[str, HostView]:
        if self._file is not None and self._file.changed():
            self._sync()
        return self._views

    def configured(self) -> bool:
        return bool(self.views)

    def view(self, name: str) -> HostView:
        view = self.views.get(name)
        if view is None:
            raise NotFound(f"no host named {name!r}")
        return view

    def hosts_json(self) -> list[dict[str, Any]]:
        return [v.to_json() for v in self.views.values()]

    # -- health and mirror -------------------------------------------------------------------
    async def poll(self) -> None:
        """Start a refresh of every node not already being asked; a slow or silent node
        (up to ``timeout``) delays nobody else's refresh."""
        for name, view in self.views.items():
            task = self._polls.get(name)
            if task is None or task.done():
                self._polls[name] = asyncio.ensure_future(self._poll(view))

    async def poll_all(self) -> None:
        """Refresh every node and wait for all of them (tests, start-up)."""
        await asyncio.gather(*(self._poll(v) for v in list(self.views.values())))

    async def _poll(self, view: HostView) -> None:
        try:
            (s_status, sessions), (t_status, tasks) = await asyncio.gather(
                view.client.request("GET", "sessions"), view.client.request("GET", "tasks"))
        except NodeUnreachable as exc:
            self._set_state(view, UNREACHABLE, str(exc))
            return
        if s_status in (401, 403):
            self._set_state(view, REFUSED, f"the node refused our token ({s_status})")
            return
        if s_status != 200 or not isinstance(sessions, dict):
            self._set_state(view, UNREACHABLE, f"answered {s_status}")
            return
        view.sessions = [s for s in sessions.get("sessions", []) if isinstance(s, dict)]
        if t_status == 200 and isinstance(tasks, dict):
            view.tasks = [t for t in tasks.get("tasks", []) if isinstance(t, dict)]
        view.last_seen = time.time()
        self._set_state(view, OK, None)

    def _set_state(self, view: HostView, state: str, error: str | None) -> None:
        previous = view.state
        view.error = error
        if state == previous:
            return
        view.state = state
        if state == OK:
            view.down_since = None
        elif view.down_since is None:
            view.down_since = time.time()
        log.info("host %s: %s -> %s%s", view.host.name, previous, state,
                 f" ({error})" if error else "")
        if self.on_state is not None and not (previous == UNKNOWN and state == OK):
            self.on_state(view.host.name, state, {
                "host": view.host.name, "state": state, "previous": previous,
                "last_seen": iso(view.last_seen), "detail": error})

    # -- merged listings -----------------------------------------------------------------------
    def _mark(self, row: dict[str, Any], view: HostView) -> dict[str, Any]:
        out = {**row, "host": view.host.name, "host_state": view.state}
        if view.state != OK:
            out["stale"] = True  # the last state seen, not known to be current
            out["last_seen"] = iso(view.last_seen)
        return out

    def sessions(self, host: str | None = None) -> list[dict[str, Any]]:
        views = [self.view(host)] if host else list(self.views.values())
        return [self._mark(s, v) for v in views for s in v.sessions]

    def tasks(self, host: str | None = None) -> list[dict[str, Any]]:
        views = [self.view(host)] if host else list(self.views.values())
        out = []
        for v in views:
            for t in v.tasks:
                row = self._mark(t, v)
                if v.state != OK and task_state(t) not in FINAL_TASK_STATES:
                    row["why"] = (f"host {v.host.name} unreachable since {iso(v.down_since)} "
                                  f"(last seen {iso(v.last_seen)}): the task waits for it and is "
                                  "not placed elsewhere (its worktree is on that host, which may "
                                  "still be running it; it never runs in two places)")
                out.append(row)
        return out

    # -- placement and requests -------------------------------------------------------------
    def place(self, host: Any, labels: Any, local: Candidate | None) -> Placement:
        if host is not None and (not isinstance(host, str) or not NAME_RE.fullmatch(host)):
            raise BadRequest("host must be a host name")
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, (list, tuple)) or not all(
                isinstance(x, str) and LABEL_RE.fullmatch(x) for x in labels):
            raise BadRequest("labels must be a list of label names (A-Z a-z 0-9 _ . : -)")
        candidates = ([local] if local else []) + [v.candidate() for v in self.views.values()]
        try:
            return place(candidates, tuple(labels), host)
        except NoPlacement as exc:
            if host is not None and not any(c.name == host for c in candidates):
                raise NotFound(exc.reason) from None
            raise Conflict(exc.reason, extra={"code": "no_host"}) from None

    async def request(self, name: str, method: str, path: str,
                      params: dict[str, Any] | None = None, body: Any = None) -> tuple[int, Any]:
        """Pass one API call to a node; its answer comes back as it is (status, body)."""
        view = self.view(name)
        try:
            status, data = await view.client.request(method, path, params, body)
        except NodeUnreachable as exc:
            self._set_state(view, UNREACHABLE, str(exc))
            return 504, {"error": "host_unreachable", "host": name,
                         "detail": f"host {name!r} did not answer; last seen "
                                   f"{iso(view.last_seen) or 'never'}"}
        if method != "GET" and status < 300:
            asyncio.ensure_future(self._poll(view))  # the mirror catches up at once
        return status, data

    # -- the federated feed ------------------------------------------------------------------
    def sources(self) -> dict[str, Source]:
        beat = max(1.0, self.timeout)

        def opener(client: NodeClient) -> Source:
            return lambda after: client.stream(after, heartbeat=beat)
        return {name: opener(v.client) for name, v in self.views.items()}

    async def feed(self, cursor: dict[str, int], sources: dict[str, Source],
                   heartbeat: float = 15.0,
                   event: str | None = None) -> AsyncGenerator[list[dict[str, Any]], None]:
        """``hello``, then every host's events (``host`` set) as they come, with heartbeats
        carrying each host's position; a reconnecting client passes those positions back.

        Yields batches (what was queued at once), so the transport waits for its socket once
        per batch rather than once per message."""
        positions = {name: int(cursor.get(name, 0)) for name in sources}
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(FEED_QUEUE)
        pumps = [asyncio.ensure_future(self._pump(name, src, positions, queue))
                 for name, src in sources.items()]
        try:
            yield [{"type": "hello", "after": dict(positions), "hosts": sorted(sources)}]
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), heartbeat)
                except asyncio.TimeoutError:
                    yield [{"type": "heartbeat", "after": dict(positions)}]
                    continue
                batch = [first]
                while not queue.empty() and len(batch) < 500:
                    batch.append(queue.get_nowait())
                if event:
                    batch = [i for i in batch if "id" not in i or i.get("event") == event]
                if batch:
                    yield batch
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, name: str, source: Source, positions: dict[str, int],
                    queue: asyncio.Queue[dict[str, Any]]) -> None:
        delay = 0.2
        down = False
        while True:
            try:
                async for ev in source(positions[name]):
                    event_id = ev.get("id")
                    if not isinstance(event_id, int) or event_id <= positions[name]:
                        continue  # never twice
                    if down:
                        down = False
                        await queue.put({"type": "host", "host": name, "state": OK})
                    positions[name] = event_id
                    ev["host"] = name
                    await queue.put(ev)
                    delay = 0.2
                await asyncio.sleep(0.05)  # ended (resync): reconnect from our position
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NodeUnreachable, or a node answering garbage
                if not down:
                    down = True
                    await queue.put({"type": "host", "host": name, "state": UNREACHABLE,
                                     "after": positions[name],
                                     "detail": str(exc) if isinstance(exc, NodeUnreachable)
                                     else exc.__class__.__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        for task in self._polls.values():
            task.cancel()
        await asyncio.gather(*self._polls.values(), return_exceptions=True)
        for view in self._views.values():
            await view.client.close()


def task_state(task: dict[str, Any]) -> str | None:
    """A task's or session's state name (the API gives ``{"name", ...}``)."""
    state = task.get("state")
    return state.get("name") if isinstance(state, dict) else state


def parse_cursor(value: str | None) -> dict[str, int]:
    """``local:12,gpu1:40`` -> ``{"local": 12, "gpu1": 40}`` (a bare number: the local host)."""
    out: dict[str, int] = {}
    if not value:
        return out
    for part in value.split(","):
        name, sep, number = part.strip().rpartition(":")
        if not sep:
            name, number = "", part.strip()
        try:
            pos = int(number)
        except ValueError:
            raise BadRequest("after must be host:id pairs, e.g. local:12,gpu1:40") from None
        if pos < 0 or (name and not NAME_RE.fullmatch(name)):
            raise BadRequest("after must be host:id pairs, e.g. local:12,gpu1:40")
        out[name] = pos
    return out


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = ["Federation", "HostView", "parse_cursor", "parse_hosts"]
