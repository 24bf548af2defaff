"""The facade's fleet methods (mixed into :class:`hive_lab.core.facade.Hive`).

The control room is itself a node (named ``c.HiveLab.host_name``, default ``local``); with
hosts configured, its listings add the other nodes' rows, each marked ``host``. A request that
names a ``host`` or ``labels`` is placed (:mod:`.placement`) and, for another node, sent there
with that node's token. Handlers call these like any other facade method.
"""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, AsyncGenerator, AsyncIterator

from ..core.errors import BadRequest, Conflict, Forbidden, HiveError, NotFound, TooLarge
from ..wire import EXITED, ERROR
from .federation import Federation, Source, iso, parse_cursor, task_state
from .placement import Candidate

if TYPE_CHECKING:
    from ..core.facade import HiveConfig

HOST_UNREACHABLE, HOST_REACHABLE = "HostUnreachable", "HostReachable"
_BY_STATUS: dict[int, type[HiveError]] = {400: BadRequest, 403: Forbidden, 404: NotFound,
                                          409: Conflict, 413: TooLarge}


class NodeRefused(Conflict):
    """A node answered with an error (its status and body are passed on in ``extra``)."""

    code = "node_error"


def node_error(host: str, status: int, body: Any) -> HiveError:
    """The node's own error, as the same broad kind (so it maps to the same status here)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    kind = _BY_STATUS.get(status)
    text = f"host {host}: {detail or status}"
    if kind is not None:
        err = kind(text, extra={"host": host})
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            err.extra["code"] = body["code"]
        return err
    return NodeRefused(text, extra={"host": host, "status": status})


def _placed(body: Any) -> bool:
    return isinstance(body, dict) and ("host" in body or "labels" in body)


class FleetMethods:
    """Fleet-wide reads and placed writes; ``self`` is the :class:`Hive`."""

    fleet: Federation
    config: "HiveConfig"

    # provided by Hive
    def _local_sessions(self) -> list[dict[str, Any]]: raise NotImplementedError
    async def _local_spawn(self, body: Any) -> dict[str, Any]: raise NotImplementedError
    def add_task(self, body: Any) -> dict[str, Any]: raise NotImplementedError
    def _local_tasks(self, **filters: Any) -> list[dict[str, Any]]: raise NotImplementedError
    def feed(self, after: int, filters: Any, queue_size: int, heartbeat: float) -> Any:
        raise NotImplementedError
    def git_states(self) -> dict[str, Any]: raise NotImplementedError
    def usage_report(self, by: str) -> dict[str, Any]: raise NotImplementedError
    def notifications(self, unread: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        raise NotImplementedError
    def budget_report(self) -> dict[str, Any]: raise NotImplementedError

    @property
    def host_name(self) -> str:
        return self.fleet.local

    def _check_host(self, host: str | None) -> None:
        if host is not None and host != self.host_name:
            self.fleet.view(host)  # NotFound for an unknown name

    # -- hosts ------------------------------------------------------------------------------
    def hosts(self) -> list[dict[str, Any]]:
        """This control room (``local``) and every configured node, with health; no tokens."""
        local = {"name": self.host_name, "url": None, "labels": list(self.config.host_labels),
                 "capacity": self.config.max_agents, "token": None, "state": "ok", "local": True,
                 "sessions": len(self._local_sessions()), "live": self._local_live()}
        return [local, *self.fleet.hosts_json()]

    def host(self, name: str) -> dict[str, Any]:
        row = next((h for h in self.hosts() if h["name"] == name), None)
        if row is None:
            raise NotFound(f"no host named {name!r}")
        return {**row, "session_list": self.fleet_sessions(name)}

    async def host_request(self, name: str, method: str, path: str,
                           params: dict[str, Any], body: Any) -> tuple[int, Any]:
        """Any API call on a node, with that node's token; its answer as it is."""
        if name == self.host_name:
            raise BadRequest("the local host is this server: call its API directly")
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise BadRequest("method not supported")
        if not path or path.startswith("/") or ".." in path.split("/") or path == "hooks":
            raise BadRequest("path must be a relative API path")
        return await self.fleet.request(name, method, path, params, body)

    # -- every host's answer to one read ---------------------------------------------------
    async def fleet_read(self, what: str, unread: bool = False,
                         by: str = "session") -> dict[str, Any]:
        """``GET fleet/{git|usage|notifications|budgets}``: each host's answer under its name
        (asked of all nodes at once); a node not answering is listed with ``last_seen``.
        Notifications also come merged, newest first, each row marked ``host``."""
        local: dict[str, Any]
        params: dict[str, Any] = {}
        if what == "git":
            local = {"sessions": self.git_states()}
        elif what == "usage":
            local, params = self.usage_report(by), {"by": by}
        elif what == "notifications":
            local = {"notifications": self.notifications(unread=unread)}
            params = {"unread": "1" if unread else None}
        elif what == "budgets":
            local = self.budget_report()
        else:
            raise NotFound(f"no fleet view {what!r} (git, usage, notifications, budgets)")
        names = list(self.fleet.views)
        answers = await asyncio.gather(*(self.fleet.request(n, "GET", what, params)
                                         for n in names))
        hosts: dict[str, Any] = {self.host_name: local}
        unreachable: dict[str, Any] = {}
        for name, (status, body) in zip(names, answers):
            if status == 200:
                hosts[name] = body
            else:
                view = self.fleet.views.get(name)
                unreachable[name] = {"status": status, "state": view.state if view else None,
                                     "last_seen": iso(view.last_seen) if view else None}
        out: dict[str, Any] = {"hosts": hosts, "unreachable": unreachable}
        if what == "notifications":
            rows = [{**row, "host": name} for name, body in hosts.items()
                    for row in (body.get("notifications") or []) if isinstance(row, dict)]
            out["notifications"] = sorted(rows, key=lambda r: str(r.get("created", "")),
                                          reverse=True)
        return out

    # -- merged listings ----------------------------------------------------------------------
    def _local_live(self) -> int:
        return sum(1 for s in self._local_sessions() if task_state(s) not in (EXITED, ERROR))

    def fleet_sessions(self, host: str | None = None) -> list[dict[str, Any]]:
        self._check_host(host)
        out: list[dict[str, Any]] = []
        if host in (None, self.host_name):
            out = [{**s, "host": self.host_name} for s in self._local_sessions()]
        if host != self.host_name:
            out += self.fleet.sessions(host)
        return out

    def fleet_tasks(self, host: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        self._check_host(host)
        out: list[dict[str, Any]] = []
        if host in (None, self.host_name):
            out = [{**t, "host": self.host_name} for t in self._local_tasks(**filters)]
        if host != self.host_name:
            out += [t for t in self.fleet.tasks(host)
                    if all(v is None or (task_state(t) if k == "state" else t.get(k)) == v
                           for k, v in filters.items())]
        return out

    # -- placed writes ----------------------------------------------------------------------
    def _local_candidate(self) -> Candidate:
        return Candidate(self.host_name, tuple(self.config.host_labels), True, self._local_live(),
                         self.config.max_agents)

    async def _placed_post(self, what: str, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        placement = self.fleet.place(body.pop("host", None), body.pop("labels", []),
                                     self._local_candidate())
        if placement.host == self.host_name:
            if what == "sessions":
                result = await self._local_spawn(body)
            else:
                result = self.add_task(body)
        else:
            status, result = await self.fleet.request(placement.host, "POST", what, None, body)
            if status == 504:
                raise Conflict(result["detail"], extra={"code": "host_unreachable"})
            if status >= 300:
                raise node_error(placement.host, status, result)
        return {**result, "host": placement.host, "placement": placement.reason}

    async def spawn_anywhere(self, body: Any) -> dict[str, Any]:
        """``POST sessions`` with ``host`` or ``labels``: placed; without them: this host."""
        if _placed(body):
            return await self._placed_post("sessions", body)
        return await self._local_spawn(body)

    async def add_task_anywhere(self, body: Any) -> dict[str, Any]:
        if _placed(body):
            return await self._placed_post("tasks", body)
        return self.add_task(body)

    # -- the federated feed ------------------------------------------------------------------
    def _local_source(self, heartbeat: float) -> Source:
        async def source(after: int) -> AsyncIterator[dict[str, Any]]:
            feed = self.feed(after, {}, 5000, heartbeat)
            try:
                async for item in feed:
                    if item.text is not None:
                        yield json.loads(item.text)
                    elif item.control and item.control.get("type") == "resync":
                        return
            finally:
                await feed.aclose()
        return source

    def fleet_feed(self, after: str | None, hosts: str | None, event: str | None,
                   heartbeat: float) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Every host's events in one stream, each marked ``host``; ``after`` is per host
        (``local:12,gpu1:40``), as the heartbeats report it."""
        cursor = parse_cursor(after)
        if "" in cursor:
            cursor[self.host_name] = cursor.pop("")
        sources = {self.host_name: self._local_source(heartbeat), **self.fleet.sources()}
        if hosts:
            wanted = [h for h in hosts.split(",") if h]
            for name in wanted:
                if name not in sources:
                    raise NotFound(f"no host named {name!r}")
            sources = {k: v for k, v in sources.items() if k in wanted}
        unknown = set(cursor) - set(sources)
        if unknown:
            raise BadRequest(f"after names unknown host(s): {', '.join(sorted(unknown))}")
        return self.fleet.feed(cursor, sources, heartbeat, event)
