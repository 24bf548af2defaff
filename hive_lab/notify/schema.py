"""DDL of the notification tables, appended by ``core/schema.py`` as one migration step.

``delivered`` holds the channel ids already done (JSON list): ``"<channel>"`` for the first
sending, ``"<channel>+esc"`` for the escalation. ``next_try`` is set while something is still to
be delivered, so a restart finds the pending ones with one indexed query. ``notify_cursor`` is
the last event id the notifier has looked at (the baseline: nothing before it is notified).
"""
from __future__ import annotations

MIGRATION_SQL: list[str] = [
    """CREATE TABLE IF NOT EXISTS notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        session TEXT,
        task TEXT,
        title TEXT NOT NULL,
        body TEXT NOT NULL DEFAULT '',
        since REAL,
        event_id INTEGER,
        created REAL NOT NULL,
        read REAL,
        escalated REAL,
        resolved REAL,
        delivered TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL,
        last_error TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS notifications_read ON notifications(read, id)",
    "CREATE INDEX IF NOT EXISTS notifications_next_try ON notifications(next_try)",
    """CREATE TABLE IF NOT EXISTS notify_cursor (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
]
