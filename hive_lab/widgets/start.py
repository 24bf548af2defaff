"""Starting agents: profile (installed ones first, missing ones with how to install them),
name, repository, base, prompt, environment, worktree on or off; errors shown in place.

The checks and the rewording of the API's errors are :mod:`hive_lab.widgets.forms` (shared
with the old panel); this module is only the widgets. The Start button is one client call
(:meth:`HiveClient.spawn`), run off the kernel's loop.
"""
from __future__ import annotations

import re
from typing import Any

import ipywidgets as W

from ..client import HiveAPIError
from . import forms, render
from .actions import run_action
from .board import Live

# How to get each known agent CLI onto the server's PATH.
INSTALL_HINTS = {
    "claude": "npm install -g @anthropic-ai/claude-code (or scripts/install-claude.sh)",
    "gemini": "npm install -g @google/gemini-cli (or scripts/install-gemini.sh)",
    "codex": "npm install -g @openai/codex",
    "aider": "python -m pip install aider-install && aider-install",
}
FIELDS = ("name", "agent", "command", "cwd", "base", "prompt", "env")


def install_hint(profile: dict[str, Any]) -> str:
    program = (profile.get("command") or [profile.get("name", "")])[0]
    return INSTALL_HINTS.get(str(profile.get("name")),
                             f"put {program!r} on the server's PATH")


def missing(profile: dict[str, Any]) -> bool:
    return bool(profile.get("command")) and not profile.get("installed", True)


def profile_options(profiles: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, value) for the dropdown: installed first, a missing one says so."""
    ordered = sorted(profiles, key=lambda p: (missing(p), p.get("name") != "shell",
                                              str(p.get("name"))))
    return [(str(p["name"]) + (" (not installed)" if missing(p) else ""), str(p["name"]))
            for p in ordered if p.get("name")]


def field_of_error(text: str) -> str:
    """forms.spawn_error / forms.FormError texts start with the field ("Name: ...")."""
    head = re.split(r"[:,\s]", text.strip(), maxsplit=1)[0].lower()
    return {"name": "name", "agent": "agent", "command": "command", "cwd": "cwd",
            "environment": "env", "base": "base", "prompt": "prompt"}.get(head, "")


class StartForm(W.VBox):
    """The form that starts one agent session."""

    def __init__(self, live: Live, profiles: list[dict[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        self.live = live
        self.client = live.client
        if profiles is None:
            try:
                profiles = self.client.request("GET", "profiles")["profiles"]
            except HiveAPIError:
                profiles = [{"name": "shell", "command": [], "installed": True}]
        self.profiles = {str(p["name"]): p for p in profiles}
        self.agent = W.Dropdown(options=profile_options(profiles), description="Profile")
        self.name = W.Text(placeholder="A-Z a-z 0-9 _ -, e.g. fix-tests", description="Name")
        self.command = W.Text(placeholder="the program, for the shell profile: python3 -i",
                              description="Command")
        self.cwd = W.Text(placeholder="repository (a directory on the server)",
                          description="Repository")
        self.base = W.Text(placeholder="branch/commit the worktree starts from (HEAD)",
                           description="Base")
        self.prompt = W.Textarea(placeholder="first prompt (optional)", description="Prompt",
                                 rows=2)
        self.env = W.Textarea(placeholder="KEY=value, one per line (optional)",
                              description="Env vars", rows=2)
        self.worktree = W.Checkbox(value=True, description="own git worktree",
                                   indent=True)
        self.profile_note = W.HTML()
        self.errors = {name: W.HTML() for name in FIELDS}
        self.result = W.HTML()
        self.start_button = W.Button(description="Start agent", button_style="success")
        self.start_button.on_click(lambda _: self.submit())
        self.agent.observe(lambda _: self._profile_changed(), names="value")
        inputs = {"name": self.name, "agent": self.agent, "command": self.command,
                  "cwd": self.cwd, "base": self.base, "prompt": self.prompt, "env": self.env}
        rows: list[W.Widget] = [W.HTML("<h4 style='margin:6px 0'>Start an agent</h4>")]
        for name in ("agent", "name", "command", "cwd", "base", "prompt", "env"):
            widget = inputs[name]
            widget.layout = W.Layout(width="560px")
            widget.add_class(f"hive-start-{name}")
            self.errors[name].add_class(f"hive-start-{name}-error")
            rows.append(W.VBox([widget, self.profile_note, self.errors[name]]
                               if name == "agent" else [widget, self.errors[name]]))
        rows += [self.worktree, self.start_button, self.result]
        super().__init__(rows, **kwargs)
        self.add_class("hive-start")
        self._profile_changed()

    def update(self, parts: set[str]) -> None:
        """Nothing here follows the stream (profiles are the server's config)."""

    def _profile_changed(self) -> None:
        profile = self.profiles.get(str(self.agent.value)) or {}
        if missing(profile):
            self.profile_note.value = (
                f"<div class='hive-install-hint' style='color:#b45309;font-size:12px;"
                f"margin-left:90px'>not installed on the server; install with "
                f"<code>{render.esc(install_hint(profile))}</code></div>")
        elif profile.get("description"):
            self.profile_note.value = (f"<div class='hive-muted' style='margin-left:90px'>"
                                       f"{render.esc(profile['description'])}</div>")
        else:
            self.profile_note.value = ""
        self.command.layout.display = "" if not profile.get("command") else "none"

    def show_errors(self, errors: dict[str, str]) -> None:
        for name, box in self.errors.items():
            text = errors.get(name)
            box.value = (f"<div class='hive-field-error' style='color:#dc2626;font-size:12px;"
                         f"margin-left:90px'>{render.esc(text)}</div>" if text else "")

    def _error(self, text: str) -> None:
        where = field_of_error(text)
        if where:
            self.show_errors({where: text})
            self.result.value = ""
        else:
            self.show_errors({})
            self.result.value = (f"<div class='hive-field-error' style='color:#dc2626'>"
                                 f"{render.esc(text)}</div>")

    def submit(self) -> forms.StartForm | None:
        """Check the fields; when right, start the session (one client call)."""
        try:
            form = forms.check_start(self.name.value, str(self.agent.value),
                                     self.command.value, self.cwd.value, self.prompt.value,
                                     self.env.value, self.profiles)
        except forms.FormError as exc:
            self._error(str(exc))
            return None
        base = self.base.value.strip() or None
        if base and not self.worktree.value:
            self._error("Base: a base is only used with a worktree; tick 'own git worktree'")
            return None
        self.show_errors({})
        self.result.value = ""
        self.start_button.disabled = True

        def done(session: Any, error: HiveAPIError | None) -> None:
            self.start_button.disabled = False
            if error is not None:
                self._error(forms.spawn_error(error.error, error.detail, form))
                return
            self.result.value = (f"<div class='hive-started' style='color:#059669'>started "
                                 f"{render.esc(session.get('name'))}</div>")
            self.name.value = ""
            mark = getattr(self.live, "mark_stale", None)
            if mark is not None:
                mark("sessions")

        worktree = bool(self.worktree.value) if form.cwd else None
        run_action(lambda: self.client.spawn(
            form.name, agent=form.agent, command=form.command, cwd=form.cwd,
            env=form.env or None, prompt=form.prompt, worktree=worktree, base=base), done)
        return form
