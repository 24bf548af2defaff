"""HTML for the panels: pure functions of API data, every agent string escaped.

Kept apart from ipywidgets so it can be tested without a kernel; whatever an agent writes
(a prompt, a file name, a tool input) reaches the page only through :func:`esc`.
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any, Iterable

STATE_COLOURS = {
    "starting": "#6b7280", "working": "#2563eb", "waiting": "#d97706", "idle": "#059669",
    "exited": "#4b5563", "error": "#dc2626",
}
STYLE = """
<style>
.hive-table {border-collapse: collapse; font: 13px/1.4 var(--jp-ui-font-family, sans-serif); width: 100%}
.hive-table th {text-align: left; color: var(--jp-ui-font-color2, #555); font-weight: 600;
  border-bottom: 1px solid var(--jp-border-color1, #ccc); padding: 4px 8px}
.hive-table td {padding: 4px 8px; border-bottom: 1px solid var(--jp-border-color2, #eee); vertical-align: top}
.hive-badge {display: inline-block; padding: 1px 8px; border-radius: 10px; color: white; font-size: 12px}
.hive-muted {color: var(--jp-ui-font-color2, #777); font-size: 12px}
.hive-empty {color: var(--jp-ui-font-color2, #777); padding: 4px 8px}
.hive-list {margin: 2px 0; padding-left: 22px}
.hive-screen {font: 12px/1.25 var(--jp-code-font-family, monospace); white-space: pre;
  background: #111; color: #ddd; padding: 8px; border-radius: 4px; overflow: auto; max-height: 420px}
</style>
"""


def esc(value: Any) -> str:
    """Escape anything for HTML text and attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def state_label(state: dict[str, Any]) -> str:
    parts = [state.get("reason"), state.get("tool")]
    if state.get("exit_status") is not None:
        parts.append(f"status {state['exit_status']}")
    detail = ", ".join(str(p) for p in parts if p)
    return state.get("name", "?") + (f" ({detail})" if detail else "")


# An exit with a non-zero status is a failure, not a quiet end: it gets the error colour.
FAILED_EXIT_COLOUR = STATE_COLOURS["error"]


def state_colour(state: dict[str, Any]) -> str:
    """The badge colour; ``exited`` is grey for status 0 (or none) and red otherwise."""
    name = state.get("name", "")
    status = state.get("exit_status")
    if name == "exited" and isinstance(status, int) and status != 0:
        return FAILED_EXIT_COLOUR
    return STATE_COLOURS.get(name, "#6b7280")


def badge(state: dict[str, Any]) -> str:
    colour = state_colour(state)
    return f'<span class="hive-badge" style="background:{colour}">{esc(state_label(state))}</span>'


def ago(iso_time: str | None, now: datetime | None = None) -> str:
    if not iso_time:
        return ""
    try:
        then = datetime.fromisoformat(iso_time)
    except ValueError:
        return esc(iso_time)
    seconds = int(((now or datetime.now(timezone.utc)) - then).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def git_cell(state: dict[str, Any] | None) -> str:
    """Branch, commits ahead, files changed, and whether it still merges cleanly."""
    if not state:
        return "<span class='hive-muted'>no worktree</span>"
    changed = {f["path"] for key in ("staged", "unstaged", "untracked") for f in state.get(key, [])}
    changed |= set(state.get("committed", []))
    parts = [f"<b>{esc(state.get('branch') or 'detached')}</b>"]
    if state.get("ahead"):
        parts.append(f"+{int(state['ahead'])} commit{'s' * (state['ahead'] != 1)}")
    if changed:
        parts.append(f"{len(changed)} file{'s' * (len(changed) != 1)}")
    if state.get("merges_cleanly") is False:
        parts.append("<span style='color:#dc2626'>conflicts with base</span>")
    return " · ".join(parts)


def cost_cell(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "<span class='hive-muted'>–</span>"
    cost = usage.get("totalCost")
    tokens = sum(int(usage.get(k) or 0) for k in ("inputTokens", "outputTokens",
                                                   "cacheCreationTokens", "cacheReadTokens"))
    money = f"${cost:,.4f}" if isinstance(cost, (int, float)) else "unknown model"
    return f"{esc(money)} <span class='hive-muted'>{tokens:,} tok</span>"


def sessions_table(sessions: Iterable[dict[str, Any]], now: datetime | None = None,
                   git: dict[str, Any] | None = None, usage: dict[str, Any] | None = None) -> str:
    """The session list: name, agent, state badge (with its source), since, changes, cost."""
    git, usage = git or {}, usage or {}
    rows = []
    for s in sessions:
        state = s.get("state") or {}
        rows.append(
            "<tr>"
            f"<td><b>{esc(s.get('name'))}</b></td>"
            f"<td>{esc(s.get('agent'))}</td>"
            f"<td>{badge(state)} <span class='hive-muted'>via {esc(state.get('source'))}</span></td>"
            f"<td class='hive-muted'>{esc(ago(state.get('since'), now))}</td>"
            f"<td>{git_cell(git.get(str(s.get('name'))))}</td>"
            f"<td>{cost_cell(usage.get(str(s.get('name'))))}</td>"
            "</tr>")
    if not rows:
        return STYLE + '<div class="hive-empty">No sessions yet: start one below.</div>'
    head = ("<tr><th>Session</th><th>Agent</th><th>State</th><th>Since</th>"
            "<th>Changes</th><th>Cost</th></tr>")
    return STYLE + f'<table class="hive-table">{head}{"".join(rows)}</table>'


def conflicts_html(collisions: dict[str, Any]) -> str:
    """Files two agents are both changing, and predicted merge conflicts."""
    conflicts = collisions.get("conflicts", [])
    items = [f"<li><b>conflict</b> between {esc(' and '.join(c['sessions']))} on "
             f"{esc(', '.join(c['paths']))}</li>" for c in conflicts]
    covered = {(p, frozenset(c["sessions"])) for c in conflicts for p in c["paths"]}
    items += [f"<li>{esc(o['path'])} changed by {esc(', '.join(o['sessions']))}</li>"
              for o in collisions.get("overlaps", [])
              if (o["path"], frozenset(o["sessions"])) not in covered]  # said once, above
    if not items:
        return STYLE + '<div class="hive-empty">No two agents are touching the same files.</div>'
    return STYLE + f'<ul class="hive-list">{"".join(items)}</ul>'


def waiting_list(sessions: Iterable[dict[str, Any]]) -> str:
    """Who is waiting for you, most urgent first."""
    waiting = [s for s in sessions if (s.get("state") or {}).get("name") == "waiting"]
    if not waiting:
        return STYLE + '<div class="hive-empty">Nobody is waiting for you.</div>'
    items = "".join(f"<li><b>{esc(s['name'])}</b>: {esc(state_label(s['state']))}</li>"
                    for s in waiting)
    return STYLE + f'<ul class="hive-list">{items}</ul>'


def screen_html(text: str, name: str | None = None) -> str:
    """A session's screen, headed by the session it belongs to."""
    head = f'<div class="hive-muted">screen of <b>{esc(name)}</b></div>' if name else ""
    return STYLE + head + f'<div class="hive-screen">{esc(text)}</div>'


def screen_error_html(name: str, text: str) -> str:
    """What the screen box shows when a screen could not be read: never an older screen."""
    return (STYLE + f'<div class="hive-empty" style="color:#dc2626">no screen for '
            f'<b>{esc(name)}</b>: {esc(text)}</div>')


def stopped_html(stopped: Iterable[dict[str, Any]]) -> str:
    """Sessions that ended while the panel watched: name, what it was doing, when it went."""
    items = "".join(
        f"<li><b>{esc(s.get('name'))}</b> ({esc(s.get('agent'))}) stopped at "
        f"{esc(s.get('at'))}, last {badge(s.get('state') or {})}</li>" for s in stopped)
    if not items:
        return ""
    return STYLE + f'<div class="hive-muted">Stopped</div><ul class="hive-list hive-stopped">{items}</ul>'


def events_table(events: Iterable[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td class='hive-muted'>{esc(e.get('id'))}</td><td>{esc(e.get('session'))}</td>"
        f"<td>{esc(e.get('event'))}</td><td>{esc(e.get('summary'))}</td></tr>"
        for e in events)
    if not rows:
        return STYLE + '<div class="hive-empty">No events yet.</div>'
    return (STYLE + '<table class="hive-table"><tr><th>#</th><th>Session</th><th>Event</th>'
            f"<th>Summary</th></tr>{rows}</table>")
