"""Client of a running Hive Lab server: REST calls and the live event stream.

Used by the notebook widgets, the pandas helpers and the ``hive-lab`` CLI alike: there is one
way into the control plane, its API. Inside a kernel started by Jupyter, the server is found
through ``JPY_PARENT_PID`` and Jupyter's runtime files; elsewhere give ``url`` and ``token`` or
set ``HIVE_LAB_URL`` / ``HIVE_LAB_TOKEN``.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterable, Iterator


class HiveAPIError(Exception):
    """The server answered with an error: ``status``, ``error`` slug and ``detail``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


@dataclass
class ServerInfo:
    url: str
    token: str


def find_server(url: str | None = None, token: str | None = None) -> ServerInfo:
    """Locate the Jupyter server: explicit args, env, the kernel's parent, or the only one."""
    url = url or os.environ.get("HIVE_LAB_URL")
    token = token if token is not None else os.environ.get("HIVE_LAB_TOKEN")
    if url:
        return ServerInfo(url.rstrip("/") + "/", token or "")
    servers = list(running_servers())
    if not servers:
        raise HiveAPIError(0, "no_server", "no running Jupyter server found; start one with "
                           "`hive-lab lab` or pass url= and token=")
    parent = os.environ.get("JPY_PARENT_PID")
    chosen = next((s for s in servers if parent and str(s.get("pid")) == parent), None)
    if chosen is None:
        chosen = max(servers, key=lambda s: s.get("pid", 0))
    return ServerInfo(chosen["url"].rstrip("/") + "/", chosen.get("token", ""))


def running_servers(runtime_dir: str | None = None) -> Iterator[dict[str, Any]]:
    """The ``jpserver-*.json`` files of live servers, as ``list_running_servers`` reads them.

    Reimplemented because importing ``jupyter_server.serverapp`` for that one function costs
    1.2-2.3 s (tornado, jupyter_events, jsonschema...): it was most of ``hive-lab ls``.
    Unlike Jupyter's version it never deletes another server's file.
    """
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = jupyter_runtime_dir()
    try:
        names = sorted(os.listdir(runtime_dir))
    except OSError:
        return
    for name in names:
        if not re.fullmatch(r"jpserver-.+\.json", name):
            continue
        try:
            with open(os.path.join(runtime_dir, name), encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            continue  # being written, or gone meanwhile
        if isinstance(info, dict) and isinstance(info.get("pid"), int) and _alive(info["pid"]) \
                and isinstance(info.get("url"), str):
            yield info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class HiveClient:
    """Typed access to ``{url}hive_lab/api/``."""

    def __init__(self, url: str, token: str = "", timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout

    @classmethod
    def discover(cls, url: str | None = None, token: str | None = None, **kwargs: Any) -> "HiveClient":
        info = find_server(url, token)
        return cls(info.url, info.token, **kwargs)

    def __repr__(self) -> str:
        return f"HiveClient({self.url!r})"

    # -- plumbing -------------------------------------------------------------------------
    def api_url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        qs = ("?" + urllib.parse.urlencode(query)) if query else ""
        return f"{self.url}hive_lab/api/{path}{qs}"

    def request(self, method: str, path: str, body: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url(path, params), data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                info = json.loads(raw)
            except ValueError:
                info = {}
            raise HiveAPIError(exc.code, info.get("error", "http_error"),
                               info.get("detail", raw.decode(errors="replace")[:500])) from None
        except urllib.error.URLError as exc:
            raise HiveAPIError(0, "unreachable", f"{self.url}: {exc.reason}") from None
        return json.loads(raw) if raw else None

    # -- sessions -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.request("GET", "status")

    def sessions(self) -> list[dict[str, Any]]:
        return self.request("GET", "sessions")["sessions"]

    def session(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"sessions/{_q(name)}")

    def spawn(self, name: str, agent: str = "shell", command: list[str] | None = None,
              cwd: str | None = None, env: dict[str, str] | None = None,
              prompt: str | None = None, worktree: bool | None = None,
              base: str | None = None) -> dict[str, Any]:
        """Start an agent session; returns the session object (201)."""
        body = {"name": name, "agent": agent, "command": command, "cwd": cwd, "env": env,
                "prompt": prompt, "worktree": worktree, "base": base}
        return self.request("POST", "sessions", {k: v for k, v in body.items() if v is not None})

    def send(self, name: str, text: str, enter: bool = True) -> None:
        self.request("POST", f"sessions/{_q(name)}/input", {"text": text, "enter": enter})

    def keys(self, name: str, keys: Iterable[str]) -> list[str]:
        return self.request("POST", f"sessions/{_q(name)}/keys", {"keys": list(keys)})["keys"]

    def approve(self, name: str) -> dict[str, Any]:
        """Answer the permission dialog "yes". The server refuses (409) unless the session is
        waiting for permission and the dialog is on screen: nothing is typed blindly."""
        return self.request("POST", f"sessions/{_q(name)}/approve", {})

    def deny(self, name: str) -> dict[str, Any]:
        """Answer the permission dialog "no" (same checks as :meth:`approve`)."""
        return self.request("POST", f"sessions/{_q(name)}/deny", {})

    def interrupt(self, name: str) -> list[str]:
        return self.keys(name, ["Escape"])

    def screen(self, name: str, lines: int | None = None, ansi: bool = False) -> str:
        """The pane's text; ``ansi=True`` keeps colours as escapes (render them, never print
        them raw into another terminal: they are the agent's bytes)."""
        return self.request("GET", f"sessions/{_q(name)}/screen",
                            params={"lines": lines, "ansi": "1" if ansi else None})["text"]

    def kill(self, name: str, cleanup: str | None = None, force: bool = False) -> dict[str, Any]:
        params = {"cleanup": cleanup, "force": "true" if force else None}
        return self.request("DELETE", f"sessions/{_q(name)}", params=params)

    # -- events ---------------------------------------------------------------------------
    def events(self, after: int = 0, session: str | None = None, event: str | None = None,
               limit: int = 1000, since: str | float | None = None,
               until: str | float | None = None, agent: str | None = None) -> list[dict[str, Any]]:
        params = {"after": after, "session": session, "event": event, "limit": limit,
                  "since": since, "until": until, "agent": agent}
        return self.request("GET", "events", params=params)["events"]

    def all_events(self, **filters: Any) -> list[dict[str, Any]]:
        """Every event matching ``filters``, paging through the API."""
        out: list[dict[str, Any]] = []
        after = filters.pop("after", 0)
        while True:
            page = self.events(after=after, limit=10000, **filters)
            out.extend(page)
            if len(page) < 10000:
                return out
            after = page[-1]["id"]

    def transitions(self, session: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        return self.request("GET", "transitions",
                            params={"session": session, "after": after})["transitions"]

    @property
    def frames(self) -> "Any":
        """pandas DataFrames of this server's data (:class:`hive_lab.frames.Frames`)."""
        from .frames import Frames

        return Frames(self)

    # -- git and usage ----------------------------------------------------------------------
    def git(self, name: str | None = None) -> Any:
        """Git state of one session, or ``{"sessions": {name: state}}`` for all."""
        return self.request("GET", f"sessions/{_q(name)}/git" if name else "git")

    def diff(self, name: str, max_bytes: int | None = None) -> dict[str, Any]:
        return self.request("GET", f"sessions/{_q(name)}/diff", params={"max_bytes": max_bytes})

    def conflicts(self) -> dict[str, Any]:
        """Files changed by several sessions, and predicted merge conflicts."""
        return self.request("GET", "git/conflicts")

    def usage(self, by: str = "session", session: str | None = None,
              since: str | float | None = None, until: str | float | None = None) -> dict[str, Any]:
        """Token usage and cost of Hive Lab's sessions, aggregated ``by`` session/day/model/block."""
        return self.request("GET", "usage", params={"by": by, "session": session,
                                                    "since": since, "until": until})

    def usage_rows(self, session: str | None = None, since: str | float | None = None,
                   until: str | float | None = None) -> list[dict[str, Any]]:
        """One row per API response (deduplicated), filtered on the server."""
        return self.request("GET", "usage/rows", params={"session": session, "since": since,
                                                         "until": until})["rows"]

    # -- notifications ----------------------------------------------------------------------
    def notifications(self, unread: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """What Hive Lab called the user about, unread first (channel URLs redacted)."""
        return self.request("GET", "notifications", params={
            "unread": "1" if unread else None, "limit": limit})["notifications"]

    def read_notification(self, notification_id: int) -> dict[str, Any]:
        """Mark one read (the first reading's time is kept)."""
        return self.request("POST", f"notifications/{int(notification_id)}/read")

    # -- tasks ----------------------------------------------------------------------------
    def add_task(self, spec: dict[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
        """Create a task (201): ``add_task(id=..., prompt=..., repo=..., scope=[...])`` or
        ``add_task({...})``. ``repo`` defaults to the current directory; ``check`` is an argv
        list (the server refuses a string rather than guess how to split it)."""
        body = {**(spec or {}), **fields}
        body.setdefault("repo", os.getcwd())
        return self.request("POST", "tasks", {k: v for k, v in body.items() if v is not None})

    def tasks(self, state: str | None = None, repo: str | None = None,
              session: str | None = None) -> list[dict[str, Any]]:
        """Tasks (filtered on the server), each with its attempts and, while it waits, ``why``."""
        return self.request("GET", "tasks", params={"state": state, "repo": repo,
                                                    "session": session})["tasks"]

    def task(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"tasks/{_q(task_id)}")

    def patch_task(self, task_id: str, **fields: Any) -> dict[str, Any]:
        """Change ``priority``, ``scope``, ``check`` (``None`` removes it) or ``max_attempts``;
        ``state="canceled"`` cancels."""
        return self.request("PATCH", f"tasks/{_q(task_id)}", fields)

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        """Cancel (its session stops; the worktree keeps its work)."""
        return self.patch_task(task_id, state="canceled")

    def delete_task(self, task_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"tasks/{_q(task_id)}")

    def retry_task(self, task_id: str) -> dict[str, Any]:
        """Put a failed task back to ready (with one more attempt if it used them all)."""
        return self.request("POST", f"tasks/{_q(task_id)}/retry", {})

    def scope_requests(self, task: str | None = None,
                       state: str | None = None) -> list[dict[str, Any]]:
        """Agents' requests for more scope; ``state`` is pending, approved or refused."""
        return self.request("GET", "scope-requests",
                            params={"task": task, "state": state})["requests"]

    def approve_scope(self, rid: int, note: str = "") -> dict[str, Any]:
        """The glob joins the task's scope; the agent is told and continues."""
        return self.request("POST", f"scope-requests/{int(rid)}", {"approve": True, "note": note})

    def refuse_scope(self, rid: int, note: str = "") -> dict[str, Any]:
        """The agent is told no (with ``note``) and continues within its scope."""
        return self.request("POST", f"scope-requests/{int(rid)}", {"approve": False, "note": note})

    def accept_violations(self, task_id: str, paths: Iterable[str]) -> dict[str, Any]:
        """Accept out-of-scope changes the audit flagged; they no longer hold the task back."""
        if isinstance(paths, str):
            paths = [paths]
        return self.request("POST", f"tasks/{_q(task_id)}/violations", {"accept": list(paths)})

    # -- the merge queue ---------------------------------------------------------------------
    def offer_merge(self, repo: str, branch: str, base: str | None = None,
                    checks: Iterable[Iterable[str]] = (), source: str = "client") -> dict[str, Any]:
        """Queue ``branch`` for merging into ``base`` (default: the repo's checked-out branch)."""
        body: dict[str, Any] = {"repo": repo, "branch": branch, "source": source,
                                "checks": [list(c) for c in checks]}
        if base is not None:
            body["base"] = base
        return self.request("POST", "merges", body)

    def merges(self, state: str | None = None, repo: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "merges", params={"state": state, "repo": repo})["merges"]

    def merge(self, merge_id: int) -> dict[str, Any]:
        return self.request("GET", f"merges/{int(merge_id)}")

    def approve_merge(self, merge_id: int) -> dict[str, Any]:
        return self.request("POST", f"merges/{int(merge_id)}/approve")

    def reject_merge(self, merge_id: int) -> dict[str, Any]:
        return self.request("POST", f"merges/{int(merge_id)}/reject")

    def cancel_merge(self, merge_id: int) -> dict[str, Any]:
        return self.request("POST", f"merges/{int(merge_id)}/cancel")

    def retry_merge(self, merge_id: int) -> dict[str, Any]:
        return self.request("POST", f"merges/{int(merge_id)}/retry")
    # -- review pipelines --------------------------------------------------------------------
    def add_pipeline(self, spec: dict[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
        """``POST pipelines``: ``id``, ``prompt``, ``repo``, ``scope``, ``criteria`` (required);
        ``checks`` (argv lists, cheapest first), ``stages``, ``implementer``, ``reviewer``,
        ``tester``, ``test_scope``, ``max_review_rounds``, ``max_check_rounds``, ``base``..."""
        body = {**(spec or {}), **fields}
        return self.request("POST", "pipelines", {k: v for k, v in body.items() if v is not None})

    def pipelines(self, state: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "pipelines", params={"state": state})["pipelines"]

    def pipeline(self, pipeline_id: str) -> dict[str, Any]:
        """One pipeline with its history: ``stages`` (one row per visit, with verdicts and
        costs), ``findings``, ``checks`` (every check run)."""
        return self.request("GET", f"pipelines/{_q(pipeline_id)}")

    def cancel_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return self.request("POST", f"pipelines/{_q(pipeline_id)}/cancel", {})

    def retry_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        """A pipeline that needs you goes on: one more round, or its failed stage task again."""
        return self.request("POST", f"pipelines/{_q(pipeline_id)}/retry", {})

    async def _socket_messages(self, path: str, params: Callable[[], dict[str, Any]],
                               reconnect: bool) -> AsyncIterator[dict[str, Any]]:
        """Each JSON message of the WebSocket at ``path``; on a close or a ``resync`` it
        connects again, asking ``params()`` anew (the caller's resume position)."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        while True:
            ws_url = self.api_url(path, params()).replace("http", "ws", 1)
            headers = {"Authorization": f"token {self.token}"} if self.token else {}
            try:
                conn = await websocket_connect(HTTPRequest(ws_url, headers=headers))
            except Exception:
                if not reconnect:
                    raise
                await asyncio.sleep(1.0)
                continue
            try:
                while True:
                    message = await conn.read_message()
                    if message is None:
                        break
                    data = json.loads(message)
                    if data.get("type") == "resync":
                        break
                    yield data
            finally:
                conn.close()
            if not reconnect:
                return
            await asyncio.sleep(0.2)

    async def stream(self, after: int = 0, session: str | None = None, event: str | None = None,
                     reconnect: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Yield events live, forever; reconnects from the last id (no gap, no duplicate)."""
        params = {"after": after, "session": session, "event": event}  # "after" moves on
        async for data in self._socket_messages("events/stream", lambda: params, reconnect):
            if "type" in data:
                continue
            params["after"] = max(params["after"], data["id"])
            yield data

    # -- the fleet (a control room federating other nodes) ------------------------------------
    def hosts(self) -> list[dict[str, Any]]:
        """This server and the nodes it federates, with health (``state``, ``last_seen``)."""
        return self.request("GET", "hosts")["hosts"]

    async def fleet_stream(self, after: dict[str, int] | None = None, host: str | None = None,
                           event: str | None = None,
                           reconnect: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every host's events (each with ``host``), forever; ``after`` is one position per
        host, kept up to date here, so a reconnect loses and repeats nothing."""
        positions = dict(after or {})

        def params() -> dict[str, Any]:
            cursor = ",".join(f"{h}:{i}" for h, i in positions.items()) or None
            return {"after": cursor, "host": host, "event": event}

        async for data in self._socket_messages("fleet/stream", params, reconnect):
            if "id" in data and "host" in data:
                if data["id"] <= positions.get(data["host"], 0):
                    continue
                positions[data["host"]] = data["id"]
                yield data
            elif isinstance(data.get("after"), dict):  # hello / heartbeat
                for name, pos in data["after"].items():
                    positions[name] = max(positions.get(name, 0), int(pos))


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")
