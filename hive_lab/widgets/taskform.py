"""The create-task form's checks: every field checked in place, before anything is sent.

Pure functions (no widgets, no network) so they are tested alone. They follow the server's
rules (``hive_lab.orchestrate.tasks.TaskSpec.parse``, ``scopes.validate_pattern``,
``budgets.parse_limit``); the kernel side may not import those (they live behind the core), so
the rules are restated here and ``tests/test_board.py`` checks both sides accept and refuse the
same inputs. The server still validates everything and stores nothing on a 400: whatever it
refuses that these checks did not foresee is put next to the field its message names
(:func:`field_of`).
"""
from __future__ import annotations

import math
import re
import shlex
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..wire import NAME_RE, NAME_RULE

FIELDS = ("id", "title", "prompt", "repo", "base", "scope", "requires", "check", "budget")
MAX_PROMPT = 100_000
MAX_TITLE = 200
MAX_REQUIRES = 32
MAX_CHECK_ARGS = 64
MAX_CHECK_CHARS = 8192
MAX_PATTERNS = 256
MAX_PATTERN_LEN = 512
MAX_BUDGET = {"dollars": 1e9, "tokens": 10**15, "minutes": 1e8}
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/~^-]{0,199}")
_SLUG_RE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class TaskDraft:
    """The form's fields parsed: ``body`` is the ``POST tasks`` body, ``errors`` per field."""

    body: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def suggest_id(title: str, prompt: str = "") -> str:
    """A task id from the title (or the prompt's first words): ``Fix the login bug`` ->
    ``fix-the-login-bug``."""
    words = (title.strip() or " ".join(prompt.split()[:6])).lower()
    slug = _SLUG_RE.sub("-", words).strip("-_")[:48].strip("-_")
    return slug


def split_list(text: str) -> list[str]:
    """One item per line or comma (the form's way of writing a list)."""
    return [item.strip() for line in text.splitlines() for item in line.split(",")
            if item.strip()]


def check_pattern(item: str) -> str | None:
    """Why ``item`` is not a scope glob the server takes, or None (scopes.validate_pattern)."""
    shown = item[:80]
    if len(item) > MAX_PATTERN_LEN:
        return f"{shown!r}... is longer than {MAX_PATTERN_LEN} characters"
    if _CONTROL_RE.search(item):
        return f"{shown!r} contains control characters"
    if "\\" in item:
        return f"{shown!r}: use '/' (backslashes are not allowed)"
    if item.startswith(("/", "~")):
        return f"{shown!r} must be relative to the repository root, e.g. src/**"
    pattern = unicodedata.normalize("NFC", item)
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if pattern.endswith("/"):
        pattern = pattern.rstrip("/") + "/**"
    segments = pattern.split("/")
    if ".." in segments:
        return f"{shown!r} must not contain '..'"
    if any(s in ("", ".") for s in segments):
        return f"{shown!r} has an empty or '.' segment"
    if segments[0] == ".git" or segments[:2] == ["**", ".git"]:
        return f"{shown!r}: .git is never in scope"
    if any(s != "**" and "**" in s for s in segments):
        return f"{shown!r}: '**' must be a whole segment, e.g. src/**/*.py"
    return None


def parse_budget(text: str) -> dict[str, Any] | None:
    """``dollars=2 minutes=30 tokens=100000`` (spaces or commas between) -> a budget body.

    ``$2``, ``30m``/``30min`` and ``100k``/``2M`` tokens are accepted as shorthands.
    Raises ValueError with what to type."""
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            key, value = _shorthand(item)
        key = key.strip().lower()
        if key not in ("dollars", "tokens", "minutes", "warn_at", "ceiling"):
            raise ValueError(f"unknown {key!r}: write dollars=, tokens= and/or minutes=")
        number = _number(value.strip().lstrip("$"), key)
        if key in MAX_BUDGET and not 0 <= number <= MAX_BUDGET[key]:
            raise ValueError(f"{key} must be between 0 and {MAX_BUDGET[key]:g}")
        if key == "tokens":
            if not float(number).is_integer():
                raise ValueError("tokens must be a whole number")
            number = int(number)
        if key == "warn_at" and not 0.01 <= number <= 1.0:
            raise ValueError("warn_at must be between 0.01 and 1")
        if key == "ceiling" and not 1.0 <= number <= 100.0:
            raise ValueError("ceiling must be between 1 and 100")
        if key in out:
            raise ValueError(f"{key} is given twice")
        out[key] = number
    if not {"dollars", "tokens", "minutes"} & out.keys():
        raise ValueError("set dollars=, tokens= and/or minutes=")
    return out


def _shorthand(item: str) -> tuple[str, str]:
    if item.startswith("$"):
        return "dollars", item[1:]
    match = re.fullmatch(r"([0-9.]+)(min|m)", item, re.I)
    if match:
        return "minutes", match.group(1)
    match = re.fullmatch(r"([0-9.]+)([kM]?)(tok|tokens)?", item)
    if match and (match.group(2) or match.group(3)):
        scale = {"": 1, "k": 1000, "M": 1_000_000}[match.group(2)]
        return "tokens", str(float(match.group(1)) * scale)
    raise ValueError(f"{item!r}: write dollars=2, minutes=30 or tokens=100000")


def _number(value: str, key: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{key} must be a number, not {value[:20]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} must be finite")
    return number


def check_task(fields: dict[str, str]) -> TaskDraft:
    """Check every field of the form (all of them, so every error shows at once)."""
    draft = TaskDraft()
    err = draft.errors
    body = draft.body
    get = {name: (fields.get(name) or "") for name in FIELDS}

    title = get["title"].strip()
    if len(title) > MAX_TITLE:
        err["title"] = f"at most {MAX_TITLE} characters ({len(title)} now)"
    elif title:
        body["title"] = title

    prompt = get["prompt"]
    if not prompt.strip():
        err["prompt"] = "say what the agent should do"
    elif len(prompt) > MAX_PROMPT:
        err["prompt"] = f"at most {MAX_PROMPT} characters ({len(prompt)} now)"
    elif "\x00" in prompt:
        err["prompt"] = "contains a NUL character"
    else:
        body["prompt"] = prompt

    task_id = get["id"].strip() or suggest_id(title, prompt)
    if not task_id:
        err["id"] = "give the task an id, e.g. fix-login"
    elif not NAME_RE.fullmatch(task_id):
        err["id"] = f"use {NAME_RULE}"
    else:
        body["id"] = task_id

    repo = get["repo"].strip()
    if not repo:
        err["repo"] = "the repository's directory on the server, e.g. /home/me/webshop"
    elif not repo.startswith("/") or "\x00" in repo or len(repo) > 4096:
        err["repo"] = "an absolute directory path (starting with /)"
    else:
        body["repo"] = repo

    base = get["base"].strip()
    if base:
        if _REF_RE.fullmatch(base) is None or ".." in base or "//" in base \
                or base.endswith((".lock", "/", ".")):
            err["base"] = "a branch, tag, commit or HEAD~n"
        else:
            body["base"] = base

    scope = split_list(get["scope"])
    problems = [p for p in (check_pattern(s) for s in scope) if p]
    if len(scope) > MAX_PATTERNS:
        err["scope"] = f"at most {MAX_PATTERNS} patterns"
    elif problems:
        err["scope"] = problems[0]
    elif scope:
        body["scope"] = scope

    requires = split_list(get["requires"])
    bad = [r for r in requires if not NAME_RE.fullmatch(r)]
    if len(requires) > MAX_REQUIRES:
        err["requires"] = f"at most {MAX_REQUIRES} capabilities"
    elif bad:
        err["requires"] = f"{bad[0][:40]!r}: use {NAME_RULE}"
    elif requires:
        body["requires"] = requires

    check = get["check"].strip()
    if check:
        try:
            argv = shlex.split(check)
        except ValueError as exc:
            err["check"] = f"{exc} (check your quotes)"
        else:
            if not argv or not argv[0].strip():
                err["check"] = "a command, e.g. pytest -q"
            elif len(argv) > MAX_CHECK_ARGS:
                err["check"] = f"at most {MAX_CHECK_ARGS} arguments"
            elif sum(len(a) for a in argv) > MAX_CHECK_CHARS:
                err["check"] = f"at most {MAX_CHECK_CHARS} characters"
            elif any("\x00" in a for a in argv):
                err["check"] = "contains a NUL character"
            else:
                body["check"] = argv

    try:
        budget = parse_budget(get["budget"])
    except ValueError as exc:
        err["budget"] = str(exc)
    else:
        if budget is not None:
            body["budget"] = budget
    if err:
        draft.body = {}
    return draft


# Which field a server error is about: the first word(s) of its detail name the field.
_FIELD_WORDS = (("task id", "id"), ("invalid name", "id"), ("title", "title"),
                ("prompt", "prompt"), ("repo", "repo"), ("invalid base", "base"),
                ("base", "base"), ("scope", "scope"), ("requires", "requires"),
                ("check", "check"), ("budget", "budget"), ("unknown dependency", "id"))


def field_of(status: int, error: str, detail: str) -> str | None:
    """The form field a server refusal is about (None: say it under the form)."""
    if status == 409 or error == "conflict":
        return "id"
    text = detail.strip().lower()
    for words, name in _FIELD_WORDS:
        if text.startswith(words) or f" {words} " in f" {text[:60]} ":
            return name
    return None
