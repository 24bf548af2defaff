"""One agent in detail: live terminal, diff per file, event timeline, cost over time, attempts,
and a box to type into it plus its keys.

The terminal follows the pane (every :data:`FOLLOW_SECONDS`) only while it is on screen: the
page reports visibility (an IntersectionObserver) and the follow task stops asking otherwise.
Every fetch runs in a worker thread; the widgets are touched on the loop only.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import ipywidgets as W

from ..client import HiveAPIError
from . import render
from .views import DiffView, TerminalView, split_diff

FOLLOW_SECONDS = 0.5
TIMELINE_EVENTS = 60
KEYS = (("⏎ Enter", ["Enter"]), ("Esc", ["Escape"]), ("Tab", ["Tab"]), ("↑", ["Up"]),
        ("↓", ["Down"]), ("1", ["1"]), ("2", ["2"]), ("3", ["3"]), ("y", ["y"]), ("n", ["n"]),
        ("Ctrl-C", ["C-c"]))


def cost_svg(rows: list[dict[str, Any]], width: int = 360, height: int = 80) -> str:
    """Cumulative cost over time as a small inline SVG (numbers only: nothing to escape)."""
    points: list[tuple[float, float]] = []
    total = 0.0
    for row in sorted(rows, key=lambda r: str(r.get("time") or "")):
        cost = row.get("cost")
        try:
            t = datetime.fromisoformat(str(row.get("time")).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        total += float(cost) if isinstance(cost, (int, float)) else 0.0
        points.append((t, total))
    if len(points) < 2:
        return "<div class='hive-muted'>no cost recorded yet</div>" if not points else (
            f"<div>${points[0][1]:,.4f}</div>")
    t0, t1 = points[0][0], points[-1][0] or 1
    top = max(p[1] for p in points) or 1.0
    span = (t1 - t0) or 1.0
    path = " ".join(f"{(t - t0) / span * (width - 4) + 2:.1f},{height - 2 - v / top * (height - 14):.1f}"
                    for t, v in points)
    start = time.strftime("%H:%M", time.localtime(t0))
    end = time.strftime("%H:%M", time.localtime(t1))
    return (f"<svg class='hive-cost' width='{width}' height='{height + 14}' role='img'>"
            f"<polyline fill='none' stroke='#2563eb' stroke-width='2' points='{path}'/>"
            f"<text x='2' y='10' font-size='10'>${top:,.4f}</text>"
            f"<text x='2' y='{height + 12}' font-size='10'>{start}</text>"
            f"<text x='{width - 30}' y='{height + 12}' font-size='10'>{end}</text></svg>")


def attempts_html(task: dict[str, Any] | None) -> str:
    if not task:
        return "<div class='hive-muted'>not a task's session</div>"
    rows = []
    for a in task.get("attempts") or []:
        cost = a.get("cost")
        rows.append(f"<tr><td>{int(a.get('n') or 0)}</td><td>{render.esc(a.get('session'))}</td>"
                    f"<td>{render.esc(a.get('outcome') or 'running')}</td>"
                    f"<td>{render.esc(a.get('reason'))}</td>"
                    f"<td>{render.esc(f'${cost:,.4f}' if isinstance(cost, (int, float)) else '')}</td></tr>")
    head = "<tr><th>#</th><th>Session</th><th>Outcome</th><th>Reason</th><th>Cost</th></tr>"
    why = task.get("why")
    return (f"<div>Task <b>{render.esc(task.get('id'))}</b>: {render.esc(task.get('title'))} "
            f"({render.esc((task.get('state') or {}).get('name'))})"
            + (f" <span class='hive-muted'>{render.esc(why)}</span>" if why else "") + "</div>"
            + f"<table class='hive-attempts'>{head}{''.join(rows)}</table>")


class AgentDetail(W.VBox):
    """The detail of the agent ``show(name)`` was called with."""

    def __init__(self, live: Any, **kwargs: Any) -> None:
        self.live = live
        self.client = live.client
        self.name = ""
        self.header = W.HTML()
        self.terminal = TerminalView()
        self.diff = DiffView()
        self.timeline = W.HTML()
        self.cost = W.HTML()
        self.attempts = W.HTML()
        self.message = W.HTML()
        self.text = W.Text(placeholder="type to the agent (Send adds Enter)",
                           layout=W.Layout(width="50%"))
        send = W.Button(description="Send to agent", icon="paper-plane")
        send.on_click(lambda _: self.send_text())
        keys = []
        for label, seq in KEYS:
            b = W.Button(description=label, layout=W.Layout(width="auto"))
            b.on_click(lambda _, k=seq: self.press(k))
            keys.append(b)
        close = W.Button(description="Close", icon="times", layout=W.Layout(width="auto"))
        close.on_click(lambda _: self.close_detail())
        self.follows = 0  # screens fetched by the follow task (tests read it)
        self._follow: asyncio.Task[Any] | None = None
        self._diff_git: Any = None
        term_box = W.VBox([self.terminal, W.HBox([self.text, send]), W.HBox(keys, layout=W.Layout(flex_flow="row wrap"))])
        self.tabs = W.Tab(children=[term_box, self.diff, self.timeline,
                                    W.VBox([self.cost, self.attempts])])
        for i, title in enumerate(("Terminal", "Diff", "Timeline", "Cost & attempts")):
            self.tabs.set_title(i, title)
        self.tabs.observe(self._tab_changed, names="selected_index")
        super().__init__([W.HBox([self.header, close], layout=W.Layout(align_items="center")),
                          self.message, self.tabs], **kwargs)
        self.layout.display = "none"
        self.terminal.observe(lambda _: self._kick(), names="visible")
        live.on_change(self.update)

    # -- opening ------------------------------------------------------------------------
    def show(self, name: str) -> None:
        """Show ``name``: header now, everything else fetched off the loop."""
        self.name = name
        self.terminal.name = name
        self.terminal.text = ""
        self.diff.files = []
        self.message.value = ""
        self.layout.display = "flex"
        self._draw_header()
        self._schedule(self._load_all())
        self._kick()

    def close_detail(self) -> None:
        self.name = ""
        self.layout.display = "none"
        if self._follow:
            self._follow.cancel()

    def _schedule(self, coro: Any) -> None:
        try:
            asyncio.get_event_loop().create_task(coro)
        except RuntimeError:  # no loop (a script): run it to the end here
            asyncio.run(coro)

    def update(self, parts: set[str]) -> None:
        if not self.name:
            return
        if "sessions" in parts or "usage" in parts:
            self._draw_header()
        if "events" in parts:
            self._draw_timeline()
        if "git" in parts:
            git = (self.live.data.git or {}).get(self.name)
            if git != self._diff_git:
                self._schedule(self._load_diff())
        if "tasks" in parts:
            self.attempts.value = attempts_html(self._task())

    def _task(self) -> dict[str, Any] | None:
        session = self.live.data.session(self.name) or {}
        tid = session.get("task")
        return next((t for t in self.live.data.tasks if t.get("id") == tid), None) if tid else None

    def _draw_header(self) -> None:
        session = self.live.data.session(self.name)
        if session is None:
            self.header.value = f"<h3 style='margin:4px 0'>{render.esc(self.name)} <small>(gone)</small></h3>"
            return
        self.header.value = (f"<h3 style='margin:4px 0'>{render.esc(self.name)} "
                             f"{render.badge(session.get('state') or {})}</h3>")

    def _draw_timeline(self) -> None:
        mine = [e for e in self.live.data.events if e.get("session") == self.name]
        self.timeline.value = render.events_table(reversed(mine[-TIMELINE_EVENTS:]))

    async def _load_all(self) -> None:
        name = self.name
        self._draw_timeline()
        self.attempts.value = attempts_html(self._task())
        try:
            events = await asyncio.to_thread(self.client.events, session=name,
                                             after=max(0, self.live.last_id - 5000), limit=5000)
            rows = await asyncio.to_thread(self.client.usage_rows, session=name)
        except HiveAPIError as exc:
            self.message.value = f"<span style='color:#dc2626'>{render.esc(exc.detail)}</span>"
            return
        if name != self.name:
            return
        self.timeline.value = render.events_table(reversed(events[-TIMELINE_EVENTS:]))
        self.cost.value = cost_svg(rows)
        await self._load_diff()

    async def _load_diff(self) -> None:
        name = self.name
        self._diff_git = (self.live.data.git or {}).get(name)
        try:
            result = await asyncio.to_thread(self.client.diff, name)
        except HiveAPIError as exc:
            if name == self.name:
                self.diff.files, self.diff.empty = [], exc.detail
            return
        if name != self.name:
            return
        text = result.get("text") or ""
        self.diff.files = split_diff(text)
        self.diff.note = "(cut: the diff is larger than shown)" if result.get("truncated") else ""
        if not text:
            self.diff.empty = "No changes against the base." if result.get("base") else \
                "No worktree: nothing to diff."

    # -- the terminal ------------------------------------------------------------------------
    def _tab_changed(self, _change: Any) -> None:
        self._kick()

    def _kick(self) -> None:
        """Start following when the terminal is shown; the task ends itself otherwise."""
        if not self.name or not self.terminal.visible or self.tabs.selected_index != 0:
            return
        if self._follow and not self._follow.done():
            return
        try:
            self._follow = asyncio.get_event_loop().create_task(self._follow_screen())
        except RuntimeError:
            pass

    async def _follow_screen(self) -> None:
        while self.name and self.terminal.visible and self.tabs.selected_index == 0:
            name = self.name
            try:
                text = await asyncio.to_thread(self.client.screen, name, None, True)
            except HiveAPIError as exc:
                text = f"(no screen: {exc.detail})"
            self.follows += 1
            if name == self.name and text != self.terminal.text:
                self.terminal.text = text
                self.terminal.version += 1
            await asyncio.sleep(FOLLOW_SECONDS)

    # -- typing ------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        colour = "#dc2626" if error else "#059669"
        self.message.value = f"<span style='color:{colour}'>{render.esc(text)}</span>"

    def send_text(self) -> None:
        if self.name and self.text.value:
            value, self.text.value = self.text.value, ""
            self._schedule(self._call(f"sent to {self.name}", self.client.send, self.name, value))

    def press(self, keys: list[str]) -> None:
        if self.name:
            self._schedule(self._call(f"{' '.join(keys)} to {self.name}", self.client.keys,
                                      self.name, keys))

    async def _call(self, what: str, fn: Any, *args: Any) -> None:
        try:
            await asyncio.to_thread(fn, *args)
        except HiveAPIError as exc:
            self._say(f"{what} failed: {exc.detail}", error=True)
            return
        self._say(what)
