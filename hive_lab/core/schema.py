"""The store's schema as ordered migrations, tracked by SQLite's ``PRAGMA user_version``.

Migration N brings a database from version N-1 to N; each runs in its own transaction
together with the version bump, so a crash leaves the old version or the new one. A
database from before versioning has user_version 0 and the tables of migration 1 (which
uses ``IF NOT EXISTS`` for exactly that reason). New tables (orchestration, budgets, ...) are
appended here as new migrations; an existing migration is never edited.
"""
from __future__ import annotations

import sqlite3
from typing import Sequence

from ..orchestrate.recoverystore import MIGRATION_SQL as RECOVERY_SQL
from ..notify.schema import MIGRATION_SQL as NOTIFY_SQL
from ..orchestrate.schema import FLEET_USAGE_SQL, MIGRATION_SQL as ORCHESTRATION_SQL
from ..orchestrate.mergestore import MIGRATION_SQL as MERGES_SQL
from ..orchestrate.pipestore import MIGRATION_SQL as PIPELINES_SQL
from .errors import HiveError


class SchemaTooNew(HiveError):
    """The database was written by a newer Hive Lab; refusing to guess at its meaning."""

    error = "schema_too_new"


V1_BASE = """
CREATE TABLE IF NOT EXISTS sessions (
    name        TEXT PRIMARY KEY,
    agent       TEXT NOT NULL,
    created     REAL NOT NULL,
    meta        TEXT NOT NULL,
    state       TEXT,
    removed     REAL
);
CREATE TABLE IF NOT EXISTS events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    key              TEXT NOT NULL UNIQUE,
    session          TEXT NOT NULL,
    agent            TEXT NOT NULL,
    event            TEXT NOT NULL,
    tool             TEXT,
    tool_use_id      TEXT,
    agent_session_id TEXT,
    summary          TEXT NOT NULL DEFAULT '',
    fired            REAL NOT NULL,
    received         REAL NOT NULL,
    payload          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session, id);
CREATE INDEX IF NOT EXISTS events_by_name ON events (event, id);
CREATE TABLE IF NOT EXISTS transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    INTEGER NOT NULL,
    session     TEXT NOT NULL,
    name        TEXT NOT NULL,
    reason      TEXT,
    tool        TEXT,
    source      TEXT NOT NULL,
    since       REAL NOT NULL,
    exit_status INTEGER
);
CREATE INDEX IF NOT EXISTS transitions_by_session ON transitions (session, id);
"""

# 2: orchestration (tasks, attempts, scope requests); the DDL lives with its code.
V2_ORCHESTRATION = ";\n".join(ORCHESTRATION_SQL)
# 3: recovery (parked providers, the fleet's restarts, resume marks).
V3_RECOVERY = ";\n".join(RECOVERY_SQL)

# 4: budgets set live (fleet and profile limits; task budgets live with their task) and the
# marks of what the keeper did (warned, paused, ended), so a restart neither forgets a pause
# nor warns twice.
V4_BUDGETS = """
CREATE TABLE IF NOT EXISTS budgets (
    scope    TEXT NOT NULL,
    key      TEXT NOT NULL,
    limits   TEXT NOT NULL,
    updated  REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS budget_marks (
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    period   TEXT NOT NULL DEFAULT '',
    at       REAL NOT NULL,
    detail   TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, subject, period)
);
"""

# 5: notifications and the notifier's cursor; the DDL lives with its code.
V5_NOTIFICATIONS = ";\n".join(NOTIFY_SQL)

# 6: the ready queue, for the claim that picks the next ready task (claims.claim_next): a
# partial index, so claimed-and-started tasks leave it and the pick stays one index probe.
V6_READY_QUEUE = """
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (priority DESC, created, id) WHERE state = 'ready'
"""

# 7: the usage rows every control server publishes on a shared store, so fleet and profile
# budgets count the whole team's spend (orchestrate/fleetusage.py; unused on a lone node).
V7_FLEET_USAGE = ";\n".join(FLEET_USAGE_SQL)

# 8: the merge queue's items; the DDL lives with its code.
V8_MERGES = ";\n".join(MERGES_SQL)
# 9: review pipelines (the pipeline, its stage visits, findings, check runs).
V9_PIPELINES = ";\n".join(PIPELINES_SQL)

MIGRATIONS: tuple[str, ...] = (
    V1_BASE,
    V2_ORCHESTRATION,
    V3_RECOVERY,
    V4_BUDGETS,
    V5_NOTIFICATIONS,
    V6_READY_QUEUE,
    V7_FLEET_USAGE,
    V8_MERGES,
    V9_PIPELINES,
)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (our scripts hold no ``;`` in literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def migrate(db: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Apply every migration after the database's version; returns the version reached."""
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > len(migrations):
        raise SchemaTooNew(f"the store is at schema version {current}, this Hive Lab knows "
                           f"{len(migrations)}: upgrade Hive Lab or use another data_dir")
    for version in range(current + 1, len(migrations) + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migrations[version - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version:d}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return len(migrations)
