"""Persistence of tasks, attempts and scope requests on a ``sqlite3.Connection`` (schema.py).

Plain functions, no caching: the planner is level-triggered and re-reads every tick, and the
store stays the one source of truth across restarts.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from hive_lab.core.errors import BadRequest, Conflict

from .claims import guarded_update
from .errors import ScopeRequestNotFound, TaskExists, TaskNotFound
from .scopes import validate_pattern
from .tasks import ACTIVE, Attempt, Task

MAX_WHY = 2000


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _conn(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.row_factory = sqlite3.Row
    return conn


def insert_task(conn: sqlite3.Connection, task: Task) -> None:
    try:
        with conn:
            conn.execute(
                "INSERT INTO tasks (id, title, prompt, repo, base, requires, agent, scope, shared, "
                "depends_on, priority, check_argv, max_attempts, budget, state, state_reason, "
                "state_since, created, updated, session, worktree, flags) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (task.id, task.title, task.prompt, task.repo, task.base, _dumps(list(task.requires)),
                 task.agent, _dumps(list(task.scope)), _dumps(list(task.shared)),
                 _dumps(list(task.depends_on)), task.priority,
                 _dumps(list(task.check)) if task.check is not None else None, task.max_attempts,
                 _dumps(task.budget), task.state, task.state_reason, task.state_since,
                 task.created, task.created, task.session, task.worktree, _dumps(task.flags)))
    except sqlite3.IntegrityError:
        raise TaskExists(f"task {task.id} already exists", extra={"task": task.id}) from None


def get_task(conn: sqlite3.Connection, task_id: str, *, with_attempts: bool = True) -> Task:
    row = _conn(conn).execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    if row is None:
        raise TaskNotFound(f"no task {task_id}", extra={"task": task_id})
    return Task.from_row(row, list_attempts(conn, task_id) if with_attempts else ())


def list_tasks(conn: sqlite3.Connection, *, state: str | None = None, repo: str | None = None,
               session: str | None = None, with_attempts: bool = False) -> list[Task]:
    """Tasks by id, filtered (the REST filters); attempts on demand (the planner needs none)."""
    where, args = [], []
    for col, val in (("state", state), ("repo", repo), ("session", session)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    rows = _conn(conn).execute(sql, args).fetchall()
    if not with_attempts:
        return [Task.from_row(r) for r in rows]
    by_task: dict[str, list[Attempt]] = {}
    for a in _conn(conn).execute("SELECT * FROM attempts ORDER BY task_id, n"):
        by_task.setdefault(a["task_id"], []).append(Attempt.from_row(a))
    return [Task.from_row(r, by_task.get(r["id"], [])) for r in rows]


def save_task(conn: sqlite3.Connection, task: Task, now: float, *, generation: int | None = None) -> None:
    """Write the mutable fields of ``task`` back; guarded by ``generation`` when given."""
    fields = dict(
        title=task.title, priority=task.priority, scope=_dumps(list(task.scope)),
        shared=_dumps(list(task.shared)),
        check_argv=_dumps(list(task.check)) if task.check is not None else None,
        max_attempts=task.max_attempts, budget=_dumps(task.budget), state=task.state,
        state_reason=task.state_reason, state_since=task.state_since, session=task.session,
        worktree=task.worktree, flags=_dumps(task.flags), updated=now)
    if generation is not None:
        guarded_update(conn, task.id, generation, **fields)
        return
    cols = sorted(fields)
    with conn:
        cur = conn.execute(f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                           [fields[c] for c in cols] + [task.id])
    if cur.rowcount != 1:
        raise TaskNotFound(f"no task {task.id}", extra={"task": task.id})


def delete_task(conn: sqlite3.Connection, task_id: str) -> None:
    """Delete a task that is not running (its attempts and scope requests go with it)."""
    with conn:
        row = conn.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise TaskNotFound(f"no task {task_id}", extra={"task": task_id})
        if row[0] in ACTIVE:
            raise Conflict(f"task {task_id} is {row[0]}; cancel it first", extra={"task": task_id})
        dependants = [r[0] for r in conn.execute(
            "SELECT tasks.id FROM tasks, json_each(tasks.depends_on) WHERE json_each.value = ?",
            (task_id,))]
        if dependants:
            raise Conflict(f"tasks {', '.join(sorted(dependants))} depend on {task_id}",
                           extra={"task": task_id, "dependants": sorted(dependants)})
        conn.execute("DELETE FROM attempts WHERE task_id = ?", (task_id,))
        conn.execute("DELETE FROM scope_requests WHERE task_id = ?", (task_id,))
        conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))


# ---------------------------------------------------------------- attempts


def start_attempt(conn: sqlite3.Connection, task_id: str, session: str | None, profile: str | None,
                  now: float) -> Attempt:
    """A new attempt numbered after the last one (n = 1, 2, ...)."""
    with conn:
        n = conn.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE task_id = ?",
                         (task_id,)).fetchone()[0]
        cur = conn.execute(
            "INSERT INTO attempts (task_id, n, session, profile, started) VALUES (?,?,?,?,?)",
            (task_id, n, session, profile, now))
    return Attempt(task_id=task_id, n=n, session=session, profile=profile, started=now, id=cur.lastrowid)


def update_attempt(conn: sqlite3.Connection, attempt: Attempt) -> None:
    with conn:
        conn.execute(
            "UPDATE attempts SET session=?, ended=?, outcome=?, reason=?, cost=?, rounds=?, "
            "check_tail=? WHERE task_id = ? AND n = ?",
            (attempt.session, attempt.ended, attempt.outcome, attempt.reason, attempt.cost,
             attempt.rounds, attempt.check_tail, attempt.task_id, attempt.n))


def list_attempts(conn: sqlite3.Connection, task_id: str | None = None) -> list[Attempt]:
    sql, args = "SELECT * FROM attempts", tuple[str, ...]()
    if task_id is not None:
        sql, args = sql + " WHERE task_id = ?", (task_id,)
    return [Attempt.from_row(r) for r in _conn(conn).execute(sql + " ORDER BY task_id, n", args)]


# ---------------------------------------------------------------- scope requests


@dataclass(frozen=True)
class ScopeRequest:
    id: int
    task_id: str
    glob: str
    why: str
    session: str | None
    state: str
    created: float
    decided: float | None
    decided_by: str | None
    note: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _req(row: sqlite3.Row) -> ScopeRequest:
    return ScopeRequest(**{k: row[k] for k in row.keys()})


def add_scope_request(conn: sqlite3.Connection, task_id: str, glob: Any, why: Any,
                      session: str | None, now: float) -> ScopeRequest:
    """Record an agent's request for more scope (the glob is validated like a scope pattern)."""
    pattern = validate_pattern(glob, "requested scope")
    if not isinstance(why, str) or len(why) > MAX_WHY or "\x00" in why:
        raise BadRequest(f"why must be a string of at most {MAX_WHY} characters")
    get_task(conn, task_id, with_attempts=False)
    with conn:
        cur = conn.execute(
            "INSERT INTO scope_requests (task_id, glob, why, session, created) VALUES (?,?,?,?,?)",
            (task_id, pattern, why, session, now))
    return get_scope_request(conn, int(cur.lastrowid or 0))


def get_scope_request(conn: sqlite3.Connection, req_id: int) -> ScopeRequest:
    row = _conn(conn).execute("SELECT * FROM scope_requests WHERE id = ?", (req_id,)).fetchone()
    if row is None:
        raise ScopeRequestNotFound(f"no scope request {req_id}")
    return _req(row)


def list_scope_requests(conn: sqlite3.Connection, task_id: str | None = None,
                        state: str | None = None) -> list[ScopeRequest]:
    where, args = [], []
    for col, val in (("task_id", task_id), ("state", state)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    sql = "SELECT * FROM scope_requests" + (" WHERE " + " AND ".join(where) if where else "")
    return [_req(r) for r in _conn(conn).execute(sql + " ORDER BY id", args)]


def decide_scope_request(conn: sqlite3.Connection, req_id: int, approve: bool, by: str,
                         note: str, now: float) -> ScopeRequest:
    """Approve (the glob joins the task's scope, in the same transaction) or refuse, once."""
    with conn:
        row = _conn(conn).execute("SELECT * FROM scope_requests WHERE id = ?", (req_id,)).fetchone()
        if row is None:
            raise ScopeRequestNotFound(f"no scope request {req_id}")
        if row["state"] != "pending":
            raise Conflict(f"scope request {req_id} is already {row['state']}")
        conn.execute("UPDATE scope_requests SET state = ?, decided = ?, decided_by = ?, note = ? "
                     "WHERE id = ?", ("approved" if approve else "refused", now, by, note[:MAX_WHY], req_id))
        if approve:
            scope = json.loads(conn.execute("SELECT scope FROM tasks WHERE id = ?",
                                            (row["task_id"],)).fetchone()[0])
            if row["glob"] not in scope:
                scope.append(row["glob"])
            conn.execute("UPDATE tasks SET scope = ?, updated = ? WHERE id = ?",
                         (json.dumps(scope), now, row["task_id"]))
    return get_scope_request(conn, req_id)
