"""What a notification says: the exact question, built from the agent's own hook payloads.

Pure functions. Everything an agent wrote (commands, file contents, question text) is hostile:
control characters (terminal escapes, bidi overrides) are dropped and every piece is cut to a
length, so a notification can neither smuggle escapes into a terminal or a chat client nor
grow without bound. Channels get plain text (apprise is told so: no markdown interpretation).
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_TITLE = 200
MAX_BODY = 2000
# C0/C1 controls except tab and newline, DEL, and the bidi overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?")


def clean(value: Any, limit: int) -> str:
    """A hostile value as safe plain text of at most ``limit`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = _CONTROL.sub("", _ANSI.sub("", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line(value: Any, limit: int = 160) -> str:
    """Like :func:`clean`, on one line (titles, labels)."""
    return " ".join(clean(value, limit * 2).split())[:limit]


def indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + row for row in text.splitlines()) if text else prefix


def tool_request(tool: str | None, tool_input: Any) -> str:
    """What a tool call wants to do, as the user would need to judge it."""
    name = line(tool or "a tool", 64)
    data = tool_input if isinstance(tool_input, dict) else {}
    if name == "AskUserQuestion" and isinstance(data.get("questions"), list):
        return questions(data["questions"])
    if "command" in data:
        out = f"{name} wants to run:\n{indent(clean(data['command'], 800))}"
        if data.get("description"):
            out += f"\n({line(data['description'], 200)})"
        return out
    path = data.get("file_path") or data.get("path") or data.get("notebook_path")
    if path:
        out = f"{name} {clean(path, 300)}"
        if "content" in data:
            out += "\n" + indent(clean(data["content"], 400), "| ")
        elif "old_string" in data or "new_string" in data:
            out += ("\n" + indent(clean(data.get("old_string"), 300), "- ")
                    + "\n" + indent(clean(data.get("new_string"), 300), "+ "))
        elif "edits" in data:
            out += f"\n({len(data['edits']) if isinstance(data['edits'], list) else '?'} edits)"
        return out
    for key in ("url", "pattern", "query", "prompt", "description"):
        if key in data:
            return f"{name}: {clean(data[key], 600)}"
    return f"{name}: {clean(data, 600)}" if data else name


def questions(items: list[Any]) -> str:
    """AskUserQuestion's questions with their numbered choices."""
    blocks = []
    for item in items[:8]:
        if not isinstance(item, dict):
            continue
        head = clean(item.get("question") or item.get("header") or "", 400)
        rows = [head + (" (several answers allowed)" if item.get("multiSelect") else "")]
        raw = item.get("options")
        options: list[Any] = raw if isinstance(raw, list) else []
        for n, option in enumerate(options[:12], 1):
            if isinstance(option, dict):
                label = line(option.get("label"), 120)
                desc = line(option.get("description"), 200)
                rows.append(f"  {n}. {label}" + (f": {desc}" if desc else ""))
            else:
                rows.append(f"  {n}. {line(option, 120)}")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks) or "(a question with no text)"


def waiting(session: str, state: dict[str, Any],
            hooks: list[dict[str, Any]]) -> tuple[str, str, str]:
    """Kind, title and body for a session that started waiting; ``hooks`` newest first.

    The pending request is the newest PermissionRequest/PreToolUse (for Gemini BeforeTool) of
    the tool the state names; a question comes from AskUserQuestion's input, an Elicitation or a
    Notification's ``message``.
    """
    reason = state.get("reason") or "input"
    tool = state.get("tool")
    who = line(session, 64)
    request = _pending_tool(hooks, tool)
    message = next((h.get("message") for h in hooks if isinstance(h.get("message"), str)
                    and h.get("message")), None)
    if request is not None and request.get("tool_name") == "AskUserQuestion":
        reason = "question"
    if reason == "question":
        title = f"{who} asks a question"
        if request is not None and request.get("tool_name") == "AskUserQuestion":
            body = tool_request("AskUserQuestion", request.get("tool_input"))
        else:
            body = clean(message, 1200) or "The agent is waiting for an answer (see its screen)."
    else:
        title = f"{who} asks permission: {line(tool or 'a tool', 64)}"
        if request is not None:
            body = tool_request(request.get("tool_name"), request.get("tool_input"))
        else:
            body = f"{line(tool or 'A tool', 64)} needs permission (seen on its screen)."
        if message and message not in body:
            body += f"\n{clean(message, 300)}"
    cwd = next((h.get("cwd") for h in hooks if isinstance(h.get("cwd"), str)), None)
    body += f"\n\nSession {who}" + (f" in {clean(cwd, 300)}" if cwd else "")
    kind = "question" if reason == "question" else "permission"
    return kind, title[:MAX_TITLE], body[:MAX_BODY]


def _pending_tool(hooks: list[dict[str, Any]], tool: str | None) -> dict[str, Any] | None:
    for wanted in ("PermissionRequest", "PreToolUse", "BeforeTool"):
        for hook in hooks:
            if hook.get("hook_event_name") != wanted or not isinstance(hook.get("tool_input"), dict):
                continue
            if tool is None or hook.get("tool_name") == tool:
                return hook
    return None


def task(task_json: dict[str, Any], state: str) -> tuple[str, str]:
    """Title and body for a task that failed or is blocked."""
    tid = line(task_json.get("id"), 64)
    reason = clean((task_json.get("state") or {}).get("reason"), 800)
    title = f"Task {tid} {state}" + (f": {line(task_json.get('title'), 80)}"
                                     if task_json.get("title") else "")
    body = reason or state
    attempts = task_json.get("attempts") or []
    if attempts and isinstance(attempts[-1], dict) and attempts[-1].get("check_tail"):
        body += "\n\nCheck output (end):\n" + indent(clean(attempts[-1]["check_tail"], 600))
    body += f"\n\nTask {tid}: {line(task_json.get('prompt'), 200)}"
    return title[:MAX_TITLE], body[:MAX_BODY]


def scope_request(task_id: str, request: dict[str, Any]) -> tuple[str, str]:
    glob = line(request.get("glob"), 200)
    title = f"Task {line(task_id, 64)} asks for scope {glob}"
    body = (f"Wants to write {glob}\nWhy: {clean(request.get('why'), 800) or '(no reason given)'}"
            f"\n\nScope request {request.get('id')} (session {line(request.get('session'), 64)})")
    return title[:MAX_TITLE], body[:MAX_BODY]


def attention(name: str, session: str, payload: dict[str, Any], summary: str) -> tuple[str, str]:
    """Budget, provider and stall events: their own ``message`` (or summary) as the text."""
    words = re.sub(r"(?<!^)([A-Z])", r" \1", name).lower()
    title = f"{words[0].upper()}{words[1:]}: {line(payload.get('task') or payload.get('session') or session, 64)}"
    body = clean(payload.get("message") or summary or name, 1500)
    return title[:MAX_TITLE], body[:MAX_BODY]


def escalation(title: str, body: str, minutes: float) -> tuple[str, str]:
    return (f"Still waiting: {title}"[:MAX_TITLE],
            f"Unanswered for {minutes:g} min.\n\n{body}"[:MAX_BODY])
