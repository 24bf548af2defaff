"""Pipelines and the merge queue in the control room.

One row per review pipeline: its stages as a row of chips (done / current / pending / failed),
the review round ("round 2/3"), its state and why, its cost, the findings of the latest review,
and Retry / Cancel when they apply. Below it the merge queue in queue order: state, reason,
why it is in that place, conflicting files, and Approve / Reject / Retry.

Plain ipywidgets, as :mod:`~hive_lab.widgets.board`: every button is one client call (run off
the loop by :func:`~hive_lab.widgets.actions.run_action`); rows are kept per pipeline / item id
and only a row whose text changed is re-sent. Everything from an agent or a branch (titles,
reasons, findings, file names) goes through :func:`render.esc`. The buttons do not decide what
is allowed: an approve on an item that is no longer approvable goes to the server, which
refuses it, and its error is shown.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import ipywidgets as W

from ..client import HiveAPIError, HiveClient
from . import render
from .actions import run_action
from .board import CARD_STYLE, Live

PARTS = frozenset({"pipelines", "merges"})
CHIP_COLOURS = {"done": "#059669", "current": "#2563eb", "pending": "#9ca3af",
                "failed": "#dc2626"}
PIPE_COLOURS = {"running": "#2563eb", "needs_you": "#d97706", "ready": "#059669",
                "canceled": "#4b5563"}
MERGE_COLOURS = {"awaiting_approval": "#d97706", "needs_you": "#dc2626", "merged": "#059669",
                 "rejected": "#4b5563", "canceled": "#4b5563", "superseded": "#4b5563"}
# as hive_lab.orchestrate.mergeplan (the kernel side may not import it; a test checks they agree)
APPROVABLE = ("queued", "waiting", "updating", "checking", "awaiting_approval")
TERMINAL = ("merged", "rejected", "canceled", "superseded")
ENDED_KEPT = 20  # finished merge items shown below the ones in line
FINDINGS_SHOWN = 20


# -- pure drawing -------------------------------------------------------------------------------
def chip_states(p: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, done|current|pending|failed) per stage of the pipeline's spec, in order."""
    stages = [str(s) for s in p.get("stages") or []]
    state = (p.get("state") or {}).get("name")
    stage = p.get("stage")
    current: int = stage if isinstance(stage, int) else 0
    history = p.get("history") or []
    last_here = next((h for h in reversed(history) if h.get("idx") == current), None)
    out = []
    for idx, kind in enumerate(stages):
        if state == "ready" or idx < current:
            out.append((kind, "done"))
        elif idx > current:
            out.append((kind, "pending"))
        elif state == "running":
            out.append((kind, "current"))
        elif last_here is not None and last_here.get("state") in ("failed", "needs_you",
                                                                  "canceled"):
            out.append((kind, "failed"))
        elif state == "needs_you":
            out.append((kind, "failed"))
        else:
            out.append((kind, "current"))
    return out


def round_text(p: dict[str, Any]) -> str:
    most = p.get("max_review_rounds_now", p.get("max_review_rounds"))
    return f"round {p.get('round') or 0}/{most if most is not None else '?'}"


def latest_review(p: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The last finished review visit and its findings (none yet: (None, [])); while a
    reviewer is at work the previous round's findings stay in view."""
    review = next((h for h in reversed(p.get("history") or []) if h.get("kind") == "review"
                   and h.get("state") != "running"), None)
    if review is None:
        return None, []
    return review, [f for f in p.get("findings") or [] if f.get("stage_row") == review.get("id")]


def money(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"${value:,.2f}"
    return "cost unknown"


def pipeline_html(p: dict[str, Any]) -> str:
    state = p.get("state") or {}
    name = str(state.get("name") or "?")
    colour = PIPE_COLOURS.get(name, "#6b7280")
    chips = []
    for kind, status in chip_states(p):
        label = render.esc(kind) + (f" · {render.esc(round_text(p))}"
                                    if kind == "review" and status in ("current", "failed") else "")
        c = CHIP_COLOURS[status]
        fill = c if status in ("done", "current") else "transparent"
        text = "#fff" if status in ("done", "current") else c
        chips.append(f"<span class='hive-stage' data-kind='{render.esc(kind)}' "
                     f"data-state='{status}' style='display:inline-block;padding:1px 8px;"
                     f"margin:0 4px 0 0;border:1px solid {c};border-radius:10px;"
                     f"background:{fill};color:{text}'>{label}</span>")
    head = (f"<b>{render.esc(p.get('title') or p.get('id'))}</b> "
            f"<span class='hive-pipe-state' style='color:{colour};font-weight:600'>"
            f"{render.esc(name)}</span> <span class='hive-muted'>{render.esc(p.get('id'))} · "
            f"{render.esc(round_text(p))} · <span class='hive-pipe-cost'>"
            f"{render.esc(money(p.get('cost')))}</span></span>")
    lines = [head, f"<div class='hive-stages' style='margin:3px 0'>{''.join(chips)}</div>"]
    if state.get("reason"):  # amber when a person is wanted, else a quiet line
        style = "color:#92400e" if name == "needs_you" else "color:#6b7280"
        lines.append(f"<div class='hive-pipe-why' style='{style}'>why: "
                     f"{render.esc(state['reason'])}</div>")
    review, found = latest_review(p)
    if review is not None:
        verdict = (review.get("verdict") or {}).get("verdict") or review.get("state")
        items = "".join(
            f"<li class='hive-finding' data-severity='{render.esc(f.get('severity'))}'>"
            f"<code>{render.esc(f.get('file'))}"
            f"{':' + render.esc(f.get('line')) if f.get('line') is not None else ''}</code> "
            f"<b>{render.esc(f.get('severity'))}</b> {render.esc(f.get('text'))}</li>"
            for f in found[:FINDINGS_SHOWN])
        more = (f"<li class='hive-muted'>and {len(found) - FINDINGS_SHOWN} more</li>"
                if len(found) > FINDINGS_SHOWN else "")
        lines.append(f"<div class='hive-findings'><span class='hive-muted'>latest review "
                     f"(round {render.esc(review.get('round'))}): {render.esc(verdict)}, "
                     f"{len(found)} finding(s)</span>"
                     + (f"<ul style='margin:2px 0 0 16px;padding:0'>{items}{more}</ul>"
                        if items else "") + "</div>")
    return (f"<div class='hive-pipe' data-pipeline='{render.esc(p.get('id'))}' "
            f"data-state='{render.esc(name)}' style=\"{CARD_STYLE}\">" + "".join(lines)
            + "</div>")


def queue_order(merges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items in line by position (1 = next), then the finished ones, newest first."""
    line = [m for m in merges if m.get("state") not in TERMINAL]
    ended = [m for m in merges if m.get("state") in TERMINAL]
    line.sort(key=lambda m: (m.get("position") is None, m.get("position") or 0,
                             float(m.get("created") or 0), int(m.get("id") or 0)))
    ended.sort(key=lambda m: -float(m.get("updated") or 0))
    return line + ended[:ENDED_KEPT]


def merge_html(m: dict[str, Any]) -> str:
    state = str(m.get("state") or "?")
    colour = MERGE_COLOURS.get(state, "#2563eb")
    where = f"place {m.get('position')} in line · " if m.get("position") else ""
    lines = [f"<b>#{render.esc(m.get('id'))} {render.esc(m.get('branch'))}</b> → "
             f"{render.esc(m.get('base'))} <span class='hive-merge-state' style='color:{colour};"
             f"font-weight:600'>{render.esc(state)}</span> <span class='hive-muted'>"
             f"{render.esc(where)}from {render.esc(m.get('source'))}</span>"]
    if m.get("reason"):
        lines.append(f"<div class='hive-merge-why'>{render.esc(m['reason'])}</div>")
    if m.get("order_reason") and state not in TERMINAL:
        lines.append(f"<div class='hive-merge-order hive-muted'>order: "
                     f"{render.esc(m['order_reason'])}</div>")
    conflicts = [str(c) for c in m.get("conflicts") or []]
    if conflicts:
        lines.append("<div class='hive-merge-conflicts' style='color:#dc2626'>conflicts: "
                     + ", ".join(f"<code>{render.esc(c)}</code>" for c in conflicts[:20])
                     + (f" and {len(conflicts) - 20} more" if len(conflicts) > 20 else "")
                     + "</div>")
    return (f"<div class='hive-merge' data-merge='{render.esc(m.get('id'))}' "
            f"data-state='{render.esc(state)}' style=\"{CARD_STYLE}\">" + "".join(lines)
            + "</div>")


# -- widgets ---------------------------------------------------------------------------------------
def _button(text: str, style: str, tip: str, fn: Callable[[], None]) -> W.Button:
    b = W.Button(description=text, button_style=style, tooltip=tip,
                 layout=W.Layout(width="auto"))
    b.on_click(lambda _: fn())
    return b


class _Row:
    """One pipeline's or merge item's widgets, kept while it exists; redrawn when it changed."""

    def __init__(self, kind: str, buttons: dict[str, W.Button]) -> None:
        self.html = W.HTML()
        self.buttons = buttons
        self.box = W.VBox([self.html, W.HBox(list(buttons.values()),
                                               layout=W.Layout(flex_flow="row wrap"))],
                          layout=W.Layout(margin="0 0 6px 0"))
        self.box.add_class(f"hive-{kind}-row")
        self.draws = 0

    def show(self, html: str, visible: set[str]) -> None:
        if html != self.html.value:
            self.html.value = html
            self.draws += 1
        for name, button in self.buttons.items():
            display = "" if name in visible else "none"
            if button.layout.display != display:
                button.layout.display = display


class PipelineView(W.VBox):
    """Pipelines (a row each) and the merge queue, live from ``live.data``."""

    def __init__(self, live: Live, **kwargs: Any) -> None:
        self.live = live
        self.client: HiveClient = live.client
        self.pipe_rows: dict[str, _Row] = {}
        self.merge_rows: dict[int, _Row] = {}
        self.pipes_box = W.VBox()
        self.merges_box = W.VBox()
        self.pipes_empty = W.HTML()
        self.merges_empty = W.HTML()
        self.message = W.HTML()
        self.message.add_class("hive-pipes-message")
        self.redraws = 0
        self._last: tuple[Any, Any] | None = None
        super().__init__([W.HTML(render.STYLE + "<h4 style='margin:6px 0'>Pipelines</h4>"),
                          self.pipes_empty, self.pipes_box,
                          W.HTML("<h4 style='margin:10px 0 2px'>Merge queue</h4>"),
                          self.merges_empty, self.merges_box, self.message], **kwargs)
        self.add_class("hive-pipeline-view")
        self.update(set(PARTS))
        live.on_change(self.update)

    def update(self, parts: set[str]) -> None:
        """Redraw when pipelines or merges changed; rows whose text is the same are not sent."""
        if not parts & PARTS:
            return
        pipes = list(getattr(self.live.data, "pipelines", None) or [])
        merges = list(getattr(self.live.data, "merges", None) or [])
        if (pipes, merges) == self._last:
            return
        self._last = (pipes, merges)
        self.redraws += 1
        self._draw_pipes(pipes)
        self._draw_merges(merges)

    def _draw_pipes(self, pipes: list[dict[str, Any]]) -> None:
        rows = []
        for p in pipes:
            pid = str(p.get("id"))
            row = self.pipe_rows.get(pid)
            if row is None:
                row = self.pipe_rows[pid] = _Row("pipe", {
                    "retry": _button("Retry", "info", f"retry pipeline {pid}",
                                     partial(self.retry, pid)),
                    "cancel": _button("Cancel", "warning", f"cancel pipeline {pid}",
                                      partial(self.cancel, pid))})
            state = (p.get("state") or {}).get("name")
            visible = ({"retry"} if p.get("can_retry") else set()) | (
                {"cancel"} if state in ("running", "needs_you") else set())
            row.show(pipeline_html(p), visible)
            rows.append(row.box)
        for gone in set(self.pipe_rows) - {str(p.get("id")) for p in pipes}:
            del self.pipe_rows[gone]
        if tuple(self.pipes_box.children) != tuple(rows):
            self.pipes_box.children = rows
        self.pipes_empty.value = ("" if rows else "<div class='hive-muted'>no pipelines yet: "
                                  "<code>hive.add_pipeline(...)</code> starts one</div>")

    def _draw_merges(self, merges: list[dict[str, Any]]) -> None:
        rows = []
        shown = queue_order(merges)
        for m in shown:
            mid = int(m.get("id") or 0)
            row = self.merge_rows.get(mid)
            if row is None:
                row = self.merge_rows[mid] = _Row("merge", {
                    "approve": _button("Approve", "success", f"merge #{mid} into its base",
                                       partial(self.approve, mid)),
                    "reject": _button("Reject", "danger", f"do not merge #{mid}",
                                      partial(self.reject, mid)),
                    "retry": _button("Retry", "info", f"put #{mid} back in line",
                                     partial(self.retry_merge, mid))})
            state = m.get("state")
            visible = ({"approve"} if state in APPROVABLE and not m.get("approved") else set()) \
                | ({"reject"} if state not in TERMINAL else set()) \
                | ({"retry"} if state == "needs_you" else set())
            row.show(merge_html(m), visible)
            rows.append(row.box)
        for gone in set(self.merge_rows) - {int(m.get("id") or 0) for m in shown}:
            del self.merge_rows[gone]
        if tuple(self.merges_box.children) != tuple(rows):
            self.merges_box.children = rows
        self.merges_empty.value = ("" if rows else "<div class='hive-muted'>nothing offered "
                                   "for merging</div>")

    def say(self, text: str, error: bool = False) -> None:
        colour = "#dc2626" if error else "#059669"
        self.message.value = (f"<div class='hive-pipes-said' data-error='{int(error)}' "
                              f"style='color:{colour}'>{render.esc(text)}</div>")

    # -- actions: each one client call ------------------------------------------------------------
    def _act(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        def done(result: Any, error: HiveAPIError | None) -> None:
            if error is not None:
                self.say(f"{what} failed: {error.detail}", error=True)
            else:
                self.say(f"{what}: done")
            mark = getattr(self.live, "mark_stale", None)
            if mark is not None:
                mark("pipelines", "merges")

        run_action(lambda: fn(*args), done)

    def retry(self, pid: str) -> None:
        self._act(f"retry pipeline {pid}", self.client.retry_pipeline, pid)

    def cancel(self, pid: str) -> None:
        self._act(f"cancel pipeline {pid}", self.client.cancel_pipeline, pid)

    def approve(self, mid: int) -> None:
        self._act(f"approve merge #{mid}", self.client.approve_merge, mid)

    def reject(self, mid: int) -> None:
        self._act(f"reject merge #{mid}", self.client.reject_merge, mid)

    def retry_merge(self, mid: int) -> None:
        self._act(f"retry merge #{mid}", self.client.retry_merge, mid)
