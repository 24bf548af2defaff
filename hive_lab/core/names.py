"""Validation of every name a user or an agent hands us.

tmux expands ``#{}`` and ``#(...)`` in session names and start directories and treats a
trailing ``;`` as a command separator, so names are held to a strict alphabet before any of
them gets near tmux, git or the file system. The rule itself is wire vocabulary
(:data:`hive_lab.wire.NAME_RE`): the hook client and the kernel side check the same one.
"""
from __future__ import annotations

from ..wire import NAME_RE, NAME_RULE
from .errors import BadRequest

__all__ = ["NAME_RE", "validate_name", "is_name"]


def is_name(value: object) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def validate_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a safe name, else raise :class:`BadRequest` saying the rule."""
    if not isinstance(value, str) or NAME_RE.fullmatch(value) is None:
        shown = value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:80]}..."
        raise BadRequest(f"invalid {what} {shown!r}: use {NAME_RULE}")
    return value
