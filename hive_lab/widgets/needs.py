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
# answer -> (HiveClient method, what the status line says was done)
PIPE_CALLS = {"retry_pipeline": ("retry_pipeline", "retried"),
              "cancel_pipeline": ("cancel_pipeline", "canceled"),
              "approve_merge": ("approve_merge", "approved"),
              "reject_merge": ("reject_merge", "rejected"),
              "retry_merge": ("retry_merge", "put back in line")}


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


def _buttons(*spec: tuple[str, str, str]) -> list[dict[str, str]]:
    """(action, label, style) -> what the page draws as buttons; ``a``/``d`` go to the
    first ok/no button."""
    return [{"action": a, "label": label, "style": style} for a, label, style in spec]


def pipeline_card(p: dict[str, Any]) -> dict[str, Any] | None:
    """A review pipeline that stopped for a person: Retry (when it would go on) or Cancel."""
    state = p.get("state") or {}
    if state.get("name") != "needs_you":
        return None
    pid = text.line(p.get("id"), 64)
    answers = (["retry_pipeline"] if p.get("can_retry") else []) + ["cancel_pipeline"]
    return {"key": f"p:{pid}:{state.get('since')}", "kind": "pipeline", "pipeline": pid,
            "since": _iso(state.get("since")), "state_since": state.get("since"),
            "title": f"pipeline {pid} needs you ({text.line(p.get('stage_kind'), 32)} stage)",
            "body": text.clean(state.get("reason"), 600), "answers": answers,
            "buttons": _buttons(*([("retry_pipeline", "Retry", "hive-ok")]
                                  if p.get("can_retry") else []),
                                ("cancel_pipeline", "Cancel pipeline", "hive-no")),
            "choices": [], "question": ""}


def merge_card(m: dict[str, Any]) -> dict[str, Any] | None:
    """A merge item waiting for a person's yes, or stopped (conflict, failed check)."""
    state = m.get("state")
    if state not in ("awaiting_approval", "needs_you"):
        return None
    mid = int(m.get("id") or 0)
    branch, base = text.line(m.get("branch"), 120), text.line(m.get("base"), 120)
    conflicts = [text.line(c, 300) for c in (m.get("conflicts") or [])[:20]]
    body = text.clean(m.get("reason"), 600) + (
        "\nconflicts: " + ", ".join(conflicts) if conflicts else "")
    approve = state == "awaiting_approval"
    return {"key": f"m:{mid}:{state}:{m.get('checked_head') or m.get('head')}", "kind": "merge",
            "merge": mid, "merge_state": state, "since": _iso(m.get("updated")),
            "title": (f"merge {branch} into {base}?" if approve
                      else f"merge #{mid} of {branch} needs you"),
            "body": body, "answers": ["approve_merge", "reject_merge"] if approve
            else ["retry_merge", "reject_merge"],
            "buttons": _buttons(("approve_merge", "Approve merge", "hive-ok") if approve
                                else ("retry_merge", "Retry merge", "hive-ok"),
                                ("reject_merge", "Reject", "hive-no")),
            "choices": [], "question": ""}


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
    for p in getattr(data, "pipelines", None) or []:
        card = pipeline_card(p)
        if card is not None:
            out.append(card)
    for m in getattr(data, "merges", None) or []:
        card = merge_card(m)
        if card is not None:
            out.append(card)
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
    if kind == "pipeline":
        state = client.pipeline(str(card["pipeline"])).get("state") or {}
        if state.get("name") != "needs_you" or state.get("since") != card.get("state_since"):
            return f"pipeline {card['pipeline']} is {state.get('name')} now; nothing was sent"
        return None
    if kind == "merge":
        now = client.merge(int(card["merge"])).get("state")
        if now != card.get("merge_state"):
            return f"merge #{card['merge']} is {now} now; nothing was sent"
        return None
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
        if action in PIPE_CALLS:
            method, done = PIPE_CALLS[action]
            pipe = action.endswith("pipeline")
            target = str(card.get("pipeline")) if pipe else int(card["merge"])
            getattr(client, method)(target)
            return Outcome(True, f"{done} " + (f"pipeline {target}" if pipe else f"merge #{target}"))
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
