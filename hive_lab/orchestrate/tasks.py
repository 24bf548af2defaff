"""Tasks: the record, its state machine, and the parsing of POST/PATCH bodies at the edge.

Everything a user (or an agent, or a script) sends is checked here before it reaches the store,
git or tmux, so the rest of orchestration can trust a ``TaskSpec``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from hive_lab.core.errors import BadRequest
from hive_lab.core.names import validate_name

from .edge import parse_list
from .budgets import parse_task_budget
from .errors import DependencyCycle, IllegalTransition, UnknownDependency
from .scopes import validate_patterns

# ---------------------------------------------------------------- states

PENDING, READY, RUNNING, WAITING, CHECKING, BLOCKED, DONE, FAILED, CANCELED = (
    "pending", "ready", "running", "waiting", "checking", "blocked", "done", "failed", "canceled")
PAUSED = "paused"  # a budget is used up (reason ``budget...``): raising it resumes the task
STATES = (PENDING, READY, RUNNING, WAITING, CHECKING, BLOCKED, PAUSED, DONE, FAILED, CANCELED)
TERMINAL = frozenset({DONE, CANCELED})
#: States in which a task holds its scope (its agent has a session, even if paused).
ACTIVE = frozenset({RUNNING, WAITING, CHECKING, BLOCKED, PAUSED})

#: Legal moves. Why each exists:
#: pending->ready deps done; ready->pending a dependency was reopened; ready->running started;
#: running<->waiting the agent waits for the user; ->checking its turn ended; checking->running
#: the check failed and the next round begins; ->blocked a scope request or a violation needs a
#: person; blocked->running approved; ->ready the session died and the task may be re-tried;
#: failed->ready a person retries it; running/waiting->paused a budget ran out, paused->running
#: it was raised (paused->ready: raised after the ceiling ended the session); anything not
#: terminal may be canceled or fail.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({READY, FAILED, CANCELED}),
    READY: frozenset({PENDING, RUNNING, FAILED, CANCELED}),
    RUNNING: frozenset({WAITING, CHECKING, BLOCKED, PAUSED, READY, DONE, FAILED, CANCELED}),
    WAITING: frozenset({RUNNING, CHECKING, BLOCKED, PAUSED, READY, FAILED, CANCELED}),
    PAUSED: frozenset({RUNNING, READY, FAILED, CANCELED}),
    CHECKING: frozenset({RUNNING, BLOCKED, READY, DONE, FAILED, CANCELED}),
    BLOCKED: frozenset({RUNNING, READY, CHECKING, DONE, FAILED, CANCELED}),
    FAILED: frozenset({READY, CANCELED}),
    DONE: frozenset(),
    CANCELED: frozenset(),
}

MAX_PROMPT = 100_000
MAX_TITLE = 200
MAX_REASON = 500
MAX_DEPS = 100
MAX_REQUIRES = 32
MAX_CHECK_ARGS = 64
MAX_CHECK_CHARS = 8192
MAX_BUDGET_CHARS = 4096
PRIORITY_RANGE = (-1_000_000, 1_000_000)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/~^-]{0,199}")


# ---------------------------------------------------------------- records


@dataclass
class Attempt:
    """One run of a task by one session."""

    task_id: str
    n: int
    session: str | None = None
    profile: str | None = None
    started: float | None = None
    ended: float | None = None
    outcome: str | None = None  # None while it runs; done / check_failed / died / canceled / ...
    reason: str = ""
    cost: float | None = None
    rounds: int = 0
    check_tail: str = ""
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Attempt":
        keys = cls.__dataclass_fields__.keys()
        return cls(**{k: row[k] for k in keys if k in _keys(row)})


@dataclass
class Task:
    """A unit of work with boundaries. ``repo`` is the repository root (resolved at the edge)."""

    id: str
    prompt: str
    repo: str
    title: str = ""
    base: str = "HEAD"
    requires: tuple[str, ...] = ()
    agent: str | None = None
    scope: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    priority: int = 0
    check: tuple[str, ...] | None = None
    max_attempts: int = 3
    budget: dict[str, Any] | None = None
    state: str = PENDING
    state_reason: str = "created"
    state_since: float = 0.0
    created: float = 0.0
    session: str | None = None
    worktree: str | None = None
    owner: str | None = None
    lease_until: float | None = None
    generation: int = 0
    flags: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    why: str | None = None

    @property
    def branch(self) -> str:
        return f"hive/{self.id}"

    @property
    def read_only(self) -> bool:
        return not self.scope

    def to_json(self) -> dict[str, Any]:
        """The API shape: state as ``{name, reason, since}``, attempts as records."""
        return {
            "id": self.id, "title": self.title, "prompt": self.prompt, "repo": self.repo,
            "base": self.base, "branch": self.branch, "requires": list(self.requires),
            "agent": self.agent, "scope": list(self.scope), "shared": list(self.shared),
            "depends_on": list(self.depends_on), "priority": self.priority,
            "check": list(self.check) if self.check is not None else None,
            "max_attempts": self.max_attempts, "budget": self.budget,
            "state": {"name": self.state, "reason": self.state_reason, "since": self.state_since},
            "created": self.created, "session": self.session, "worktree": self.worktree,
            "generation": self.generation, "owner": self.owner, "flags": self.flags,
            "attempts": [a.to_json() for a in self.attempts], "why": self.why,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], attempts: Iterable[Attempt] = ()) -> "Task":
        """From a ``tasks`` row (see schema.py): list/dict columns are JSON text."""
        def j(key: str, default: Any) -> Any:
            raw = row[key] if key in _keys(row) else None
            return default if raw is None else json.loads(raw)
        check = j("check_argv", None)
        return cls(
            id=row["id"], prompt=row["prompt"], repo=row["repo"], title=row["title"] or "",
            base=row["base"], requires=tuple(j("requires", [])), agent=row["agent"],
            scope=tuple(j("scope", [])), shared=tuple(j("shared", [])),
            depends_on=tuple(j("depends_on", [])), priority=int(row["priority"]),
            check=tuple(check) if check is not None else None,
            max_attempts=int(row["max_attempts"]), budget=j("budget", None),
            state=row["state"], state_reason=row["state_reason"] or "",
            state_since=float(row["state_since"] or 0.0), created=float(row["created"] or 0.0),
            session=row["session"], worktree=row["worktree"], owner=row["owner"],
            lease_until=row["lease_until"], generation=int(row["generation"] or 0),
            flags=j("flags", {}), attempts=list(attempts),
        )


def _keys(row: Mapping[str, Any]) -> Iterable[str]:
    return row.keys() if hasattr(row, "keys") else ()


def transition(task: Task, new_state: str, reason: str, now: float) -> Task:
    """A copy of ``task`` in ``new_state``; IllegalTransition if the machine forbids the move.

    Pure: the caller persists it (guarded by generation) and publishes ``TaskChanged``.
    """
    if new_state not in TRANSITIONS:
        raise BadRequest(f"unknown task state {str(new_state)[:40]!r}; one of {list(STATES)}")
    if new_state not in TRANSITIONS[task.state]:
        raise IllegalTransition(
            f"task {task.id} cannot go from {task.state} to {new_state}",
            extra={"task": task.id, "from": task.state, "to": new_state})
    reason = _CONTROL_RE.sub(" ", str(reason))[:MAX_REASON]
    return replace(task, state=new_state, state_reason=reason, state_since=now)


# ---------------------------------------------------------------- edge parsing


def _text(value: Any, what: str, cap: int, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{what} must be a non-empty string" if required else f"{what} must be a string")
    if len(value) > cap:
        raise BadRequest(f"{what} is {len(value)} characters; at most {cap}")
    if "\x00" in value:
        raise BadRequest(f"{what} contains a NUL character")
    return value


def parse_ref(value: Any) -> str:
    """A git revision the way users write it (``HEAD``, ``main``, ``v1.2``, ``HEAD~2``), safe
    to pass to git as one argument: no leading ``-``, no ``..``, no spaces or control chars."""
    if value is None:
        return "HEAD"
    if not isinstance(value, str) or _REF_RE.fullmatch(value) is None or ".." in value \
            or "//" in value or value.endswith((".lock", "/", ".")):
        raise BadRequest(f"invalid base {str(value)[:80]!r}: a branch, tag, commit or HEAD~n")
    return value


def parse_int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{what} must be an integer")
    if not lo <= value <= hi:
        raise BadRequest(f"{what} must be between {lo} and {hi}")
    return value


def parse_names(value: Any, what: str, cap: int) -> tuple[str, ...]:
    return parse_list(value, what, cap, validate_name, "names")


def parse_check(value: Any) -> tuple[str, ...] | None:
    """``check`` is an argv (run without a shell) or null: a string is refused, not split."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BadRequest("check must be a non-empty list of strings (an argv) or null")
    if len(value) > MAX_CHECK_ARGS:
        raise BadRequest(f"check has {len(value)} arguments; at most {MAX_CHECK_ARGS}")
    if not all(isinstance(a, str) for a in value):
        raise BadRequest("check arguments must all be strings")
    if any("\x00" in a for a in value) or not value[0].strip():
        raise BadRequest("check arguments must not contain NUL, and argv[0] must not be empty")
    if sum(len(a) for a in value) > MAX_CHECK_CHARS:
        raise BadRequest(f"check is longer than {MAX_CHECK_CHARS} characters")
    return tuple(value)


def parse_budget(value: Any) -> dict[str, Any] | None:
    """``{"dollars", "tokens", "minutes", "warn_at", "ceiling"}`` (see budgets.py) or null."""
    return parse_task_budget(value)


def validate_repo(raw: Any, find_repo: Callable[[str], str | None]) -> tuple[str, str]:
    """An absolute directory inside a git repository: (the directory, the repository's top)."""
    if not isinstance(raw, str) or not raw.startswith("/") or "\x00" in raw or len(raw) > 4096:
        raise BadRequest("repo must be an absolute directory path")
    cwd = os.path.normpath(raw)
    if not os.path.isdir(cwd):
        raise BadRequest(f"repo {cwd[:200]!r} is not a directory")
    root = find_repo(cwd)
    if not root:
        raise BadRequest(f"repo {cwd[:200]!r} is not inside a git repository")
    return cwd, root


def _body(body: Any, allowed: Iterable[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} body must be a JSON object")
    unknown = sorted(str(k)[:40] for k in body if k not in set(allowed))
    if unknown:
        raise BadRequest(f"unknown {what} field(s): {unknown}; allowed: {sorted(allowed)}")
    return body


SPEC_FIELDS = ("id", "title", "prompt", "repo", "base", "requires", "agent", "scope", "shared",
               "depends_on", "priority", "check", "max_attempts", "budget")


@dataclass(frozen=True)
class TaskSpec:
    """A validated ``POST tasks`` body. ``repo`` is the repository root; ``cwd`` what was sent."""

    id: str
    title: str
    prompt: str
    repo: str
    cwd: str
    base: str = "HEAD"
    requires: tuple[str, ...] = ()
    agent: str | None = None
    scope: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    priority: int = 0
    check: tuple[str, ...] | None = None
    max_attempts: int = 3
    budget: dict[str, Any] | None = None

    @classmethod
    def parse(cls, body: Any, find_repo: Callable[[str], str | None]) -> "TaskSpec":
        """Validate a POST body; ``find_repo(dir)`` returns the git top-level of ``dir`` or None
        (the server passes gitwatch's lookup, tests a lambda)."""
        b = _body(body, SPEC_FIELDS, "task")
        task_id = validate_name(b.get("id"), "task id")
        prompt = _text(b.get("prompt"), "prompt", MAX_PROMPT, required=True)
        title = _text(b.get("title"), "title", MAX_TITLE, required=False)
        title = _CONTROL_RE.sub(" ", title).strip() or prompt.strip().splitlines()[0][:80]
        cwd, root = validate_repo(b.get("repo"), find_repo)
        depends_on = parse_names(b.get("depends_on"), "depends_on", MAX_DEPS)
        if task_id in depends_on:
            raise DependencyCycle(f"task {task_id} cannot depend on itself",
                                  extra={"cycle": [task_id, task_id]})
        agent = b.get("agent")
        return cls(
            id=task_id, title=title, prompt=prompt, repo=os.path.realpath(root), cwd=cwd,
            base=parse_ref(b.get("base")),
            requires=tuple(sorted(parse_names(b.get("requires"), "requires", MAX_REQUIRES))),
            agent=None if agent is None else validate_name(agent, "agent"),
            scope=validate_patterns(b.get("scope"), "scope"),
            shared=validate_patterns(b.get("shared"), "shared"),
            depends_on=depends_on,
            priority=0 if b.get("priority") is None else parse_int(b["priority"], "priority", *PRIORITY_RANGE),
            check=parse_check(b.get("check")),
            max_attempts=3 if b.get("max_attempts") is None else parse_int(b["max_attempts"], "max_attempts", 1, 20),
            budget=parse_budget(b.get("budget")),
        )

    def to_task(self, now: float) -> Task:
        """The new task record; ``pending`` until the planner sees its dependencies done."""
        return Task(
            id=self.id, title=self.title, prompt=self.prompt, repo=self.repo, base=self.base,
            requires=self.requires, agent=self.agent, scope=self.scope, shared=self.shared,
            depends_on=self.depends_on, priority=self.priority, check=self.check,
            max_attempts=self.max_attempts, budget=self.budget, state=PENDING,
            state_reason="created", state_since=now, created=now,
        )


PATCH_FIELDS = ("priority", "scope", "check", "max_attempts", "state", "budget")


@dataclass(frozen=True)
class TaskPatch:
    """A validated ``PATCH tasks/{id}`` body; only the fields present are set (``check`` may
    be set to None, hence the ``fields`` set)."""

    fields: frozenset[str]
    priority: int = 0
    scope: tuple[str, ...] = ()
    check: tuple[str, ...] | None = None
    max_attempts: int = 3
    state: str | None = None
    budget: dict[str, Any] | None = None  # raising it resumes a task paused by its budget

    @classmethod
    def parse(cls, body: Any) -> "TaskPatch":
        b = _body(body, PATCH_FIELDS, "task patch")
        if not b:
            raise BadRequest(f"task patch is empty; fields: {list(PATCH_FIELDS)}")
        kw: dict[str, Any] = {}
        if "priority" in b:
            kw["priority"] = parse_int(b["priority"], "priority", *PRIORITY_RANGE)
        if "scope" in b:
            kw["scope"] = validate_patterns(b["scope"], "scope")
        if "check" in b:
            kw["check"] = parse_check(b["check"])
        if "max_attempts" in b:
            kw["max_attempts"] = parse_int(b["max_attempts"], "max_attempts", 1, 20)
        if "budget" in b:
            kw["budget"] = parse_budget(b["budget"])
        if "state" in b:
            if b["state"] != CANCELED:
                raise BadRequest("state can only be set to 'canceled' (the rest follows the work)")
            kw["state"] = CANCELED
        return cls(fields=frozenset(b), **kw)

    def apply(self, task: Task, now: float, reason: str = "canceled by request") -> Task:
        """The patched copy; canceling goes through ``transition`` (so done stays done)."""
        changes = {k: getattr(self, k) for k in self.fields if k != "state"}
        out = replace(task, **changes)
        if self.state == CANCELED:
            out = transition(out, CANCELED, reason, now)
        return out


# ---------------------------------------------------------------- dependencies


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]`` if there is one (lowest ids tried first).

    Iterative DFS with colours, so a long chain cannot hit the recursion limit.
    """
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = BLACK
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop(0)
            c = colour.get(nxt, BLACK)  # unknown ids are not ours to follow
            if c == GREY:
                return path[path.index(nxt):] + [nxt]
            if c == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append((nxt, sorted(graph.get(nxt, ()))))
    return None


def check_dependencies(new: TaskSpec | Task, existing: Iterable[Task]) -> None:
    """Refuse a new (or changed) task whose dependencies are unknown or close a cycle."""
    graph: dict[str, tuple[str, ...]] = {t.id: tuple(t.depends_on) for t in existing}
    missing = sorted(d for d in new.depends_on if d not in graph)
    if missing:
        raise UnknownDependency(f"task {new.id} depends on unknown task(s): {', '.join(missing)}",
                                extra={"missing": missing})
    graph[new.id] = tuple(new.depends_on)
    cycle = find_cycle(graph)
    if cycle:
        raise DependencyCycle(f"dependency cycle: {' -> '.join(cycle)}", extra={"cycle": cycle})
