"""Aider's own usage accounting: the ``message_send`` events of its ``--analytics-log``.

Aider (aider-chat 0.86.2, ``aider/analytics.py``) appends one JSON object per event to the
file named by ``--analytics-log``, even with ``--no-analytics`` (only the network senders are
off). After every model reply it logs::

    {"event": "message_send", "time": <epoch s>, "user_id": "...", "properties": {
        "main_model": "openai/gpt-4.1-mini", "weak_model": ..., "editor_model": ...,
        "edit_format": "diff", "prompt_tokens": 2525, "completion_tokens": 2,
        "total_tokens": 2527, "cost": 0.0010132, "total_cost": 0.0010132}}

the same figures it prints as "Tokens: 2.5k sent, 2 received. Cost: $0.0010 message, $0.0010
session." (``main_model`` reads ``<provider>/REDACTED`` for a model aider has no metadata for,
and ``cost`` is then 0). Stdlib only, importing nothing from the package (parse.py builds
the rows from what this returns).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

SUFFIX = ".aider-analytics.jsonl"


def is_aider_log(path: str | os.PathLike[str]) -> bool:
    """Hive Lab names a session's log ``<session>-<spawn>.aider-analytics.jsonl``; a user's
    own log passed to ``hive-lab usage`` is recognised by a name starting ``aider-analytics``."""
    name = os.path.basename(path)
    return name.endswith(SUFFIX) or name.startswith("aider-analytics")


def log_session_id(path: str | os.PathLike[str]) -> str:
    name = os.path.basename(path)
    return name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name.rsplit(".", 1)[0]


@dataclass(frozen=True, slots=True)
class AiderMessage:
    """One reply as aider accounted it."""

    time: float
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # aider's own figure; None when it had none (unknown model: 0)
    edit_format: str


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def parse_line(line: bytes) -> AiderMessage | None:
    """The reply a log line records, or None for any other event or a damaged line."""
    if b'"message_send"' not in line:
        return None
    try:
        d = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(d, dict) or d.get("event") != "message_send":
        return None
    props = d.get("properties")
    when = d.get("time")
    if not isinstance(props, dict) or isinstance(when, bool) or not isinstance(when, (int, float)):
        return None
    model = props.get("main_model")
    raw = props.get("cost")
    cost = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
    if cost is not None and not (math.isfinite(cost) and cost > 0):
        cost = None
    return AiderMessage(
        time=float(when), model=model if isinstance(model, str) and model else "unknown",
        prompt_tokens=_count(props.get("prompt_tokens")),
        completion_tokens=_count(props.get("completion_tokens")),
        cost=cost,
        edit_format=str(props.get("edit_format") or ""))
