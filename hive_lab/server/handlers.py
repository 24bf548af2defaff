"""REST API under ``{base_url}hive_lab/api/``: parse, call the facade, answer. No logic here.

Every route goes through Jupyter's authentication and its authorizer (resource ``hive_lab``),
except hook ingestion, which agents call with their per-session secret instead of the Jupyter
token. Handlers call only methods of :class:`hive_lab.core.facade.Hive`; domain errors become
JSON ``{"error", "detail"}`` with their status in one place (:mod:`.base`).
"""
from __future__ import annotations

import json
from typing import Any

from tornado import web

from ..core.errors import BadRequest, HiveError
from ..core.facade import Hive
from ..hook import c1_answer
from ..wire import (API_PREFIX, CLIENT_C1, HEADER_CLIENT, HOOKS_PATH, MERGES_PATH,
                    NOTIFICATIONS_PATH, PIPELINES_PATH, SCOPE_REQUEST_PATH, STREAM_PATH)
from .base import HiveHandler, api, error_body, error_status, parse_bool, parse_int, parse_time
from .fleet import fleet_handlers
from .stream import EventStreamHandler

API = "/" + API_PREFIX
NAME = r"(?P<name>[^/]+)"


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
        self.reply({"sessions": self.hive.list_sessions(host=self.query("host"))})

    @api
    async def post(self) -> None:
        self.reply(await self.hive.spawn(self.json_body()), status=201)


class SessionHandler(HiveHandler):
    @api
    def get(self, name: str) -> None:
        self.reply(self.hive.session(name))

    @api
    async def delete(self, name: str) -> None:
        self.reply(await self.hive.kill(name, cleanup=self.query("cleanup"),
                                        force=parse_bool(self.query("force"))))


class InputHandler(HiveHandler):
    @api
    async def post(self, name: str) -> None:
        body = self.json_object('{"text": str, "enter": bool}')
        if "text" not in body:
            raise BadRequest('body must be {"text": str, "enter": bool}')
        await self.hive.send_input(name, body["text"], body.get("enter", True))
        self.reply({"ok": True})


class KeysHandler(HiveHandler):
    @api
    def post(self, name: str) -> None:
        body = self.json_object('{"keys": [key names]}')
        if "keys" not in body:
            raise BadRequest('body must be {"keys": [key names]}')
        self.reply({"keys": self.hive.send_keys(name, body["keys"])})


class ApproveHandler(HiveHandler):
    @api
    def post(self, name: str) -> None:
        self.reply(self.hive.approve(name))


class DenyHandler(HiveHandler):
    @api
    def post(self, name: str) -> None:
        self.reply(self.hive.deny(name))


class ScreenHandler(HiveHandler):
    @api
    def get(self, name: str) -> None:
        lines = self.query("lines")
        count = parse_int(lines, "lines", 0, 1, 10000) if lines is not None else None
        ansi = parse_bool(self.query("ansi"))
        self.reply({"name": name, "text": self.hive.screen(name, count, ansi=ansi)})


class EventsHandler(HiveHandler):
    @api
    def get(self) -> None:
        args: dict[str, Any] = {
            "after": parse_int(self.query("after"), "after", 0, 0, 2**62),
            "limit": parse_int(self.query("limit"), "limit", 1000, 1, 10000),
        }
        for key in ("session", "event", "agent"):
            if value := self.query(key):
                args[key] = value
        for key in ("since", "until"):
            if value := self.query(key):
                args[key] = parse_time(value, key)
        self.reply({"events": self.hive.events(args)})


class TransitionsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"transitions": self.hive.transitions(
            self.query("session"), parse_int(self.query("after"), "after", 0, 0, 2**62),
            parse_int(self.query("limit"), "limit", 10000, 1, 100000))})


class GitHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"sessions": self.hive.git_states()})


class SessionGitHandler(HiveHandler):
    @api
    async def get(self, name: str) -> None:
        self.reply({"name": name, "git": await self.hive.session_git(name)})


class DiffHandler(HiveHandler):
    @api
    async def get(self, name: str) -> None:
        cap = parse_int(self.query("max_bytes"), "max_bytes", 1_000_000, 1, 50_000_000)
        self.reply({"name": name, **await self.hive.diff(name, cap)})


class ConflictsHandler(HiveHandler):
    @api
    async def get(self) -> None:
        self.reply(await self.hive.conflicts())


class OrphansHandler(HiveHandler):
    @api
    async def get(self) -> None:
        self.reply({"orphans": await self.hive.orphans()})

    @api
    async def post(self) -> None:
        body = self.json_object('{"sessions": [names], "force": bool}')
        self.reply({"results": await self.hive.clean_orphans(body.get("sessions"),
                                                             body.get("force", False))})


class UsageHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply(self.hive.usage_report(self.get_query_argument("by", "session"),
                                          **_usage_filters(self)))


class UsageRowsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"rows": self.hive.usage_rows(**_usage_filters(self))})


class InstallsHandler(HiveHandler):
    @api
    def post(self) -> None:
        body = self.json_object('{"dir": str, "agent": "claude"|"gemini"}')
        remove = body.get("remove", False)
        self.reply(self.hive.install_hooks(body.get("dir"), body.get("agent", "claude"), remove),
                   status=200 if remove is True else 201)


class TasksHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"tasks": self.hive.list_tasks(state=self.query("state"),
                                                  repo=self.query("repo"),
                                                  session=self.query("session"),
                                                  host=self.query("host"))})

    @api
    async def post(self) -> None:
        self.reply(await self.hive.add_task_anywhere(self.json_body()), status=201)


class TaskHandler(HiveHandler):
    @api
    def get(self, name: str) -> None:
        self.reply(self.hive.task(name))

    @api
    async def patch(self, name: str) -> None:
        self.reply(await self.hive.patch_task(name, self.json_body()))

    @api
    def delete(self, name: str) -> None:
        self.reply(self.hive.delete_task(name))


class TaskRetryHandler(HiveHandler):
    @api
    async def post(self, name: str) -> None:
        self.reply(await self.hive.retry_task(name))


class TaskViolationsHandler(HiveHandler):
    @api
    def post(self, name: str) -> None:
        body = self.json_object('{"accept": [repository-relative paths]}')
        self.reply(self.hive.accept_violations(name, body.get("accept")))


class PipelinesHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"pipelines": self.hive.list_pipelines(state=self.query("state"))})

    @api
    def post(self) -> None:
        self.reply(self.hive.add_pipeline(self.json_body()), status=201)


class PipelineHandler(HiveHandler):
    @api
    def get(self, name: str) -> None:
        self.reply(self.hive.pipeline(name))


class PipelineCancelHandler(HiveHandler):
    @api
    async def post(self, name: str) -> None:
        self.reply(await self.hive.cancel_pipeline(name))


class PipelineRetryHandler(HiveHandler):
    @api
    async def post(self, name: str) -> None:
        self.reply(await self.hive.retry_pipeline(name))


class ScopeRequestsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"requests": self.hive.scope_requests(self.query("task"), self.query("state"))})


class ScopeRequestHandler(HiveHandler):
    @api
    async def post(self, rid: str) -> None:
        body = self.json_object('{"approve": bool, "note": str}')
        number = parse_int(rid, "scope request id", 0, 1, 2**62)
        self.reply(await self.hive.decide_scope_request(number, body.get("approve"),
                                                        body.get("note", "")))


class BudgetsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply(self.hive.budget_report())

    @api
    async def put(self) -> None:
        self.reply(await self.hive.put_budgets(self.json_body()))


class NotificationsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"notifications": self.hive.notifications(
            unread=parse_bool(self.query("unread")),
            limit=parse_int(self.query("limit"), "limit", 100, 1, 1000))})


class NotificationChannelsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply(self.hive.notify_channels())


class NotificationReadHandler(HiveHandler):
    @api
    def post(self, nid: str) -> None:
        number = parse_int(nid, "notification id", 0, 1, 2**62)
        self.reply(self.hive.read_notification(number))


class MergesHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"merges": self.hive.list_merges(state=self.query("state"),
                                                    repo=self.query("repo"))})

    @api
    def post(self) -> None:
        self.reply(self.hive.offer_merge(self.json_body()), status=201)


class MergeHandler(HiveHandler):
    @api
    def get(self, mid: str) -> None:
        self.reply(self.hive.merge(parse_int(mid, "merge id", 0, 1, 2**62)))


class MergeActionHandler(HiveHandler):
    @api
    def post(self, mid: str, action: str) -> None:
        self.reply(self.hive.merge_action(parse_int(mid, "merge id", 0, 1, 2**62), action))


def _usage_filters(handler: HiveHandler) -> dict[str, Any]:
    out: dict[str, Any] = {"session": handler.query("session")}
    for key in ("since", "until"):
        value = handler.query(key)
        out[key] = parse_time(value, key) if value else None
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
        try:
            result = await self.hive.ingest_hook(self.request.body, self.request.headers)
        except HiveError as exc:
            self.set_status(error_status(exc))
            self.finish(json.dumps(error_body(exc)))
            return
        if self.request.headers.get(HEADER_CLIENT) == CLIENT_C1:  # the C hook client:
            headers, body = c1_answer(result)  # the answer in headers, no JSON to parse
            for name, value in headers:
                self.set_header(name, value)
            self.finish(body)
            return
        self.finish(json.dumps(result))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(json.dumps(error_body(None, status_code) if status_code >= 500 else
                               {"error": "http_error",
                                "detail": web.httputil.responses.get(status_code, "error")}))


class ScopeRequestHookHandler(HooksHandler):
    """``hive-lab task request-scope`` from inside a session: the hook channel's credential
    (the session's secret), but answered with the outcome, so a refusal reaches the agent."""

    async def post(self) -> None:
        try:
            result = self.hive.request_scope(self.request.body, self.request.headers)
        except HiveError as exc:
            self.set_status(error_status(exc))
            self.finish(json.dumps(error_body(exc)))
            return
        self.set_status(201)
        self.finish(json.dumps({"request": result}))


def handlers() -> list[tuple[str, type]]:
    return [
        (rf"{API}/status", StatusHandler),
        (rf"{API}/profiles", ProfilesHandler),
        (rf"{API}/sessions", SessionsHandler),
        (rf"{API}/sessions/{NAME}", SessionHandler),
        (rf"{API}/sessions/{NAME}/input", InputHandler),
        (rf"{API}/sessions/{NAME}/keys", KeysHandler),
        (rf"{API}/sessions/{NAME}/approve", ApproveHandler),
        (rf"{API}/sessions/{NAME}/deny", DenyHandler),
        (rf"{API}/sessions/{NAME}/screen", ScreenHandler),
        (rf"{API}/events", EventsHandler),
        (rf"{API}/{STREAM_PATH}", EventStreamHandler),
        (rf"{API}/transitions", TransitionsHandler),
        (rf"{API}/{HOOKS_PATH}", HooksHandler),
        (rf"{API}/{SCOPE_REQUEST_PATH}", ScopeRequestHookHandler),
        (rf"{API}/installs", InstallsHandler),
        (rf"{API}/git", GitHandler),
        (rf"{API}/git/conflicts", ConflictsHandler),
        (rf"{API}/git/orphans", OrphansHandler),
        (rf"{API}/sessions/{NAME}/git", SessionGitHandler),
        (rf"{API}/sessions/{NAME}/diff", DiffHandler),
        (rf"{API}/usage", UsageHandler),
        (rf"{API}/usage/rows", UsageRowsHandler),
        (rf"{API}/tasks", TasksHandler),
        (rf"{API}/tasks/{NAME}", TaskHandler),
        (rf"{API}/tasks/{NAME}/retry", TaskRetryHandler),
        (rf"{API}/tasks/{NAME}/violations", TaskViolationsHandler),
        (rf"{API}/{PIPELINES_PATH}", PipelinesHandler),
        (rf"{API}/{PIPELINES_PATH}/{NAME}", PipelineHandler),
        (rf"{API}/{PIPELINES_PATH}/{NAME}/cancel", PipelineCancelHandler),
        (rf"{API}/{PIPELINES_PATH}/{NAME}/retry", PipelineRetryHandler),
        (rf"{API}/scope-requests", ScopeRequestsHandler),
        (rf"{API}/budgets", BudgetsHandler),
        (rf"{API}/scope-requests/(?P<rid>[^/]+)", ScopeRequestHandler),
        (rf"{API}/{NOTIFICATIONS_PATH}", NotificationsHandler),
        (rf"{API}/{NOTIFICATIONS_PATH}/channels", NotificationChannelsHandler),
        (rf"{API}/{NOTIFICATIONS_PATH}/(?P<nid>[^/]+)/read", NotificationReadHandler),
        (rf"{API}/{MERGES_PATH}", MergesHandler),
        (rf"{API}/{MERGES_PATH}/(?P<mid>[^/]+)", MergeHandler),
        (rf"{API}/{MERGES_PATH}/(?P<mid>[^/]+)/(?P<action>approve|reject|cancel|retry)",
         MergeActionHandler),
        *fleet_handlers(),
    ]
