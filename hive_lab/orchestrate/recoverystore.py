"""What recovery must remember across a restart: parked providers, restarts, resume marks.

Backoff timers are not here: they are the task's ``not_before`` flag, stored with the task.
"""
from __future__ import annotations

import sqlite3

from .recovery import Park

# Appended to the store's MIGRATIONS as one step (core/schema.py); never edited after.
MIGRATION_SQL: list[str] = [
    """CREATE TABLE IF NOT EXISTS provider_parks (
        provider TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        since REAL NOT NULL,
        until REAL,
        probes INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE IF NOT EXISTS agent_restarts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS agent_restarts_at ON agent_restarts(at)",
    # One row per (task, parking): a session is told to continue at most once per parking.
    """CREATE TABLE IF NOT EXISTS resume_marks (
        task TEXT NOT NULL,
        park_since REAL NOT NULL,
        provider TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (task, park_since)
    )""",
]


def parks(conn: sqlite3.Connection) -> dict[str, Park]:
    rows = conn.execute("SELECT provider, kind, since, until, probes, source FROM provider_parks")
    return {r[0]: Park(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}


def save_park(conn: sqlite3.Connection, p: Park) -> None:
    with conn:
        conn.execute("INSERT OR REPLACE INTO provider_parks VALUES (?, ?, ?, ?, ?, ?)",
                     (p.provider, p.kind, p.since, p.until, p.probes, p.source[:200]))


def unpark(conn: sqlite3.Connection, provider: str) -> None:
    with conn:
        conn.execute("DELETE FROM provider_parks WHERE provider = ?", (provider,))


def record_restart(conn: sqlite3.Connection, task: str, attempt: int, at: float) -> None:
    with conn:
        conn.execute("INSERT INTO agent_restarts (task, attempt, at) VALUES (?, ?, ?)",
                     (task, attempt, at))
        conn.execute("DELETE FROM agent_restarts WHERE at < ?", (at - 7200.0,))


def restart_times(conn: sqlite3.Connection, since: float) -> list[float]:
    return [r[0] for r in conn.execute("SELECT at FROM agent_restarts WHERE at >= ?", (since,))]


def mark_resumed(conn: sqlite3.Connection, task: str, park_since: float, provider: str,
                 at: float) -> bool:
    """Claim the one resume of ``task`` for this parking; False if it was already resumed."""
    with conn:
        cur = conn.execute("INSERT OR IGNORE INTO resume_marks VALUES (?, ?, ?, ?)",
                           (task, park_since, provider, at))
    return cur.rowcount == 1


def resumed(conn: sqlite3.Connection, park_since: float) -> dict[str, float]:
    rows = conn.execute("SELECT task, at FROM resume_marks WHERE park_since = ?", (park_since,))
    return {r[0]: r[1] for r in rows}
