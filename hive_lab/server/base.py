"""What every handler shares: the one error map, edge parsing, the JSON base handler.

Core code raises domain exceptions that know nothing of HTTP (:mod:`hive_lab.core.errors`);
:func:`error_status` is the only place that turns them into a status code, and
:func:`error_body` the only place that shapes the ``{"error", "detail"}`` answer. Anything else
a handler raises becomes a 500 with a generic detail: no traceback ever reaches a client.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import wraps
from typing import Any, Awaitable, Callable

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..core import errors as E
from ..core.facade import Hive
from ..wire import AUTH_RESOURCE

MAX_BODY = 2 * 1024 * 1024

# Most specific first: the first class an exception is an instance of decides.
_STATUS: tuple[tuple[type[E.HiveError], int], ...] = (
    (E.BadRequest, 400),
    (E.Forbidden, 403),
    (E.NotFound, 404),
    (E.Conflict, 409),
    (E.TooLarge, 413),
    (E.TmuxError, 503),  # the terminal multiplexer we drive is unavailable or refused
    (E.GitError, 502),
    (E.StoreUnavailable, 503),  # the shared store (PostgreSQL) does not answer  # git, which we drive, failed on something not the caller's fault
)
INTERNAL = {"error": "internal_error", "detail": "unexpected server error; see the server log"}


def error_status(exc: E.HiveError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_body(exc: BaseException | None, status: int = 500) -> dict[str, Any]:
    """The JSON error answer for ``exc`` (a domain error, a tornado HTTPError, or anything)."""
    if isinstance(exc, E.HiveError):
        return exc.to_json()
    if isinstance(exc, web.HTTPError):
        reason = exc.reason or web.httputil.responses.get(status, "error")
        return {"error": reason.lower().replace(" ", "_"),
                "detail": exc.log_message or web.httputil.responses.get(status, "")}
    return dict(INTERNAL)


def parse_int(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    """Query-string integers, validated at the edge."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise E.BadRequest(f"{name} must be an integer") from None
    if not lo <= number <= hi:
        raise E.BadRequest(f"{name} must be between {lo} and {hi}")
    return number


def parse_time(value: str, name: str) -> float:
    """Epoch seconds or ISO 8601 (naive means UTC, like every time the API returns)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise E.BadRequest(f"{name} must be epoch seconds or ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes")


class HiveHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every REST handler: JSON in, JSON out, errors mapped once."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, name: str = "hive_lab", *args: Any, **kwargs: Any) -> None:
        super().initialize(name, *args, **kwargs)

    @property
    def hive(self) -> Hive:
        return self.settings["hive_lab"]

    def json_body(self) -> Any:
        body = self.request.body or b""
        if len(body) > MAX_BODY:
            raise E.TooLarge(f"request body over {MAX_BODY} bytes")
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise E.BadRequest(f"body is not valid JSON: {exc}") from None

    def json_object(self, shape: str) -> dict[str, Any]:
        """The body, which must be a JSON object; ``shape`` describes it in the error."""
        body = self.json_body()
        if not isinstance(body, dict):
            raise E.BadRequest(f"body must be {shape}")
        return body

    def query(self, name: str) -> str | None:
        return self.get_query_argument(name, None) or None

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, ensure_ascii=False))

    def fail(self, exc: E.HiveError) -> None:
        self.set_status(error_status(exc))
        self.finish(json.dumps(error_body(exc), ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error_body(exc, status_code)))


def api(method: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    """Authenticate, authorise, then map domain errors to their HTTP status."""

    @wraps(method)
    async def wrapper(self: HiveHandler, *args: Any, **kwargs: Any) -> None:
        try:
            result = method(self, *args, **kwargs)
            if hasattr(result, "__await__"):
                await result
        except E.HiveError as exc:
            self.fail(exc)

    return web.authenticated(authorized(wrapper))  # type: ignore[return-value]
