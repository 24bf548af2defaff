"""Needs you: every open question to a person, as plain cards, and the one client call per answer.

Pure functions over :class:`~hive_lab.widgets.live.LiveData` build the cards (the view renders
them; nothing here is HTML). The text of a card is what the notifier sends
(:func:`hive_lab.notify.text.waiting`), so a person reads the same question in the panel and
on their phone. Everything taken from an agent is hostile: it goes to the page as data and the
view sets it with ``textContent``.

An answer is sent only while the question is still open: :func:`still_open` re-reads the
session (or the scope request, or the pause) in the worker thread right before the call, and a
card whose question has gone is refused with a sentence saying what happened instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import wire
from ..client import HiveAPIError, HiveClient
from ..notify import text

MAX_CONTENT = 4000  # characters of a proposed file content / edit shown on a card
MAX_CHOICES = 12


def _cut(value: Any, limit: int = MAX_CONTENT) -> str:
    return text.clean(value, limit)


def _pending(hooks: list[dict[str, Any]], tool: str | None) -> dict[str, Any] | None:
    return text._pending_tool(hooks, tool)


def session_card(session: dict[str, Any], hooks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The card for a session waiting for a person, or None if it does not wait."""
    state = session.get("state") or {}
    if state.get("name") != wire.WAITING:
        return None
    name = str(session.get("name"))
    kind, title, body = text.waiting(name, state, hooks)
    card: dict[str, Any] = {
        "key": f"s:{name}:{state.get('since')}:{state.get('reason')}",
        "kind": kind, "session": name, "agent": text.line(session.get("agent"), 64),
        "since": state.get("since"), "reason": text.line(state.get("reason"), 64),
        "title": title, "body": body, "tool": text.line(state.get("tool"), 64) or None,
        "choices": [], "question": "",
    }
    request = _pending(hooks, state.get("tool"))
    data = request.get("tool_input") if request else None
    if isinstance(data, dict):
        if isinstance(data.get("command"), str):
            card["command"] = _cut(data["command"], 2000)
        path = data.get("file_path") or data.get("path") or data.get("notebook_path")
        if path:
            card["path"] = _cut(path, 300)
        if "content" in data:
            card["content"] = _cut(data["content"])
        if "old_string" in data or "new_string" in data:
            card["old"] = _cut(data.get("old_string"))
            card["new"] = _cut(data.get("new_string"))
        questions = data.get("questions")
        if isinstance(questions, list) and questions and isinstance(questions[0], dict):
            first = questions[0]
            card["question"] = _cut(first.get("question") or first.get("header"), 600)
            raw = first.get("options")
            options: list[Any] = raw if isinstance(raw, list) else []
            for n, option in enumerate(options[:MAX_CHOICES], 1):
                label = option.get("label") if isinstance(option, dict) else option
                desc = option.get("description") if isinstance(option, dict) else None
                card["choices"].append({"n": n, "label": text.line(label, 120),
                                        "description": text.line(desc, 200)})
    if kind == "question" and not card["question"]:
        card["question"] = _cut(next((h.get("message") for h in hooks
                                      if isinstance(h.get("message"), str)), ""), 600)
    card["answers"] = (["approve", "deny"] if kind == "permission"
                       else ["choice", "reply"] if card["choices"] else ["reply"])
    return card


def _iso(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    return value


def scope_card(request: dict[str, Any]) -> dict[str, Any]:
    task_id = request.get("task_id") or request.get("task")
    title, body = text.scope_request(str(task_id), request)
    return {"key": f"r:{request.get('id')}", "kind": "scope", "rid": request.get("id"),
            "session": text.line(request.get("session"), 64) or None,
            "task": text.line(task_id, 64), "since": _iso(request.get("created")),
            "title": title, "body": body, "glob": text.line(request.get("glob"), 300),
            "answers": ["approve_scope", "refuse_scope"], "choices": [], "question": ""}


def budget_card(name: str, pause: dict[str, Any], budgets: list[dict[str, Any]]) -> dict[str, Any]:
    limits = [b for b in budgets if b.get("id") in (pause.get("limits") or [])]
    first = limits[0] if limits else {}
    what = text.line(first.get("summary"), 200) if first else ""
    body = text.clean(pause.get("detail"), 600) + (f"\n{what}" if what else "")
    raise_to = suggested_raise(first) if first else None
    return {"key": f"b:{name}:{pause.get('since')}", "kind": "budget", "session": name,
            "task": text.line(pause.get("task"), 64) or None, "since": pause.get("since"),
            "title": f"{text.line(name, 64)} is paused at its budget", "body": body,
            "limit": text.line(first.get("id"), 200) or None, "raise_to": raise_to,
            "answers": ["raise"] if first else [], "choices": [], "question": ""}


def suggested_raise(limit: dict[str, Any]) -> dict[str, float] | None:
    """Twice each amount the limit sets (what the Raise button offers by default)."""
    out = {k: limit[k] * 2 for k in ("dollars", "tokens", "minutes")
           if isinstance(limit.get(k), (int, float)) and limit[k] > 0}
    if "tokens" in out:
        out["tokens"] = int(out["tokens"])
    return out or None


def cards(data: Any, hooks_of: Any) -> list[dict[str, Any]]:
    """Every open question, oldest first. ``hooks_of(name)`` gives a session's payloads."""
    out: list[dict[str, Any]] = []
    for session in data.sessions:
        card = session_card(session, hooks_of(session.get("name")))
        if card is not None:
            out.append(card)
    out.extend(scope_card(r) for r in data.scopes if r.get("state", "pending") == "pending")
    report = data.budgets or {}
    for name, pause in sorted((report.get("paused") or {}).items()):
        if isinstance(pause, dict) and not pause.get("ended"):
            out.append(budget_card(name, pause, report.get("budgets") or []))
    out.sort(key=lambda c: str(c.get("since") or ""))
    return out


# ---------------------------------------------------------------- answering (blocking)


@dataclass
class Outcome:
    ok: bool
    message: str


def still_open(client: HiveClient, card: dict[str, Any]) -> str | None:
    """None while the card's question is open; else why it is not (re-read from the server)."""
    kind = card.get("kind")
    if kind == "scope":
        pending = {r.get("id") for r in client.scope_requests(state="pending")}
        return None if card.get("rid") in pending else "this scope request was already decided"
    if kind == "budget":
        paused = (client.request("GET", "budgets").get("paused") or {}).get(card["session"])
        if not paused or paused.get("since") != card.get("since"):
            return f"{card['session']} is no longer paused at its budget"
        return None
    try:
        state = client.session(card["session"]).get("state") or {}
    except HiveAPIError as exc:
        if exc.status == 404:
            return f"{card['session']} is gone"
        raise
    if (state.get("name") != wire.WAITING or state.get("since") != card.get("since")
            or state.get("reason") != card.get("reason")):
        now = state.get("name", "?") + (f" ({state['reason']})" if state.get("reason") else "")
        return f"this question is no longer open ({card['session']} is {now} now); nothing was sent"
    return None


def raise_call(report: dict[str, Any], limit_id: str, amounts: dict[str, float],
               ) -> tuple[str, Any]:
    """The one client call that raises ``limit_id`` to ``amounts``: ("task", (id, budget)) or
    ("budgets", PUT body) with the scope's other limits kept as they are."""
    budgets = [b for b in report.get("budgets") or [] if isinstance(b, dict)]
    limit = next((b for b in budgets if b.get("id") == limit_id), None)
    if limit is None:
        raise ValueError(f"no limit {limit_id!r} in force")
    for key, value in amounts.items():
        if key not in ("dollars", "tokens", "minutes") or not isinstance(value, (int, float)) \
                or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{key} must be a positive number")

    def as_limit(b: dict[str, Any], new: dict[str, float] | None = None) -> dict[str, Any]:
        out = {k: b.get(k) for k in ("window", "dollars", "tokens", "minutes", "warn_at", "ceiling")
               if b.get(k) is not None}
        out.update(new or {})
        return out

    if limit.get("scope") == "task":
        return "task", (limit["key"], {k: v for k, v in as_limit(limit, amounts).items()
                                       if k in ("dollars", "tokens", "minutes")})
    same = [b for b in budgets if b.get("scope") == limit.get("scope") and b.get("key") == limit.get("key")]
    body = [as_limit(b, amounts if b.get("id") == limit_id else None) for b in same]
    if limit.get("scope") == "fleet":
        return "budgets", {"fleet": body}
    if limit.get("scope") == "profile":
        return "budgets", {"profile": {limit["key"]: body}}
    raise ValueError(f"a {limit.get('scope')} limit cannot be raised from here")


def answer(client: HiveClient, card: dict[str, Any], action: str, value: Any = None) -> Outcome:
    """Check the question is still open, then make the one client call for ``action``."""
    if action not in (card.get("answers") or []) and not (action == "choice" and card.get("choices")):
        return Outcome(False, f"{action!r} is not an answer to this card")
    try:
        gone = still_open(client, card)
        if gone:
            return Outcome(False, gone)
        name = str(card.get("session"))
        if action == "approve":
            client.approve(name)
            return Outcome(True, f"approved {card.get('tool') or 'the request'} for {name}")
        if action == "deny":
            client.deny(name)
            return Outcome(True, f"denied {card.get('tool') or 'the request'} for {name}")
        if action == "choice":
            numbers = {c["n"] for c in card.get("choices") or []}
            if not isinstance(value, int) or isinstance(value, bool) or value not in numbers:
                return Outcome(False, f"choice must be one of {sorted(numbers)}")
            client.keys(name, [str(value)])
            return Outcome(True, f"answered {value} to {name}")
        if action == "reply":
            if not isinstance(value, str) or not value.strip():
                return Outcome(False, "type a reply first")
            client.send(name, value)
            return Outcome(True, f"replied to {name}")
        if action in ("approve_scope", "refuse_scope"):
            fn = client.approve_scope if action == "approve_scope" else client.refuse_scope
            fn(int(card["rid"]))
            return Outcome(True, f"{'widened' if action == 'approve_scope' else 'refused'} "
                                 f"the scope of {card.get('task')}")
        if action == "raise":
            amounts = value if isinstance(value, dict) else card.get("raise_to") or {}
            report = client.request("GET", "budgets")
            try:
                how, args = raise_call(report, str(card.get("limit")), amounts)
            except ValueError as exc:
                return Outcome(False, str(exc))
            if how == "task":
                client.patch_task(args[0], budget=args[1])
            else:
                client.request("PUT", "budgets", args)
            return Outcome(True, f"raised {card.get('limit')}")
    except HiveAPIError as exc:
        return Outcome(False, f"{action} failed: {exc.detail}")
    return Outcome(False, f"unknown answer {action!r}")
