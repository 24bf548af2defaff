"""REST API under ``{base_url}hive_lab/api/``: parse, call the core, answer. No logic here.

Every route goes through Jupyter's authentication and its authorizer (resource ``hive_lab``),
except hook ingestion, which agents call with their per-session secret instead of the Jupyter
token. Core exceptions become JSON ``{"error", "detail"}`` with their status code in one place
(:meth:`HiveHandler.write_error`); nothing else reaches a client, tracebacks least of all.
"""
from __future__ import annotations

import json
from functools import wraps
from typing import Any, Awaitable, Callable

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..core.facade import Hive, parse_int
from ..core.errors import BadRequest, HiveError, TooLarge
from ..core.sessions import SpawnRequest

API = r"/hive_lab/api"
NAME = r"(?P<name>[^/]+)"
MAX_BODY = 2 * 1024 * 1024
AUTH_RESOURCE = "hive_lab"


class HiveHandler(ExtensionHandlerMixin, APIHandler):
    """Base: JSON in, JSON out, errors mapped once."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, name: str = "hive_lab", *args: Any, **kwargs: Any) -> None:
        super().initialize(name, *args, **kwargs)

    @property
    def hive(self) -> Hive:
        return self.settings["hive_lab"]

    def json_body(self) -> Any:
        body = self.request.body or b""
        if len(body) > MAX_BODY:
            raise TooLarge(f"request body over {MAX_BODY} bytes")
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, HiveError):
            body = exc.to_json()
        elif isinstance(exc, web.HTTPError):
            body = {"error": (exc.reason or web.httputil.responses.get(status_code, "error"))
                    .lower().replace(" ", "_"),
                    "detail": exc.log_message or web.httputil.responses.get(status_code, "")}
        else:
            body = {"error": "internal_error", "detail": "unexpected server error; see the server log"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


def api(method: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    """Authenticate, authorise, then map core errors to their HTTP status."""

    @wraps(method)
    async def wrapper(self: HiveHandler, *args: Any, **kwargs: Any) -> None:
        try:
            result = method(self, *args, **kwargs)
            if hasattr(result, "__await__"):
                await result
        except HiveError as exc:
            self.set_status(exc.status)
            self.finish(json.dumps(exc.to_json(), ensure_ascii=False))

    return web.authenticated(authorized(wrapper))


class StatusHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply(self.hive.status())


class ProfilesHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"profiles": self.hive.profiles()})


class SessionsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"sessions": self.hive.sessions.list()})

    @api
    async def post(self) -> None:
        request = SpawnRequest.parse(self.json_body())
        session = await self.hive.sessions.spawn(request)
        self.reply(self.hive.sessions.describe(session), status=201)


class SessionHandler(HiveHandler):
    @api
    def get(self, name: str) -> None:
        sessions = self.hive.sessions
        self.reply(sessions.describe(sessions.get(name)))

    @api
    async def delete(self, name: str) -> None:
        cleanup = self.get_query_argument("cleanup", None)
        force = self.get_query_argument("force", "false").lower() in ("1", "true", "yes")
        self.reply(await self.hive.sessions.kill(name, cleanup=cleanup, force=force))


class InputHandler(HiveHandler):
    @api
    async def post(self, name: str) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or "text" not in body:
            raise BadRequest('body must be {"text": str, "enter": bool}')
        await self.hive.sessions.send_input(name, body["text"], body.get("enter", True))
        self.reply({"ok": True})


class KeysHandler(HiveHandler):
    @api
    def post(self, name: str) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or "keys" not in body:
            raise BadRequest('body must be {"keys": [key names]}')
        self.reply({"keys": self.hive.sessions.send_keys(name, body["keys"])})


class ScreenHandler(HiveHandler):
    @api
    def get(self, name: str) -> None:
        lines = self.get_query_argument("lines", None)
        count = parse_int(lines, "lines", 0, 1, 10000) if lines is not None else None
        self.reply({"name": name, "text": self.hive.sessions.screen(name, count)})


class EventsHandler(HiveHandler):
    @api
    def get(self) -> None:
        q = self.get_query_argument
        args: dict[str, Any] = {
            "after": parse_int(q("after", None), "after", 0, 0, 2**62),
            "limit": parse_int(q("limit", None), "limit", 1000, 1, 10000),
        }
        for key in ("session", "event", "agent"):
            value = q(key, None)
            if value:
                args[key] = value
        for key in ("since", "until"):
            value = q(key, None)
            if value:
                args[key] = _parse_time(value, key)
        self.reply({"events": self.hive.events(args)})


class TransitionsHandler(HiveHandler):
    @api
    def get(self) -> None:
        q = self.get_query_argument
        self.reply({"transitions": self.hive.transitions(
            q("session", None) or None, parse_int(q("after", None), "after", 0, 0, 2**62),
            parse_int(q("limit", None), "limit", 10000, 1, 100000))})


class GitHandler(HiveHandler):
    @api
    def get(self) -> None:
        states = self.hive.git.states
        self.reply({"sessions": {name: (states[name].to_json() if name in states else None)
                                 for name in self.hive.sessions.sessions}})


class SessionGitHandler(HiveHandler):
    @api
    async def get(self, name: str) -> None:
        state = await self.hive.git.state(name)
        self.reply({"name": name, "git": state.to_json() if state else None})


class DiffHandler(HiveHandler):
    @api
    async def get(self, name: str) -> None:
        cap = parse_int(self.get_query_argument("max_bytes", None), "max_bytes", 1_000_000, 1,
                        50_000_000)
        result = await self.hive.git.diff(name, cap)
        if result is None:
            raise BadRequest(f"session {name!r} has no worktree")
        self.reply({"name": name, **result})


class ConflictsHandler(HiveHandler):
    @api
    async def get(self) -> None:
        self.reply((await self.hive.git.conflicts()).to_json())


class OrphansHandler(HiveHandler):
    @api
    async def get(self) -> None:
        import asyncio

        orphans = await asyncio.to_thread(self.hive.git.orphans)
        self.reply({"orphans": [o.to_json() for o in orphans]})

    @api
    async def post(self) -> None:
        body = self.json_body()
        names = body.get("sessions") if isinstance(body, dict) else None
        force = body.get("force", False) if isinstance(body, dict) else False
        if names is not None and (not isinstance(names, list)
                                  or not all(isinstance(n, str) for n in names)):
            raise BadRequest("sessions must be a list of names")
        if not isinstance(force, bool):
            raise BadRequest("force must be true or false")
        self.reply({"results": await self.hive.git.clean_orphans(names, force)})


class UsageHandler(HiveHandler):
    @api
    def get(self) -> None:
        by = self.get_query_argument("by", "session")
        if by not in ("session", "day", "model", "block"):
            raise BadRequest("by must be session, day, model or block")
        self.reply(self.hive.usage.report(by, **_usage_filters(self)))


class UsageRowsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"rows": self.hive.usage.rows_json(**_usage_filters(self))})


class InstallsHandler(HiveHandler):
    @api
    def post(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise BadRequest('body must be {"dir": str, "agent": "claude"|"gemini"}')
        remove = body.get("remove", False)
        if not isinstance(remove, bool):
            raise BadRequest("remove must be true or false")
        self.reply(self.hive.install_hooks(body.get("dir"), body.get("agent", "claude"), remove),
                   status=200 if remove else 201)


def _usage_filters(handler: HiveHandler) -> dict[str, Any]:
    q = handler.get_query_argument
    out: dict[str, Any] = {"session": q("session", None) or None}
    for key in ("since", "until"):
        value = q(key, None)
        out[key] = _parse_time(value, key) if value else None
    return out


class HooksHandler(web.RequestHandler):
    """Hook ingestion: authenticated by the per-session secret, not the Jupyter token.

    A plain tornado handler on purpose: it is the hot path (every agent event) and uses none
    of Jupyter's identity, cookie, XSRF or CORS machinery (measured: ~30% less server CPU per
    event). The secret header is the only credential it accepts.
    """

    def initialize(self, **kwargs: Any) -> None:
        self.hive: Hive = self.settings["hive_lab"]

    def check_xsrf_cookie(self) -> None:
        """Not cookie-authenticated: the secret header is the credential."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    async def post(self) -> None:
        h = self.request.headers
        try:
            result = await self.hive.sessions.ingest(
                self.request.body, h.get("X-Hive-Session"), h.get("X-Hive-Install"),
                h.get("X-Hive-Agent"), h.get("X-Hive-Key"), h.get("X-Hive-Fired"),
                secret=h.get("X-Hive-Secret"))
        except HiveError as exc:
            self.set_status(exc.status)
            self.finish(json.dumps(exc.to_json()))
            return
        if h.get("X-Hive-Client") == "c1":  # the C hook client: answer in headers, no JSON
            from ..hook import c1_answer

            headers, body = c1_answer(result)
            for name, value in headers:
                self.set_header(name, value)
            self.finish(body)
            return
        self.finish(json.dumps(result))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(json.dumps({"error": "internal_error" if status_code >= 500 else "http_error",
                                "detail": web.httputil.responses.get(status_code, "error")}))


def _parse_time(value: str, name: str) -> float:
    from datetime import datetime, timezone

    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be epoch seconds or ISO 8601") from None
    if parsed.tzinfo is None:  # naive: UTC, like every time the API returns
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def handlers() -> list[tuple[str, type]]:
    from .stream import EventStreamHandler

    return [
        (rf"{API}/status", StatusHandler),
        (rf"{API}/profiles", ProfilesHandler),
        (rf"{API}/sessions", SessionsHandler),
        (rf"{API}/sessions/{NAME}", SessionHandler),
        (rf"{API}/sessions/{NAME}/input", InputHandler),
        (rf"{API}/sessions/{NAME}/keys", KeysHandler),
        (rf"{API}/sessions/{NAME}/screen", ScreenHandler),
        (rf"{API}/events", EventsHandler),
        (rf"{API}/events/stream", EventStreamHandler),
        (rf"{API}/transitions", TransitionsHandler),
        (rf"{API}/hooks", HooksHandler),
        (rf"{API}/installs", InstallsHandler),
        (rf"{API}/git", GitHandler),
        (rf"{API}/git/conflicts", ConflictsHandler),
        (rf"{API}/git/orphans", OrphansHandler),
        (rf"{API}/sessions/{NAME}/git", SessionGitHandler),
        (rf"{API}/sessions/{NAME}/diff", DiffHandler),
        (rf"{API}/usage", UsageHandler),
        (rf"{API}/usage/rows", UsageRowsHandler),
    ]
