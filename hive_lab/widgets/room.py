"""The HiveOS control room: Needs you on top, the fleet grouped by repository, one agent in
detail, and (part B's) tasks board, money and time, and the start form.

Everything is live from one :class:`~hive_lab.widgets.live.LiveState`; views redraw only the
parts an event made stale. Every button is one :class:`~hive_lab.client.HiveClient` call a
user could make from a cell, run in a worker thread so the kernel stays usable.

Keyboard (on a focused Needs-you card; click a card or Tab to it): ``a`` approve / widen the
scope / raise the budget, ``d`` deny / refuse, ``1``-``9`` pick a numbered choice, ``r`` go to
the reply box (Enter sends, Esc comes back), ``j``/``k`` next/previous card.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

import ipywidgets as W

from ..client import HiveAPIError, HiveClient
from . import fleet, needs, render
from .detail import AgentDetail
from .live import LiveState
from .views import FleetView, NeedsView

try:  # part B's sections (same package, another branch until merged)
    from .board import TaskBoard
except ImportError:  # pragma: no cover - until the lead merges part B
    TaskBoard = None  # type: ignore[assignment,misc]
try:
    from .money import MoneyView
except ImportError:  # pragma: no cover
    MoneyView = None  # type: ignore[assignment,misc]
try:
    from .start import StartForm
except ImportError:  # pragma: no cover
    StartForm = None  # type: ignore[assignment,misc]
try:
    from .pipes import PipelineView
except ImportError:  # pragma: no cover
    PipelineView = None  # type: ignore[assignment,misc]

STOPPED_KEPT = 50
HEADING = "<h3 style='margin:10px 0 2px'>{}</h3>"


class ControlRoom(W.VBox):
    """The whole control room; ``ControlRoom()`` finds the server like HiveClient.discover()."""

    def __init__(self, client: HiveClient | None = None, live: LiveState | None = None,
                 start: bool = True, **kwargs: Any) -> None:
        self.live = live or LiveState(client, start=start)
        self.client = self.live.client
        self.needs = NeedsView()
        self.fleet = FleetView()
        self.detail = AgentDetail(self.live)
        self.message = W.HTML()
        self.stopped: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cards: dict[str, dict[str, Any]] = {}
        self._known: dict[str, dict[str, Any]] = {}
        self.answers = 0  # answers sent (tests read it)
        self.needs.on_action(self._needs_action)
        self.fleet.on_action(self._fleet_action)
        sections: list[W.Widget] = [self.needs, self.message, W.HTML(HEADING.format("The fleet")),
                                    self.fleet, self.detail]
        self.extra: dict[str, Any] = {}
        for label, cls in (("Tasks", TaskBoard), ("Pipelines & merges", PipelineView),
                           ("Money and time", MoneyView), ("Start agents", StartForm)):
            if cls is None:
                continue
            try:
                view = cls(self.live)
            except Exception as exc:  # a broken section must not take the room down
                sections.append(W.HTML(f"<div style='color:#dc2626'>{render.esc(label)}: "
                                       f"{render.esc(exc)}</div>"))
                continue
            self.extra[label] = view
            sections += [W.HTML(HEADING.format(render.esc(label))), view]
            if hasattr(view, "update"):
                self.live.on_change(view.update)
        super().__init__(sections, **kwargs)
        self.add_class("hive-control-room")
        self.live.on_change(self.update)
        self.update(set(needs_parts() | {"sessions"}))

    # -- drawing ----------------------------------------------------------------------------
    def update(self, parts: set[str]) -> None:
        data = self.live.data
        if "sessions" in parts:
            names = {str(s.get("name")) for s in data.sessions}
            for name, old in list(self._known.items()):
                if name not in names and name not in self.stopped:
                    self.stopped[name] = {**old, "stopped_at": _now_iso()}
                    while len(self.stopped) > STOPPED_KEPT:
                        self.stopped.popitem(last=False)
            self._known = {s["name"]: s for s in data.sessions if s.get("name")}
            for name in names & set(self.stopped):
                self.stopped.pop(name, None)  # started again under the same name
        if parts & needs_parts():
            cards = needs.cards(data, self.live.hook_payloads)
            self._cards = {c["key"]: c for c in cards}
            self.needs.cards = cards
            status = {k: v for k, v in self.needs.status.items() if k in self._cards}
            if status != self.needs.status:
                self.needs.status = status
        if parts & {"sessions", "git", "usage", "collisions", "tasks", "budgets", "events"}:
            self.fleet.set_rows(fleet.rows(data, self.stopped.values()))

    # -- Needs you ----------------------------------------------------------------------------
    def _needs_action(self, msg: dict[str, Any]) -> None:
        card = self._cards.get(str(msg.get("key")))
        if card is None:
            self._status(str(msg.get("key")), False, "this question is no longer open; nothing was sent")
            return
        self._spawn(self._answer(card, str(msg.get("action")), msg.get("value")))

    async def _answer(self, card: dict[str, Any], action: str, value: Any) -> None:
        outcome = await asyncio.to_thread(needs.answer, self.client, card, action, value)
        self.answers += outcome.ok
        self._status(card["key"], outcome.ok, outcome.message)
        self.live.mark_stale("sessions", "scopes", "budgets", "tasks", "pipelines", "merges")

    def _status(self, key: str, ok: bool, message: str) -> None:
        self.needs.status = {**self.needs.status, key: {"ok": ok, "message": message}}
        self.say(message, error=not ok)

    def answer(self, key: str, action: str, value: Any = None) -> needs.Outcome:
        """Answer the card ``key`` from a cell (blocking), exactly as its button does."""
        card = self._cards.get(key)
        if card is None:
            return needs.Outcome(False, "this question is no longer open; nothing was sent")
        return needs.answer(self.client, card, action, value)

    # -- the fleet ----------------------------------------------------------------------------
    def _fleet_action(self, msg: dict[str, Any]) -> None:
        action = msg.get("action")
        names = [n for n in msg.get("names") or [] if isinstance(n, str)]
        if action == "open" and isinstance(msg.get("name"), str):
            self.fleet.selected = msg["name"]
            self.detail.show(msg["name"])
        elif action == "stop":
            self._spawn(self._bulk("stop", names))
        elif action == "dismiss":
            self.stopped.clear()
            self.fleet.rows = fleet.rows(self.live.data, ())
        elif action == "cleanup":
            self._spawn(self._bulk("cleanup", names))

    async def _bulk(self, what: str, names: list[str]) -> None:
        live = {s["name"] for s in self.live.data.sessions}
        if what == "stop":
            targets = [n for n in names if n in live]
            if not targets:
                self.say("select the agents to stop first", error=True)
                return
            failed = []
            for name in targets:
                try:
                    await asyncio.to_thread(self.client.kill, name)
                except HiveAPIError as exc:
                    failed.append(f"{name}: {exc.detail}")
            self.say(f"stopped {len(targets) - len(failed)} of {len(targets)}"
                     + (f"; {'; '.join(failed)}" if failed else ""), error=bool(failed))
            self.live.mark_stale("sessions")
            return
        body = {"sessions": [n for n in names if n not in live]} if names else {}
        try:
            results = (await asyncio.to_thread(self.client.request, "POST", "git/orphans", body)
                       ).get("results") or []
        except HiveAPIError as exc:
            self.say(f"clean up failed: {exc.detail}", error=True)
            return
        removed = [r for r in results if isinstance(r, dict) and r.get("removed")]
        kept = [f"{r.get('session')}: {r.get('reason')}" for r in results
                if isinstance(r, dict) and not r.get("removed")]
        self.say(f"cleaned up {len(removed)} finished worktree(s) of {len(results)}"
                 + (f"; kept {'; '.join(kept)}" if kept else ""), error=bool(kept))
        self.live.mark_stale("git", "collisions")

    # -- helpers ------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        colour = "#dc2626" if error else "#059669"
        self.message.value = f'<div style="color:{colour}">{render.esc(text)}</div>'

    def _spawn(self, coro: Any) -> None:
        try:
            asyncio.get_event_loop().create_task(coro)
        except RuntimeError:
            asyncio.run(coro)

    def stop(self) -> None:
        """Stop following the stream (the widgets stay as they are)."""
        self.live.stop()
        self.detail.close_detail()


def needs_parts() -> set[str]:
    return {"sessions", "scopes", "budgets", "events", "pipelines", "merges"}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
