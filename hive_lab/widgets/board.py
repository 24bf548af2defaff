"""The task board: a column per task state, a card per task, and the create-task form.

Plain ipywidgets, not an anywidget, on purpose: every action on a card (cancel, retry,
approve or refuse a scope request) is one Python client call, and a ``Button`` with a Python
callback is exactly that, with no message protocol of our own to keep safe. Redraws stay cheap
because cards are kept per task id and only a card whose text changed is re-sent; a card
moves between columns by re-parenting the same widget. All agent text goes through
:func:`render.esc`.

Data comes from the control room's :class:`~hive_lab.widgets.live.LiveState` (``live.data.tasks``
and ``live.data.scopes``); :meth:`TaskBoard.update` redraws only when those parts changed.
"""
from __future__ import annotations

from typing import Any, Protocol

import ipywidgets as W

from ..client import HiveAPIError, HiveClient
from ..wire import TASK_STATES
from . import render, taskform
from .actions import run_action

PARTS = frozenset({"tasks", "scopes"})
RUNNING_STATES = frozenset({"running", "checking"})  # no "why": the card says what it does
OPEN_STATES = frozenset(TASK_STATES) - {"done", "canceled"}
STATE_COLOURS = {
    "pending": "#6b7280", "ready": "#0891b2", "running": "#2563eb", "waiting": "#d97706",
    "checking": "#7c3aed", "blocked": "#dc2626", "paused": "#b45309", "done": "#059669",
    "failed": "#b91c1c", "canceled": "#4b5563",
}
CARD_STYLE = ("border:1px solid var(--jp-border-color2,#ddd);border-radius:6px;padding:6px 8px;"
              "background:var(--jp-layout-color1,#fff);font:12px/1.35 "
              "var(--jp-ui-font-family,sans-serif)")
FORM_HELP = {
    "id": "letters, digits, _ and -; empty: made from the title",
    "title": "optional, shown on the card",
    "prompt": "what the agent is asked to do",
    "repo": "absolute path of the repository on the server",
    "base": "branch, tag or commit the worktree starts from (default HEAD)",
    "scope": "globs the agent may change, one per line or comma: src/**, tests/",
    "requires": "capabilities the agent must have, comma separated",
    "check": "command run when the agent stops, e.g. pytest -q",
    "budget": "e.g. dollars=2 minutes=30 tokens=200000",
}


class Live(Protocol):
    """What a view needs of :class:`~hive_lab.widgets.live.LiveState`."""

    client: HiveClient
    data: Any

    def on_change(self, callback: Any) -> Any: ...

    def mark_stale(self, *parts: str) -> None: ...


def card_html(task: dict[str, Any]) -> str:
    """One card's text: title, id, agent/session, attempts, and ``why`` when not running."""
    state = (task.get("state") or {}).get("name", "?")
    attempts = task.get("attempts") or []
    last = attempts[-1] if attempts else None
    agent = (last or {}).get("profile") or task.get("agent") or "any agent"
    session = task.get("session")
    who = agent + (f" in {session}" if session and session != task.get("id") else "")
    lines = [f"<b>{render.esc(task.get('title') or task.get('id'))}</b>",
             f"<span class='hive-muted'>{render.esc(task.get('id'))} · {render.esc(who)}"
             f" · attempt {len(attempts)}/{render.esc(task.get('max_attempts', '?'))}</span>"]
    why = task.get("why") or (task.get("state") or {}).get("reason")
    if state in ("done", "canceled") and why:
        lines.append(f"<div class='hive-muted'>{render.esc(why)}</div>")
    elif state not in RUNNING_STATES and why:
        lines.append(f"<div class='hive-why' style='color:#92400e'>why: {render.esc(why)}</div>")
    if last and last.get("outcome") and last.get("reason") and state in ("failed", "ready"):
        lines.append(f"<div class='hive-muted'>last attempt: {render.esc(last['outcome'])}: "
                     f"{render.esc(last['reason'])}</div>")
    return (f"<div class='hive-taskcard' data-task='{render.esc(task.get('id'))}' "
            f"data-state='{render.esc(state)}'>" + "<br>".join(lines[:2]) + "".join(lines[2:])
            + "</div>")


def column_title(state: str, count: int) -> str:
    colour = STATE_COLOURS.get(state, "#6b7280")
    return (f"<div class='hive-column-title' data-state='{state}' style='font-weight:600;"
            f"border-bottom:3px solid {colour};margin-bottom:4px'>{state} "
            f"<span class='hive-muted'>{count}</span></div>")


class _Card:
    """The widgets of one task's card, kept while the task exists."""

    def __init__(self, board: "TaskBoard", task_id: str) -> None:
        self.board, self.task_id = board, task_id
        self.html = W.HTML()
        self.cancel = W.Button(description="Cancel", button_style="warning",
                               layout=W.Layout(width="auto"), tooltip=f"cancel task {task_id}")
        self.retry = W.Button(description="Retry", button_style="info",
                              layout=W.Layout(width="auto"), tooltip=f"retry task {task_id}")
        self.cancel.on_click(lambda _: board.cancel(task_id))
        self.retry.on_click(lambda _: board.retry(task_id))
        self.requests = W.VBox()
        self.request_ids: tuple[int, ...] = ()
        self.buttons = W.HBox([self.cancel, self.retry], layout=W.Layout(flex_flow="row wrap"))
        self.box = W.VBox([self.html, self.requests, self.buttons],
                          layout=W.Layout(margin="0 0 6px 0"))
        self.box.add_class("hive-task-card")
        self.state = ""

    def show(self, task: dict[str, Any], requests: list[dict[str, Any]]) -> None:
        state = (task.get("state") or {}).get("name", "")
        self.state = state
        self.html.value = f"<div style=\"{CARD_STYLE}\">{card_html(task)}</div>"
        self.cancel.layout.display = "" if state in OPEN_STATES else "none"
        self.retry.layout.display = "" if state == "failed" else "none"
        ids = tuple(int(r["id"]) for r in requests)
        if ids != self.request_ids:
            self.request_ids = ids
            self.requests.children = [self._request_row(r) for r in requests]

    def _request_row(self, request: dict[str, Any]) -> W.Widget:
        rid = int(request["id"])
        text = W.HTML(f"<div class='hive-scope-request' style='font-size:12px;line-height:1.3;"
                      f"margin:2px 0'>wants <code>{render.esc(request.get('glob'))}</code>: "
                      f"{render.esc(request.get('why'))}</div>")
        approve = W.Button(description="Widen", button_style="success",
                           tooltip=f"add {request.get('glob')} to the task's scope",
                           layout=W.Layout(width="auto"))
        refuse = W.Button(description="Refuse", button_style="danger",
                          layout=W.Layout(width="auto"))
        approve.on_click(lambda _: self.board.decide_scope(rid, True))
        refuse.on_click(lambda _: self.board.decide_scope(rid, False))
        return W.VBox([text, W.HBox([approve, refuse], layout=W.Layout(flex_flow="row wrap"))])


class TaskBoard(W.VBox):
    """Tasks by state, live; cancel, retry, scope requests, and a form to create one."""

    def __init__(self, live: Live, **kwargs: Any) -> None:
        self.live = live
        self.client = live.client
        self.cards: dict[str, _Card] = {}
        self.titles = {s: W.HTML(column_title(s, 0)) for s in TASK_STATES}
        self.columns = {s: W.VBox([self.titles[s]], layout=W.Layout(
            min_width="130px", flex="1 1 0", margin="0 4px 0 0")) for s in TASK_STATES}
        for state, column in self.columns.items():
            column.add_class(f"hive-column-{state}")
        self.message = W.HTML()
        self.redraws = 0
        self._last: tuple[Any, Any] | None = None
        self.form = TaskForm(self)
        lanes = W.HBox(list(self.columns.values()),
                       layout=W.Layout(overflow="auto", align_items="flex-start",
                                       width="100%"))
        super().__init__([W.HTML(render.STYLE + "<h4 style='margin:6px 0'>Tasks</h4>"),
                          lanes, self.message, self.form], **kwargs)
        self.add_class("hive-task-board")
        self.update(set(PARTS))
        live.on_change(self.update)

    # -- drawing --------------------------------------------------------------------------
    def update(self, parts: set[str]) -> None:
        """Redraw when tasks or scope requests changed; unchanged cards are not re-sent."""
        if not parts & PARTS:
            return
        tasks = list(getattr(self.live.data, "tasks", None) or [])
        scopes = [r for r in (getattr(self.live.data, "scopes", None) or [])
                  if r.get("state", "pending") == "pending"]
        key = (tasks, scopes)
        if key == self._last:
            return
        self._last = key
        self.redraws += 1
        by_task: dict[str, list[dict[str, Any]]] = {}
        for request in scopes:
            by_task.setdefault(str(request.get("task_id") or request.get("task")), []).append(
                request)
        members: dict[str, list[W.Widget]] = {s: [] for s in TASK_STATES}
        seen: set[str] = set()
        for task in sorted(tasks, key=lambda t: (-int(t.get("priority") or 0),
                                                  float(t.get("created") or 0))):
            task_id = str(task.get("id"))
            seen.add(task_id)
            card = self.cards.get(task_id) or self.cards.setdefault(task_id,
                                                                     _Card(self, task_id))
            card.show(task, by_task.get(task_id, []))
            state = card.state if card.state in members else "pending"
            members[state].append(card.box)
        for gone in set(self.cards) - seen:
            del self.cards[gone]
        for state, column in self.columns.items():
            self.titles[state].value = column_title(state, len(members[state]))
            children = (self.titles[state], *members[state])
            if tuple(column.children) != children:
                column.children = children

    def column_of(self, task_id: str) -> str | None:
        """The column a task's card is in (tests read it)."""
        card = self.cards.get(task_id)
        return card.state if card else None

    def say(self, text: str, error: bool = False) -> None:
        colour = "#dc2626" if error else "#059669"
        self.message.value = (f"<div class='hive-board-message' style='color:{colour}'>"
                              f"{render.esc(text)}</div>")

    # -- actions: each one client call --------------------------------------------------------
    def _act(self, what: str, fn: Any, *args: Any) -> None:
        def done(result: Any, error: HiveAPIError | None) -> None:
            if error is not None:
                self.say(f"{what} failed: {error.detail}", error=True)
            else:
                self.say(f"{what}: done")
            self._stale()

        run_action(lambda: fn(*args), done)

    def _stale(self) -> None:
        mark = getattr(self.live, "mark_stale", None)
        if mark is not None:
            mark("tasks", "scopes")

    def cancel(self, task_id: str) -> None:
        self._act(f"cancel {task_id}", self.client.cancel_task, task_id)

    def retry(self, task_id: str) -> None:
        self._act(f"retry {task_id}", self.client.retry_task, task_id)

    def decide_scope(self, rid: int, approve: bool) -> None:
        if approve:
            self._act(f"approve scope request {rid}", self.client.approve_scope, rid)
        else:
            self._act(f"refuse scope request {rid}", self.client.refuse_scope, rid)


class TaskForm(W.VBox):
    """Create a task: every field checked in place; nothing is sent while one is wrong."""

    def __init__(self, board: TaskBoard) -> None:
        self.board = board
        self.inputs: dict[str, W.ValueWidget] = {}
        self.errors: dict[str, W.HTML] = {}
        rows = []
        for name in taskform.FIELDS:
            multi = name in ("prompt", "scope")
            widget: W.ValueWidget = (W.Textarea(rows=3 if name == "prompt" else 2)
                                     if multi else W.Text())
            widget.description = name.capitalize()
            widget.placeholder = FORM_HELP[name]
            widget.layout = W.Layout(width="560px")
            widget.add_class(f"hive-task-{name}")
            error = W.HTML()
            error.add_class(f"hive-task-{name}-error")
            self.inputs[name], self.errors[name] = widget, error
            rows.append(W.VBox([widget, error]))
        self.create_button = W.Button(description="Create task", button_style="success")
        self.create_button.on_click(lambda _: self.submit())
        self.result = W.HTML()
        super().__init__([W.HTML("<h4 style='margin:10px 0 2px'>New task</h4>"), *rows,
                          self.create_button, self.result])
        self.add_class("hive-task-form")

    def values(self) -> dict[str, str]:
        return {name: str(w.value) for name, w in self.inputs.items()}

    def show_errors(self, errors: dict[str, str]) -> None:
        for name, box in self.errors.items():
            text = errors.get(name)
            box.value = (f"<div class='hive-field-error' style='color:#dc2626;font-size:12px;"
                         f"margin-left:90px'>{render.esc(text)}</div>" if text else "")

    def submit(self) -> taskform.TaskDraft:
        """Check the fields; when all are right, POST the task (one client call)."""
        draft = taskform.check_task(self.values())
        self.show_errors(draft.errors)
        self.result.value = ""
        if not draft.ok:
            return draft
        self.create_button.disabled = True

        def done(task: Any, error: HiveAPIError | None) -> None:
            self.create_button.disabled = False
            if error is not None:
                where = taskform.field_of(error.status, error.error, error.detail)
                if where:
                    self.show_errors({where: error.detail})
                else:
                    self.result.value = (f"<div class='hive-field-error' style='color:#dc2626'>"
                                         f"{render.esc(error.detail)}</div>")
                return
            self.result.value = (f"<div class='hive-task-created' style='color:#059669'>"
                                 f"created task {render.esc(task.get('id'))}</div>")
            for name in ("id", "title", "prompt"):
                self.inputs[name].value = ""
            self.board._stale()

        run_action(lambda: self.board.client.add_task(draft.body), done)
        return draft
