"""The start form's input checks and wording: plain words for people, not the API's.

Pure functions (no widgets), so they can be tested alone. The server still validates
everything; these checks only let the form say what is wrong in the form's own terms, before
a request is made, and reword the API's errors the form cannot foresee.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FormError(ValueError):
    """A form field holds something that cannot be sent: ``str(exc)`` says what to type."""


@dataclass
class StartForm:
    """What the start form asks the server for, checked."""

    name: str
    agent: str
    command: list[str] | None = None
    cwd: str | None = None
    prompt: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def parse_env(text: str) -> dict[str, str]:
    """``KEY=value`` lines (blank lines and ``# comments`` skipped) -> a dict."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not ENV_KEY_RE.fullmatch(key):
            raise FormError(f"Environment, line {number}: write one KEY=value per line "
                            "(KEY: letters, digits and _, not starting with a digit)")
        env[key] = value
    return env


def check_start(name: str, agent: str, command: str, cwd: str, prompt: str, env: str,
                profiles: dict[str, dict[str, Any]]) -> StartForm:
    """The form's fields as a request, or :class:`FormError` naming the field to fix."""
    name = name.strip()
    if not name:
        raise FormError("Name: give the session a name, e.g. fix-tests")
    if not NAME_RE.fullmatch(name):
        raise FormError("Name: use up to 64 letters, digits, _ or -, not starting with -")
    profile = profiles.get(agent)
    if profile is not None and profile.get("command") and not profile.get("installed", True) \
            and not command.strip():
        program = (profile.get("command") or [agent])[0]
        raise FormError(f"Agent: {agent} is not installed on this machine ({program!r} is not "
                        "on the server's PATH); install it or pick another agent")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise FormError(f"Command: {exc} (check your quotes)") from None
    if not argv and profile is not None and not profile.get("command"):
        raise FormError(f"Command: {agent} runs the program you name here, e.g. python3 -i")
    return StartForm(name=name, agent=agent, command=argv or None, cwd=cwd.strip() or None,
                     prompt=prompt or None, env=parse_env(env))


def spawn_error(error: str, detail: str, form: StartForm) -> str:
    """The API's answer to a failed start, in the form's words."""
    missing = re.search(r"'([^']+)' is not installed or not on PATH", detail)
    if missing:
        return (f"Command: {missing.group(1)!r} is not installed on this machine "
                "(not on the server's PATH)")
    if "needs a command" in detail:
        return f"Command: {form.agent} runs the program you name here, e.g. python3 -i"
    if error == "conflict" or "already exists" in detail:
        return f"Name: a session called {form.name!r} already exists; pick another name"
    if "is not an existing directory" in detail:
        return f"Cwd: {form.cwd!r} is not a directory on the server"
    if "not inside a git repository" in detail:
        return f"Cwd: {form.cwd!r} is not inside a git repository, so no worktree can be made"
    if detail.startswith("invalid name"):
        return "Name: use up to 64 letters, digits, _ or -, not starting with -"
    if "env" in detail.lower():
        return f"Environment: {detail}"
    return f"could not start {form.name}: {detail}"
