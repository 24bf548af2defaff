"""The HiveOS control panel: sessions, who waits for you, a screen, and controls.

Everything goes through :class:`hive_lab.client.HiveClient` (the server's API); nothing here
talks to tmux. Live updates come from the event stream in an asyncio task on the kernel's own
loop, which is where ipywidgets may be updated from.
"""
from __future__ import annotations

import asyncio
import shlex
from typing import Any

import ipywidgets as W

from ..client import HiveAPIError, HiveClient
from . import render

WRAP = W.Layout(flex_flow="row wrap", align_items="flex-start")
HEADING = "<h4 style='margin:10px 0 2px'>{}</h4>"
REDRAW_SECONDS = 30.0  # "since" columns stay true even when nothing happens

REFRESH_EVENTS = {"StateChanged", "SessionCreated", "SessionRemoved", "GitChanged",
                  "UsageUpdated"}


class SessionsPanel(W.VBox):
    """Live session list plus a form to start agents and talk to them."""

    def __init__(self, client: HiveClient | None = None, live: bool = True, **kwargs: Any) -> None:
        self.client = client or HiveClient.discover()
        self.table = W.HTML()
        self.waiting = W.HTML()
        self.collisions = W.HTML()
        self.message = W.HTML()
        self.screen = W.HTML()
        self.events = W.HTML()
        self._recent: list[dict[str, Any]] = []
        self._task: asyncio.Task[Any] | None = None
        self._last_id = 0

        # start form
        self.new_name = W.Text(placeholder="name (A-Z a-z 0-9 _ -)", description="Name")
        self.new_agent = W.Dropdown(options=self._agent_options(), value="shell",
                                    description="Agent")
        self.new_command = W.Text(placeholder="argv for shell, e.g. python3 -i", description="Command")
        self.new_cwd = W.Text(placeholder="working directory (optional)", description="Cwd")
        self.new_prompt = W.Text(placeholder="first prompt (optional)", description="Prompt")
        self.start_button = W.Button(description="Start", button_style="success", icon="play")
        self.start_button.on_click(lambda _: self.start_session())

        # talk form
        self.target = W.Dropdown(options=[], description="Session")
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
        self.stop_button.on_click(lambda _: self.stop_session())
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())

        start_box = W.VBox([W.HTML(HEADING.format("Start an agent")), self.new_name,
                            self.new_agent, self.new_command, self.new_cwd, self.new_prompt,
                            self.start_button], layout=W.Layout(flex="0 0 auto", margin="0 24px 0 0"))
        talk_box = W.VBox([W.HTML(HEADING.format("Talk to an agent")), self.target, self.text,
                           W.HBox([self.send_button, *key_buttons], layout=WRAP),
                           W.HBox([self.screen_button, self.stop_button], layout=WRAP),
                           self.screen], layout=W.Layout(flex="1 1 420px"))
        super().__init__([
            W.HBox([W.HTML("<h3 style='margin:0'>Sessions</h3>"), self.refresh_button],
                   layout=W.Layout(align_items="center")), self.table,
            W.HTML(HEADING.format("Waiting for you")), self.waiting,
            W.HTML(HEADING.format("Collisions")), self.collisions, self.message,
            W.HBox([start_box, talk_box], layout=WRAP),
            W.HTML(HEADING.format("Latest events")), self.events,
        ], **kwargs)
        self.refresh()
        if live:
            self.start_live()

    # -- data -----------------------------------------------------------------------------
    def _agent_options(self) -> list[str]:
        try:
            return [p["name"] for p in self.client.request("GET", "profiles")["profiles"]]
        except HiveAPIError:
            return ["shell"]

    def refresh(self) -> list[dict[str, Any]]:
        """Reload the session list from the server and redraw."""
        try:
            sessions = self.client.sessions()
        except HiveAPIError as exc:
            self.say(f"cannot reach Hive Lab: {exc.detail}", error=True)
            return []
        self.sessions = sessions
        git, usage, collisions = self._extras()
        self.table.value = render.sessions_table(sessions, git=git, usage=usage)
        self.collisions.value = render.conflicts_html(collisions)
        self.waiting.value = render.waiting_list(sessions)
        names = [s["name"] for s in sessions]
        current = self.target.value
        self.target.options = names
        if current in names:
            self.target.value = current
        return sessions

    def _extras(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Git state, cost per session and collisions (best effort: the table comes first)."""
        try:
            git = self.client.git()["sessions"]
            usage = {u["sessionId"]: u for u in self.client.usage(by="session")["sessions"]}
            collisions = self.client.conflicts()
        except HiveAPIError:
            return {}, {}, {}
        return git, usage, collisions

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
            command = shlex.split(self.new_command.value) or None
        except ValueError as exc:
            self.say(f"command: {exc}", error=True)
            return None
        session = self._call(
            f"start {self.new_name.value}", self.client.spawn, self.new_name.value,
            agent=self.new_agent.value, command=command, cwd=self.new_cwd.value or None,
            prompt=self.new_prompt.value or None)
        if session:
            self.refresh()
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

    def show_screen(self) -> None:
        if self.target.value:
            text = self._call(f"screen of {self.target.value}", self.client.screen, self.target.value)
            if text is not None:
                self.screen.value = render.screen_html(text)

    def stop_session(self) -> None:
        if self.target.value:
            self._call(f"stop {self.target.value}", self.client.kill, self.target.value)
            self.refresh()

    # -- live -----------------------------------------------------------------------------
    def start_live(self) -> None:
        """Follow the event stream on the kernel's loop (no threads touch the widgets)."""
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._last_id = self.client.status().get("last_event_id", 0)
            self._recent = self.client.events(after=max(0, self._last_id - 15), limit=15)
            self.events.value = render.events_table(reversed(self._recent))
            self._task = loop.create_task(self._follow())
            self._clock = loop.create_task(self._redraw_every(REDRAW_SECONDS))

    def stop_live(self) -> None:
        for task in (self._task, getattr(self, "_clock", None)):
            if task is not None:
                task.cancel()

    async def _redraw_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.refresh()

    async def _follow(self) -> None:
        async for event in self.client.stream(after=self._last_id):
            self._last_id = event["id"]
            self._recent = (self._recent + [event])[-15:]
            self.events.value = render.events_table(reversed(self._recent))
            if event["event"] in REFRESH_EVENTS:
                self.refresh()
