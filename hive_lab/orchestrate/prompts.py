"""What the agent is told: the first prompt of a task, and the next one after a failed check.

The agent must know its boundaries before it hits the guard (a gate without a reason traps
it), what "finished" means (stop: Hive Lab runs the check), and how to ask when stuck.
"""
from __future__ import annotations

import re
import shlex
from typing import Sequence

from .tasks import Task

MAX_TAIL_CHARS = 4000
MAX_TAIL_LINES = 80
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def describe_pattern(pattern: str) -> str:
    """One glob in plain words."""
    if pattern == "**":
        return "any file in the repository"
    if pattern.endswith("/**") and "*" not in pattern[:-3] and "?" not in pattern[:-3] and "[" not in pattern[:-3]:
        return f"any file under {pattern[:-2]}"
    if not any(c in pattern for c in "*?["):
        return f"the file {pattern}"
    if "/" not in pattern:
        return f"top-level files matching {pattern}"
    return f"files matching {pattern}"


def scope_text(task: Task) -> str:
    if not task.scope:
        return ("This task is read-only: do not create, edit or delete any file. "
                "Report what you find in your answer instead.")
    lines = ["You may change only these files (paths relative to the repository root):"]
    lines += [f"- {describe_pattern(p)} ({p})" for p in task.scope]
    if task.shared:
        lines.append("You may also touch these shared files, which other tasks may change too:")
        lines += [f"- {describe_pattern(p)} ({p})" for p in task.shared]
    lines.append("Writes anywhere else are refused.")
    return "\n".join(lines)


def _check_words(check: Sequence[str] | None) -> str:
    if not check:
        return "The task counts as done when your turn ends."
    return (f"Hive Lab will then run `{shlex.join(check)}` in your worktree; if it fails you get "
            "its output and another round.")


def first_prompt(task: Task) -> str:
    """The task's prompt, its scope in plain words, and what to do when finished or stuck."""
    ask = f'hive-lab task request-scope {task.id} "<glob>" --why "<reason>"'
    return "\n\n".join([
        task.prompt.strip(),
        f"--- Hive Lab task {task.id} (branch {task.branch}) ---",
        scope_text(task),
        "When you are finished: commit your work on this branch and stop (end your turn). "
        + _check_words(task.check),
        f"If you are stuck because you need a file outside your scope, run `{ask}` and stop; "
        "a person decides and you will be told. Do not work around the guard.",
    ])


def tail(output: str, max_chars: int = MAX_TAIL_CHARS, max_lines: int = MAX_TAIL_LINES) -> str:
    """The end of a check's output, without terminal escapes or control characters, bounded."""
    text = _CONTROL_RE.sub("", _ANSI_RE.sub("", output.replace("\r\n", "\n")))
    lines = text.rstrip("\n").split("\n")
    cut = len(lines) > max_lines
    text = "\n".join(lines[-max_lines:])
    if len(text) > max_chars:
        text, cut = text[-max_chars:], True
    return ("[... earlier output cut ...]\n" if cut else "") + text


def next_prompt(task: Task, output: str, exit_code: int | None, round_no: int, max_rounds: int) -> str:
    """The prompt after a failed check: what failed, the tail of its output, rounds left."""
    status = "timed out" if exit_code is None else f"exited with status {exit_code}"
    left = max(max_rounds - round_no, 0)
    return "\n\n".join([
        f"The check `{shlex.join(task.check or ())}` {status} (round {round_no} of {max_rounds}). "
        "The end of its output:",
        "```\n" + tail(output) + "\n```",
        f"Fix the cause, staying within your scope, then stop again. {left} round(s) left after this one.",
    ])
