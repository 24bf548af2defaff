"""The fleet's rows: one plain dict per agent, built from LiveState's parts (no HTML here).

The view groups them by repository and sorts/filters in the page; these rows carry what a
person scans for: state and its source, how long, task (and pipeline stage when there is
one), the last tool and its summary, git, cost against budget, attempts, exit status.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from .. import wire
from ..notify import text


def _repo(session: dict[str, Any], task: dict[str, Any] | None) -> str:
    worktree = session.get("worktree") or {}
    repo = worktree.get("repo") or (task or {}).get("repo") or session.get("cwd") or ""
    return text.line(repo, 300)


def _last_tool(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """session -> {tool, summary} of its newest agent event that names a tool."""
    out: dict[str, dict[str, str]] = {}
    for event in events:
        name = event.get("session")
        if name and event.get("agent") != wire.HIVE_AGENT and event.get("tool"):
            out[name] = {"tool": text.line(event["tool"], 64),
                         "summary": text.line(event.get("summary"), 200)}
    return out


def _budget(name: str, budgets: dict[str, Any]) -> tuple[float | None, str]:
    """The tightest limit that covers ``name`` (by its key or the session it is measured by)."""
    best: dict[str, Any] | None = None
    for b in budgets.get("budgets") or []:
        if not isinstance(b, dict):
            continue
        if b.get("key") == name or b.get("by") == name or name in (b.get("by") or []):
            if best is None or (b.get("fraction") or 0) > (best.get("fraction") or 0):
                best = b
    if best is None:
        return None, ""
    return float(best.get("fraction") or 0), text.line(best.get("summary") or best.get("id"), 200)


def rows(data: Any, stopped: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Rows for live sessions, then for stopped ones (kept until dismissed)."""
    tasks = {t.get("id"): t for t in data.tasks if isinstance(t, dict)}
    last = _last_tool(data.events)
    conflicts: dict[str, int] = {}
    for c in (data.collisions or {}).get("conflicts") or []:
        if c.get("conflict"):
            for s in c.get("sessions") or []:
                conflicts[s] = conflicts.get(s, 0) + 1
    out = []
    for s in data.sessions:
        name = str(s.get("name"))
        state = s.get("state") or {}
        task = tasks.get(s.get("task")) if s.get("task") else None
        git = (data.git or {}).get(name) or {}
        changed = {f.get("path") for key in ("staged", "unstaged", "untracked")
                   for f in git.get(key, []) if isinstance(f, dict)}
        changed |= set(git.get("committed") or [])
        usage = (data.usage or {}).get(name)
        cost = usage.get("totalCost") if isinstance(usage, dict) else None
        fraction, budget_label = _budget(name, data.budgets or {})
        label = state.get("name", "?")
        if state.get("reason"):
            label += f" ({text.line(state['reason'], 40)}"
            label += f", {text.line(state['tool'], 40)})" if state.get("tool") else ")"
        out.append({
            "name": name, "agent": text.line(s.get("agent"), 64), "repo": _repo(s, task),
            "state": state.get("name", "?"), "state_label": label,
            "source": text.line(state.get("source"), 40), "since": state.get("since"),
            "exit_status": s.get("exit_status") if state.get("name") == wire.EXITED else None,
            "task": text.line((task or {}).get("title") or s.get("task"), 120) or "",
            "stage": text.line((task or {}).get("stage"), 80) or "",
            "last_tool": (last.get(name) or {}).get("tool", ""),
            "last_summary": (last.get(name) or {}).get("summary", ""),
            "branch": text.line(git.get("branch"), 120) or "", "ahead": int(git.get("ahead") or 0),
            "changed": len(changed), "conflicts": conflicts.get(name, 0),
            "cost": float(cost) if isinstance(cost, (int, float)) else 0.0,
            "cost_label": f"${cost:,.2f}" if isinstance(cost, (int, float)) else "",
            "budget_fraction": fraction, "budget_label": budget_label,
            "attempts": len((task or {}).get("attempts") or []), "stopped": False,
        })
    live = {r["name"] for r in out}
    for s in stopped:
        if s.get("name") in live:
            continue
        state = s.get("state") or {}
        status = s.get("exit_status", state.get("exit_status"))
        out.append({"name": s["name"], "agent": text.line(s.get("agent"), 64),
                    "repo": _repo(s, None), "state": "exited", "stopped": True,
                    "state_label": "stopped" + (f" (exit {status})" if status is not None else ""),
                    "source": text.line(state.get("source"), 40), "since": s.get("stopped_at"),
                    "exit_status": status, "task": "", "stage": "", "last_tool": "",
                    "last_summary": "", "branch": "", "ahead": 0, "changed": 0, "conflicts": 0,
                    "cost": 0.0, "cost_label": "", "budget_fraction": None, "budget_label": "",
                    "attempts": 0})
    return out


def short_repo(path: str) -> str:
    return os.path.basename(path.rstrip("/")) or path
