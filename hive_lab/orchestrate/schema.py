"""DDL of the orchestration tables, for the store's ordered migrations (PRAGMA user_version).

The lead appends ``MIGRATION_SQL`` as one migration step; nothing here runs by itself. List and
dict columns hold JSON text. ``generation`` moves on every claim, so a starter whose lease ran
out cannot write over the one that took the task over.
"""
from __future__ import annotations

import sqlite3

MIGRATION_SQL: list[str] = [
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        prompt TEXT NOT NULL,
        repo TEXT NOT NULL,
        base TEXT NOT NULL DEFAULT 'HEAD',
        requires TEXT NOT NULL DEFAULT '[]',
        agent TEXT,
        scope TEXT NOT NULL DEFAULT '[]',
        shared TEXT NOT NULL DEFAULT '[]',
        depends_on TEXT NOT NULL DEFAULT '[]',
        priority INTEGER NOT NULL DEFAULT 0,
        check_argv TEXT,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        budget TEXT,
        state TEXT NOT NULL DEFAULT 'pending',
        state_reason TEXT NOT NULL DEFAULT '',
        state_since REAL NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        updated REAL NOT NULL DEFAULT 0,
        session TEXT,
        worktree TEXT,
        owner TEXT,
        lease_until REAL,
        generation INTEGER NOT NULL DEFAULT 0,
        flags TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state)",
    "CREATE INDEX IF NOT EXISTS tasks_repo ON tasks(repo)",
    """CREATE TABLE IF NOT EXISTS attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        session TEXT,
        profile TEXT,
        started REAL,
        ended REAL,
        outcome TEXT,
        reason TEXT NOT NULL DEFAULT '',
        cost REAL,
        rounds INTEGER NOT NULL DEFAULT 0,
        check_tail TEXT NOT NULL DEFAULT '',
        UNIQUE(task_id, n)
    )""",
    "CREATE INDEX IF NOT EXISTS attempts_session ON attempts(session)",
    """CREATE TABLE IF NOT EXISTS scope_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        glob TEXT NOT NULL,
        why TEXT NOT NULL DEFAULT '',
        session TEXT,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'refused')),
        created REAL NOT NULL,
        decided REAL,
        decided_by TEXT,
        note TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS scope_requests_task ON scope_requests(task_id, state)",
]

# The usage rows every control server publishes on a shared store (fleetusage.py), so fleet and
# profile budgets count the whole team's spend. Its own migration step (7).
FLEET_USAGE_SQL: list[str] = [
    """CREATE TABLE IF NOT EXISTS fleet_usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        node TEXT NOT NULL,
        session TEXT NOT NULL,
        agent TEXT NOT NULL,
        rowkey TEXT NOT NULL,
        at REAL NOT NULL,
        dollars REAL,
        tokens INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS fleet_usage_id ON fleet_usage(id, node)",
]


def apply(conn: sqlite3.Connection) -> None:  # for tests and scripts
    """Run the DDL on ``conn`` (idempotent). The server uses its own migration runner."""
    with conn:
        for stmt in MIGRATION_SQL:
            conn.execute(stmt)
