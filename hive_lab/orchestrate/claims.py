"""The atomic claim that makes a task start at most once, even across restarts.

A claim is one conditional UPDATE: it succeeds only if the task is ``ready`` and unowned (or
its owner's lease ran out), and it moves ``generation`` on. Whoever then starts the session
writes with ``guarded_update``, which refuses if the generation moved (someone else took over
after this owner's lease expired). SQLite serialises writers, so of two racing claims exactly
one matches the WHERE clause. On the shared store (PostgreSQL, several control servers) the row
is picked with ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the same UPDATE: a claimer never
waits on a row another is claiming, and PostgreSQL re-checks the condition on the locked row,
so exactly one of the racers moves the generation.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from .errors import StaleGeneration

_CLAIMABLE = ("state = 'ready' AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?)")


def _skip_locked(conn: Any) -> str:
    """The row-lock clause for the dialect (SQLite has none: it serialises writers)."""
    return " FOR UPDATE SKIP LOCKED" if getattr(conn, "dialect", "sqlite") == "postgresql" else ""

_UPDATABLE = frozenset({
    "title", "priority", "scope", "shared", "check_argv", "max_attempts", "budget", "state",
    "state_reason", "state_since", "session", "worktree", "flags", "updated", "depends_on",
    "agent", "requires",
})


def claim(conn: sqlite3.Connection, task_id: str, owner: str, now: float, lease_s: float) -> int | None:
    """Claim ``task_id`` for ``owner`` until ``now + lease_s``; the new generation, or None."""
    with conn:
        row = conn.execute(
            "UPDATE tasks SET owner = ?, lease_until = ?, generation = generation + 1, updated = ? "
            f"WHERE id = (SELECT id FROM tasks WHERE id = ? AND {_CLAIMABLE}{_skip_locked(conn)}) "
            f"AND {_CLAIMABLE} RETURNING generation",
            (owner, now + lease_s, now, task_id, now, now)).fetchone()
    return None if row is None else int(row[0])


def claim_next(conn: Any, owner: str, now: float, lease_s: float,
               among: Sequence[str] | None = None) -> tuple[str, int] | None:
    """Claim the next ready task (highest priority, then oldest); ``(id, generation)`` or None.

    ``among`` limits the pick to those ids (the ones the planner allows). This is the queue
    form a claimer without a plan uses (the claims benchmark, a worker draining the board).
    """
    only, args = "", [owner, now + lease_s, now, now]
    if among is not None:
        if not among:
            return None
        only = f" AND id IN ({', '.join('?' for _ in among)})"
        args += list(among)
    args.append(now)
    with conn:
        row = conn.execute(
            "UPDATE tasks SET owner = ?, lease_until = ?, generation = generation + 1, updated = ? "
            f"WHERE id = (SELECT id FROM tasks WHERE {_CLAIMABLE}{only} "
            f"ORDER BY priority DESC, created, id LIMIT 1{_skip_locked(conn)}) AND {_CLAIMABLE} "
            "RETURNING id, generation", args).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def renew_owned(conn: Any, owner: str, states: Sequence[str], now: float, lease_s: float) -> int:
    """Extend the lease of every task ``owner`` holds in ``states``; how many (one statement)."""
    with conn:
        cur = conn.execute(
            f"UPDATE tasks SET lease_until = ? WHERE owner = ? AND state IN "
            f"({', '.join('?' for _ in states)})", [now + lease_s, owner, *states])
    return int(cur.rowcount)


def renew(conn: sqlite3.Connection, task_id: str, owner: str, generation: int, now: float,
          lease_s: float) -> bool:
    """Extend a held lease; False if it is no longer ours."""
    with conn:
        cur = conn.execute(
            "UPDATE tasks SET lease_until = ? WHERE id = ? AND owner = ? AND generation = ?",
            (now + lease_s, task_id, owner, generation))
    return cur.rowcount == 1


def release(conn: sqlite3.Connection, task_id: str, generation: int) -> bool:
    """Give a claim up (the start failed before a session existed)."""
    with conn:
        cur = conn.execute(
            "UPDATE tasks SET owner = NULL, lease_until = NULL WHERE id = ? AND generation = ?",
            (task_id, generation))
    return cur.rowcount == 1


def guarded_update(conn: sqlite3.Connection, task_id: str, generation: int, **fields: Any) -> None:
    """Write ``fields`` only if the task's generation is still ``generation``.

    Raises StaleGeneration otherwise; the caller must then leave the task alone (and stop a
    session it started, which the new owner will not know about).
    """
    bad = set(fields) - _UPDATABLE
    if bad or not fields:
        raise ValueError(f"cannot update {sorted(bad) or 'nothing'}")
    cols = sorted(fields)
    sets = ", ".join(f"{c} = ?" for c in cols)
    with conn:
        cur = conn.execute(f"UPDATE tasks SET {sets} WHERE id = ? AND generation = ?",
                           [fields[c] for c in cols] + [task_id, generation])
    if cur.rowcount != 1:
        raise StaleGeneration(f"task {task_id} was claimed by someone else (generation moved)",
                              extra={"task": task_id, "generation": generation})
