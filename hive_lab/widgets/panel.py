"""The HiveOS control panel: sessions, who waits for you, a screen, and controls.

Everything goes through :class:`hive_lab.client.HiveClient` (the server's API); nothing here
talks to tmux. Live updates come from the event stream in an asyncio task on the kernel's own
loop, which is where ipywidgets may be updated from.

Keeping up with a busy fleet (issue 9, B3): the stream task never makes an HTTP call. It only
notes what an event made stale (sessions, git, usage, collisions) and wakes the painter. The
painter fetches what is stale in a worker thread (``asyncio.to_thread``: the kernel keeps
running cells meanwhile), then redraws on the loop, at most once per :data:`MIN_PAINT_SECONDS`
whatever the event rate, and only the widgets whose HTML changed.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as W

from ..client import HiveAPIError, HiveClient
from . import forms, render
from .fetchorder import FetchOrder

WRAP = W.Layout(flex_flow="row wrap", align_items="flex-start")
HEADING = "<h4 style='margin:10px 0 2px'>{}</h4>"
REDRAW_SECONDS = 30.0  # "since" columns stay true even when nothing happens
MIN_PAINT_SECONDS = 0.25  # at most 4 redraws a second, whatever the event rate
RECENT = 15
STOPPED_KEPT = 10

# Which part of the panel's data an event makes stale.
STALE_BY_EVENT = {
    "StateChanged": {"sessions"}, "SessionCreated": {"sessions"},
    "SessionRemoved": {"sessions", "git", "collisions", "usage"},
    "GitChanged": {"git", "collisions"}, "ConflictPredicted": {"collisions"},
    "UsageUpdated": {"usage"},
}
ALL_PARTS = frozenset({"sessions", "git", "usage", "collisions"})


@dataclass
class Snapshot:
    """What the panel draws; parts are replaced by fetches, never mutated."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    git: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    collisions: dict[str, Any] = field(default_factory=dict)


class SessionsPanel(W.VBox):
    """Live session list plus a form to start agents and talk to them."""

    def __init__(self, client: HiveClient | None = None, live: bool = True, **kwargs: Any) -> None:
        self.client = client or HiveClient.discover()
        self.table = W.HTML()
        self.stopped_box = W.HTML()
        self.waiting = W.HTML()
        self.collisions = W.HTML()
        self.message = W.HTML()
        self.screen = W.HTML()
        self.events = W.HTML()
        self.data = Snapshot()
        self.stopped: deque[dict[str, Any]] = deque(maxlen=STOPPED_KEPT)
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake: asyncio.Event | None = None
        self._stale: set[str] = set()
        self._events_dirty = False
        self._last_id = 0
        self.drawn_id = 0  # every event up to this id is reflected in what is drawn
        self.paints = 0  # live redraws done (for tests and benchmarks)
        self.fetches = 0  # worker-thread fetches done
        self._order = FetchOrder()  # an earlier-started fetch never overwrites a later one
        self._confirm_name: str | None = None

        # start form
        self.profiles = self._profiles()
        self.new_name = W.Text(placeholder="name (A-Z a-z 0-9 _ -)", description="Name")
        self.new_agent = W.Dropdown(options=self._agent_options(), value="shell",
                                    description="Agent")
        self.new_command = W.Text(placeholder="argv for shell, e.g. python3 -i", description="Command")
        self.new_cwd = W.Text(placeholder="working directory (optional)", description="Cwd")
        self.new_prompt = W.Text(placeholder="first prompt (optional)", description="Prompt")
        self.new_env = W.Textarea(placeholder="environment (optional), one KEY=value per line",
                                  description="Env", rows=2)
        self.start_button = W.Button(description="Start", button_style="success", icon="play")
        self.start_button.on_click(lambda _: self.start_session())

        # talk form
        self.target = W.Dropdown(options=[], description="Session")
        self.target.observe(self._target_changed, names="value")
        self.text = W.Textarea(placeholder="text to type into the agent", description="Text",
                               layout=W.Layout(width="60%"))
        self.send_button = W.Button(description="Send", icon="paper-plane")
        self.send_button.on_click(lambda _: self.send_text())
        key_buttons = []
        for label, keys, style in (("Approve (1)", ["1"], "success"), ("Deny (Esc)", ["Escape"], "warning"),
                                   ("Enter", ["Enter"], ""), ("Interrupt (C-c)", ["C-c"], "warning")):
            button = W.Button(description=label, button_style=style)
            button.on_click(lambda _, k=keys: self.press(k))
            key_buttons.append(button)
        self.screen_button = W.Button(description="Show screen", icon="desktop")
        self.screen_button.on_click(lambda _: self.show_screen())
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop")
        self.stop_button.on_click(lambda _: self.ask_stop())
        self.confirm_button = W.Button(description="Yes, stop it", button_style="danger")
        self.confirm_button.on_click(lambda _: self.confirm_stop())
        self.cancel_button = W.Button(description="Cancel")
        self.cancel_button.on_click(lambda _: self.cancel_stop())
        self.confirm_text = W.HTML()
        self.confirm_box = W.HBox([self.confirm_text, self.confirm_button, self.cancel_button],
                                  layout=W.Layout(display="none", align_items="center"))
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())

        start_box = W.VBox([W.HTML(HEADING.format("Start an agent")), self.new_name,
                            self.new_agent, self.new_command, self.new_cwd, self.new_prompt,
                            self.new_env, self.start_button],
                           layout=W.Layout(flex="0 0 auto", margin="0 24px 0 0"))
        talk_box = W.VBox([W.HTML(HEADING.format("Talk to an agent")), self.target, self.text,
                           W.HBox([self.send_button, *key_buttons], layout=WRAP),
                           W.HBox([self.screen_button, self.stop_button], layout=WRAP),
                           self.confirm_box, self.screen], layout=W.Layout(flex="1 1 420px"))
        super().__init__([
            W.HBox([W.HTML("<h3 style='margin:0'>Sessions</h3>"), self.refresh_button],
                   layout=W.Layout(align_items="center")), self.table, self.stopped_box,
            W.HTML(HEADING.format("Waiting for you")), self.waiting,
            W.HTML(HEADING.format("Collisions")), self.collisions, self.message,
            W.HBox([start_box, talk_box], layout=WRAP),
            W.HTML(HEADING.format("Latest events")), self.events,
        ], **kwargs)
        self.refresh()
        if live:
            self.start_live()

    # -- data -----------------------------------------------------------------------------
    def _profiles(self) -> dict[str, dict[str, Any]]:
        try:
            return {p["name"]: p for p in self.client.request("GET", "profiles")["profiles"]}
        except HiveAPIError:
            return {"shell": {"name": "shell", "command": [], "installed": False}}

    def _agent_options(self) -> list[tuple[str, str]]:
        """(label, value) pairs; an agent whose CLI is missing says so and comes last."""
        def label(p: dict[str, Any]) -> str:
            missing = p.get("command") and not p.get("installed", True)
            return p["name"] + (" (not installed)" if missing else "")

        ordered = sorted(self.profiles.values(),
                         key=lambda p: bool(p.get("command") and not p.get("installed", True)))
        return [(label(p), p["name"]) for p in ordered] or [("shell", "shell")]

    def fetch(self, parts: set[str] | frozenset[str] = ALL_PARTS) -> dict[str, Any]:
        """GET the given parts from the server (blocking: call it off the loop when live)."""
        out: dict[str, Any] = {}
        if "sessions" in parts:
            out["sessions"] = self.client.sessions()
        try:  # best effort: the table comes first
            if "git" in parts:
                out["git"] = self.client.git()["sessions"]
            if "usage" in parts:
                out["usage"] = {u["sessionId"]: u
                                for u in self.client.usage(by="session")["sessions"]}
            if "collisions" in parts:
                out["collisions"] = self.client.conflicts()
        except HiveAPIError:
            pass
        return out

    def refresh(self) -> list[dict[str, Any]]:
        """Reload everything from the server and redraw (the Refresh button; blocking)."""
        ticket = self._order.start()
        try:
            fresh = self.fetch(ALL_PARTS)
        except HiveAPIError as exc:
            self.say(f"cannot reach Hive Lab: {exc.detail}", error=True)
            return []
        self.apply(self._order.newer(ticket, fresh))
        return self.sessions

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return self.data.sessions

    def apply(self, fresh: dict[str, Any]) -> None:
        """Adopt fetched parts and redraw what changed (on the loop's thread only)."""
        old = {s["name"]: s for s in self.data.sessions}
        for key, value in fresh.items():
            setattr(self.data, key, value)
        if "sessions" in fresh:
            names = [s["name"] for s in self.data.sessions]
            for name in old.keys() - set(names):
                self._note_stopped(old[name])
        self._draw()

    def _draw(self) -> None:
        d = self.data
        # ipywidgets sends a value to the page only when it differs, so unchanged parts cost
        # one string comparison.
        self.table.value = render.sessions_table(d.sessions, git=d.git, usage=d.usage)
        self.stopped_box.value = render.stopped_html(reversed(self.stopped))
        self.collisions.value = render.conflicts_html(d.collisions)
        self.waiting.value = render.waiting_list(d.sessions)
        names = [s["name"] for s in d.sessions]
        if list(self.target.options) != names:
            current = self.target.value
            self.target.options = names
            if current in names:
                self.target.value = current

    def _note_stopped(self, session: dict[str, Any]) -> None:
        if any(s["name"] == session["name"] for s in self.stopped):
            return
        self.stopped.append({"name": session["name"], "agent": session.get("agent"),
                             "state": session.get("state") or {}, "at": time.strftime("%H:%M:%S")})

    def say(self, text: str, error: bool = False) -> None:
        colour = "#dc2626" if error else "#059669"
        self.message.value = f'<div style="color:{colour}">{render.esc(text)}</div>'

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except HiveAPIError as exc:
            self.say(f"{what} failed: {exc.detail}", error=True)
            return None
        self.say(f"{what}: done")
        return result

    # -- actions --------------------------------------------------------------------------
    def start_session(self) -> dict[str, Any] | None:
        try:
            form = forms.check_start(self.new_name.value, self.new_agent.value,
                                     self.new_command.value, self.new_cwd.value,
                                     self.new_prompt.value, self.new_env.value, self.profiles)
        except forms.FormError as exc:
            self.say(str(exc), error=True)
            return None
        try:
            session = self.client.spawn(form.name, agent=form.agent, command=form.command,
                                        cwd=form.cwd, prompt=form.prompt, env=form.env or None)
        except HiveAPIError as exc:
            self.say(forms.spawn_error(exc.error, exc.detail, form), error=True)
            return None
        self.say(f"start {form.name}: done")
        self.refresh()
        if session["name"] in self.target.options:
            self.target.value = session["name"]
        return session

    def send_text(self) -> None:
        if self.target.value:
            self._call(f"send to {self.target.value}", self.client.send, self.target.value,
                       self.text.value)
            self.text.value = ""

    def press(self, keys: list[str]) -> None:
        if self.target.value:
            self._call(f"keys {' '.join(keys)} to {self.target.value}", self.client.keys,
                       self.target.value, keys)

    def _target_changed(self, change: dict[str, Any]) -> None:
        """Another session is selected: a screen shown belongs to the old one, so it goes."""
        if change.get("old") != change.get("new"):
            self.screen.value = ""
            self.cancel_stop()

    def show_screen(self) -> None:
        name = self.target.value
        if not name:
            return
        try:
            text = self.client.screen(name)
        except HiveAPIError as exc:
            self.screen.value = render.screen_error_html(name, exc.detail)
            self.say(f"screen of {name} failed: {exc.detail}", error=True)
            return
        self.screen.value = render.screen_html(text, name)
        self.say(f"screen of {name}: done")

    def ask_stop(self) -> None:
        """The Stop button: ask first (stopping ends the agent's whole process tree)."""
        name = self.target.value
        if not name:
            return
        self._confirm_name = name
        self.confirm_text.value = (f"Stop <b>{render.esc(name)}</b> and every process it "
                                   "started?&nbsp;")
        self.confirm_box.layout.display = "flex"

    def cancel_stop(self) -> None:
        self._confirm_name = None
        self.confirm_box.layout.display = "none"

    def confirm_stop(self) -> None:
        name = self._confirm_name
        self.cancel_stop()
        if name:
            self.stop_session(name)

    def stop_session(self, name: str | None = None) -> None:
        """Stop ``name`` (default: the selected session) now, without asking."""
        name = name or self.target.value
        if not name:
            return
        before = next((s for s in self.data.sessions if s["name"] == name), None)
        if self._call(f"stop {name}", self.client.kill, name) is not None and before:
            self._note_stopped({**before, "state": {**(before.get("state") or {}),
                                                    "name": "exited", "source": "kill"}})
        self.refresh()

    # -- live -----------------------------------------------------------------------------
    def start_live(self) -> None:
        """Follow the event stream on the kernel's loop (no threads touch the widgets)."""
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
        if self.running:
            return
        self._last_id = self.client.status().get("last_event_id", 0)
        self.drawn_id = self._last_id
        self._recent.extend(self.client.events(after=max(0, self._last_id - RECENT), limit=RECENT))
        self.events.value = render.events_table(reversed(self._recent))
        self._wake = asyncio.Event()
        self._tasks = [loop.create_task(self._follow()), loop.create_task(self._paint())]

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def stop_live(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _follow(self) -> None:
        """Note each event; never wait on anything but the stream."""
        async for event in self.client.stream(after=self._last_id):
            self._last_id = event["id"]
            self._recent.append(event)
            self._events_dirty = True
            self._stale |= STALE_BY_EVENT.get(event["event"], set())
            assert self._wake is not None
            self._wake.set()

    async def _paint(self) -> None:
        """Redraw when woken, coalescing whatever arrived meanwhile; fetch off the loop."""
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), REDRAW_SECONDS)
            except asyncio.TimeoutError:
                self._stale |= {"sessions"}  # keep "since" true on a quiet fleet
            self._wake.clear()
            seen, parts = self._last_id, self._stale
            self._stale = set()
            fresh: dict[str, Any] | None = {}
            if parts:
                ticket = self._order.start()
                try:
                    fresh = await asyncio.to_thread(self.fetch, parts)
                    self.fetches += 1
                except HiveAPIError:
                    self._stale |= parts  # server away: try again on the next wake
                    fresh = None
                if fresh is not None:
                    self.apply(self._order.newer(ticket, fresh))
            if self._events_dirty:
                self._events_dirty = False
                self.events.value = render.events_table(reversed(self._recent))
            if fresh is not None:
                self.drawn_id = max(self.drawn_id, seen)
            self.paints += 1
            await asyncio.sleep(MIN_PAINT_SECONDS)
