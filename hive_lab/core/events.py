"""Normalised event records: one shape for hook events and Hive Lab's own events.

Every event on the stream, whatever the agent CLI, has the same fields. Hook payloads are kept
whole in ``payload``; the columns pulled out of them (event name, tool, tool_use_id, a short
summary) are what lists, filters and the status machine need.
"""
from __future__ import annotations

import json
import os
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import BadRequest, TooLarge

MAX_PAYLOAD = 1024 * 1024

# Events Hive Lab itself puts on the stream (agent "hive"): wire vocabulary.
from ..wire import (  # noqa: E402,F401  (re-exported for the core's callers)
    CONFLICT_PREDICTED, GIT_CHANGED, HIVE_AGENT, HOOK_DECIDED, SCREEN_ANSWERED, SESSION_CREATED, SESSION_REMOVED,
    STATE_CHANGED, USAGE_UPDATED,
)

_EVENT_NAME_KEYS = ("hook_event_name", "hookEventName", "event", "type")


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 in UTC with milliseconds (what the API emits)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


def new_key(prefix: str = "") -> str:
    return prefix + os.urandom(16).hex()


@dataclass
class Event:
    """One stored event. ``id`` is assigned by the store and increases strictly."""

    key: str
    session: str
    agent: str
    event: str
    payload: dict[str, Any]
    time: float
    received: float = field(default_factory=_time.time)
    tool: str | None = None
    tool_use_id: str | None = None
    agent_session_id: str | None = None
    summary: str = ""
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session": self.session,
            "agent": self.agent,
            "event": self.event,
            "tool": self.tool,
            "tool_use_id": self.tool_use_id,
            "agent_session_id": self.agent_session_id,
            "summary": self.summary,
            "time": iso(self.time),
            "received": iso(self.received),
            "payload": self.payload,
        }


def parse_payload(body: bytes) -> dict[str, Any]:
    """Decode a hook body: UTF-8 JSON object of at most 1 MiB, else a clear BadRequest."""
    if len(body) > MAX_PAYLOAD:
        raise TooLarge(f"payload is {len(body)} bytes; the limit is {MAX_PAYLOAD}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"payload is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"payload must be a JSON object, not {type(data).__name__}")
    return data


def event_name(payload: dict[str, Any]) -> str:
    """The hook's event name, whatever the CLI calls the field; unknown names are kept."""
    for key in _EVENT_NAME_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value[:64]
    return "Unknown"


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(name: str, payload: dict[str, Any]) -> str:
    """A one-line human summary (plain text; the UI escapes it)."""
    tool = payload.get("tool_name")
    tool_input = payload.get("tool_input")
    if tool and isinstance(tool_input, dict):
        for key in ("command", "file_path", "path", "pattern", "url", "description"):
            if key in tool_input:
                return _short(f"{tool}: {tool_input[key]}")
        return _short(f"{tool}")
    for key in ("message", "prompt", "last_assistant_message", "error", "reason", "source"):
        if key in payload and payload[key] not in (None, ""):
            return _short(payload[key])
    if name == "agent-turn-complete":
        return _short(payload.get("last-assistant-message", ""))
    return ""


def from_hook(payload: dict[str, Any], *, key: str, session: str, agent: str,
              fired: float | None, received: float | None = None) -> Event:
    """Build an :class:`Event` from a validated hook payload."""
    name = event_name(payload)
    received = received if received is not None else _time.time()
    tool = payload.get("tool_name")
    tool_use_id = payload.get("tool_use_id")
    agent_sid = payload.get("session_id") or payload.get("thread-id") or payload.get("thread_id")
    return Event(
        key=key,
        session=session,
        agent=agent,
        event=name,
        payload=payload,
        time=fired if fired is not None else received,
        received=received,
        tool=tool[:128] if isinstance(tool, str) else None,
        tool_use_id=tool_use_id[:128] if isinstance(tool_use_id, str) else None,
        agent_session_id=agent_sid[:128] if isinstance(agent_sid, str) else None,
        summary=summarize(name, payload),
    )


def internal(session: str, name: str, payload: dict[str, Any], summary: str = "") -> Event:
    """An event Hive Lab itself emits (state changes, git, usage...)."""
    now = _time.time()
    return Event(key=new_key("hive-"), session=session, agent="hive", event=name,
                 payload=payload, time=now, received=now, summary=summary)
