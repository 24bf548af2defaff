"""Gemini CLI's own usage accounting: the ``tokens`` of each ``gemini`` message in its chat file.

Gemini CLI (@google/gemini-cli 0.61.0, ``ChatRecordingService``) records every conversation in
``~/.gemini/tmp/<project>/chats/session-<date>T<hh-mm>-<id8>.jsonl``, the ``transcript_path``
its hooks report. The file is append-only JSON lines:

* first a metadata line ``{"sessionId", "projectHash", "startTime", "lastUpdated", "kind"}``;
* message records ``{"id", "timestamp", "type": "user"|"gemini"|..., "content", ...}``; a
  ``gemini`` message, one per main-loop API response, carries ``"model"`` and ``"tokens":
  {"input", "output", "cached", "thoughts", "tool", "total"}`` copied from the response's
  last ``usageMetadata`` (promptTokenCount, candidatesTokenCount, cachedContentTokenCount,
  thoughtsTokenCount, toolUsePromptTokenCount, totalTokenCount);
* the same message again, same ``id``, whenever it changes (tool calls added, tokens
  attached late): a reader keeps one per ``id``;
* ``{"$set": {...}}`` metadata updates, where ``$set.messages`` replaces the whole list (the
  first line of a session, a resume); ``{"$rewindTo": "<id>"}`` when the user rewinds
  (spent tokens stay spent: a rewind does not take rows away). ``gemini --resume <uuid>``
  appends to the session's original file after ``{"$set": {"sessionId": ...}}`` (and leaves
  a stray new file holding only a metadata line and the fresh context).

As the API counts, ``input`` (promptTokenCount) includes ``cached`` and ``output``
(candidatesTokenCount) excludes ``thoughts``; thoughts are billed as output. The CLI's own
``/stats model`` table shows, per model, Input = prompt - cached, Cache Reads = cached,
Thoughts, Output = candidates, Total = totalTokenCount. Its side calls (the model router's
``utility_router`` role on a flash-lite model) are in ``/stats`` but not in the chat file, so
Hive Lab sees only the ``main`` role (see tests/gemini_support/NOTES.md).

Stdlib only, importing nothing from the package (parse.py builds the rows from this).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator


def is_gemini_chat(path: str | os.PathLike[str]) -> bool:
    """``.../chats/session-*.jsonl``, as the CLI names them."""
    p = os.fspath(path)
    return os.path.basename(p).startswith("session-") and \
        os.path.basename(os.path.dirname(p)) == "chats"


def chat_project(path: str | os.PathLike[str]) -> str:
    """The project directory's name under ``~/.gemini/tmp`` (the CLI's short project id)."""
    return os.path.basename(os.path.dirname(os.path.dirname(os.fspath(path))))


@dataclass(frozen=True, slots=True)
class GeminiResponse:
    """One main-loop API response as the CLI recorded it."""

    message_id: str
    timestamp: str
    model: str
    prompt: int  # includes cached
    candidates: int  # excludes thoughts
    cached: int
    thoughts: int
    tool: int
    total: int

    @property
    def uncached_input(self) -> int:
        return max(0, self.prompt - self.cached) + self.tool

    @property
    def output(self) -> int:
        return self.candidates + self.thoughts


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def _response(msg: Any) -> GeminiResponse | None:
    if not isinstance(msg, dict) or msg.get("type") != "gemini":
        return None
    tokens, mid, stamp = msg.get("tokens"), msg.get("id"), msg.get("timestamp")
    if not isinstance(tokens, dict) or not isinstance(mid, str) or not mid \
            or not isinstance(stamp, str):
        return None
    model = msg.get("model")
    prompt, cached = _count(tokens.get("input")), _count(tokens.get("cached"))
    return GeminiResponse(
        message_id=mid, timestamp=stamp,
        model=model if isinstance(model, str) and model else "unknown",
        prompt=prompt, candidates=_count(tokens.get("output")), cached=min(cached, prompt),
        thoughts=_count(tokens.get("thoughts")), tool=_count(tokens.get("tool")),
        total=_count(tokens.get("total")))


def parse_line(line: bytes) -> tuple[str | None, list[GeminiResponse]]:
    """``(session id if this is the metadata line, responses the line records)``.

    Any other record, or a damaged line, gives ``(None, [])``.
    """
    if b'"tokens"' not in line and b'"sessionId"' not in line:  # most lines: no json.loads
        return None, []
    try:
        d = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None, []
    if not isinstance(d, dict):
        return None, []
    meta = d["$set"] if isinstance(d.get("$set"), dict) else d  # a resume: $set.sessionId
    sid = meta.get("sessionId") if isinstance(meta.get("sessionId"), str) else None
    found: list[GeminiResponse] = []
    for msg in _messages(d):
        r = _response(msg)
        if r is not None:
            found.append(r)
    return sid or None, found


def _messages(d: dict[str, Any]) -> Iterator[Any]:
    if isinstance(d.get("id"), str):
        yield d
        return
    for holder in (d.get("$set"), d):  # $set.messages, or a rewritten file's metadata line
        if isinstance(holder, dict) and isinstance(holder.get("messages"), list):
            yield from holder["messages"]
