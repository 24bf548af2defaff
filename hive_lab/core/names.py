"""Validation of every name a user or an agent hands us.

tmux expands ``#{}`` and ``#(...)`` in session names and start directories and treats a
trailing ``;`` as a command separator, so names are held to a strict alphabet before any of
them gets near tmux, git or the file system.
"""
from __future__ import annotations

import re

from .errors import BadRequest

# The documented alphabet ^[A-Za-z0-9_-]{1,64}$, minus a leading "-": such a name would read as
# an option to tmux, git or a CLI parser.
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


def validate_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a safe name (``^[A-Za-z0-9_-]{1,64}$``), else raise BadRequest."""
    if not isinstance(value, str) or NAME_RE.fullmatch(value) is None:
        shown = value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:80]}..."
        raise BadRequest(
            f"invalid {what} {shown!r}: use 1-64 characters from A-Z a-z 0-9 _ - "
            "(not starting with -)",
        )
    return value
