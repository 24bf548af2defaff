"""The one exception hierarchy of the control plane, named for what went wrong.

Nothing here knows about HTTP: the server layer maps these to status codes in exactly one
place (:func:`hive_lab.server.base.error_status`). The five broad kinds (bad input, not
allowed, not found, conflicts with the current state, too large) plus the two "a tool we drive
failed" kinds are what that map keys on; the specific classes below them say which thing it
was, so callers (and a remote implementation of the facade) can catch precisely.
"""
from __future__ import annotations

from typing import Any


class HiveError(Exception):
    """Base class: the broad ``error`` slug, a human ``detail``, and for specific cases a
    ``code`` naming exactly what went wrong (``session_exists``, ``unmerged_work``...)."""

    error = "internal_error"
    code: str | None = None

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.code:
            body["code"] = self.code
        body.update(self.extra)
        return body


# -- the broad kinds ---------------------------------------------------------------------------
class BadRequest(HiveError):
    """The input is malformed or names something impossible; nothing was changed."""

    error = "bad_request"


class Forbidden(HiveError):
    """The caller may not do this (wrong hook secret, unknown session for a hook)."""

    error = "forbidden"


class NotFound(HiveError):
    error = "not_found"


class Conflict(HiveError):
    """The request is fine but the current state refuses it."""

    error = "conflict"


class TooLarge(HiveError):
    error = "too_large"


class TmuxError(HiveError):
    """tmux itself failed (not the user's input): the service is unavailable, say why."""

    error = "tmux_error"


class GitError(HiveError):
    """git itself failed on something that is not the user's fault."""

    error = "git_error"


class StoreUnavailable(HiveError):
    """The shared store (PostgreSQL) does not answer: orchestration waits, agents go on (503)."""

    error = "store_unavailable"


# -- specific cases ------------------------------------------------------------------------------
class UnknownSession(NotFound):
    code = "unknown_session"


class SessionExists(Conflict):
    code = "session_exists"


class SessionExited(Conflict):
    code = "session_exited"


class NotWaiting(Conflict):
    """An answer (approve, deny, a choice) for a question that is not open."""

    code = "not_waiting"


class UnmergedWork(Conflict):
    """Cleanup refused: the branch has work that is neither merged nor pushed."""

    code = "unmerged_work"
