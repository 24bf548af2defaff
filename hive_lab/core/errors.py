"""Errors the core raises; the HTTP layer maps each to its status code in one place."""
from __future__ import annotations

from typing import Any


class HiveError(Exception):
    """Base class: a short ``error`` slug plus a human ``detail``."""

    status = 500
    error = "internal_error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        body.update(self.extra)
        return body


class BadRequest(HiveError):
    status = 400
    error = "bad_request"


class Forbidden(HiveError):
    status = 403
    error = "forbidden"


class NotFound(HiveError):
    status = 404
    error = "not_found"


class Conflict(HiveError):
    status = 409
    error = "conflict"


class TooLarge(HiveError):
    status = 413
    error = "too_large"


class TmuxError(HiveError):
    """tmux itself failed (not the user's input)."""

    status = 500
    error = "tmux_error"


class GitError(HiveError):
    """git itself failed on something that is not the user's fault."""

    status = 500
    error = "git_error"
