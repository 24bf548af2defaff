"""The backstop: after each git refresh, every changed file of a task is checked against its
scope. No spelling defeats it, and it covers agents without hooks (Aider, a plain shell)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from . import scopes
from .guard import show


@dataclass(frozen=True)
class Violation:
    """One changed file the task may not change. ``owner``: the active task whose scope has it."""

    path: str
    reason: str
    owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def audit(changed_files: Iterable[str], task: Any, others: Iterable[Any]) -> list[Violation]:
    """Violations among ``changed_files`` (repo-relative, committed or not), sorted by path.

    Rules as the guard's: read-only tasks change nothing; ``shared`` patterns are allowed;
    a file in another active task's scope is a violation naming that task; else it must match
    the task's scope.
    """
    rivals = [o for o in others if o.id != task.id]
    out: list[Violation] = []
    for raw in sorted(set(changed_files)):
        path = scopes.nfc(raw)
        if not task.scope:
            out.append(Violation(path, f"task {task.id} is read-only but {show(path)} changed"))
            continue
        if scopes.first_match(path, task.shared):
            continue
        owner = scopes.owner_of(path, rivals)
        if owner is not None:
            out.append(Violation(path, f"{show(path)} is in the scope of active task {owner[0]} "
                                       f"({show(owner[1])})", owner[0]))
        elif scopes.first_match(path, task.scope) is None:
            out.append(Violation(path, f"{show(path)} is outside the scope of task {task.id} "
                                       f"({', '.join(task.scope)})"))
    return out
