"""The store is versioned: an old database is migrated in place and loses nothing."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hive_lab.core.schema import MIGRATIONS, SchemaTooNew, migrate
from hive_lab.core.store import Store

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "store" / "hive_v0.sql"


def _old_database(path: Path) -> Path:
    """A database exactly as the schema before versioning wrote it (user_version 0)."""
    db = sqlite3.connect(path)
    db.executescript(FIXTURE.read_text())
    db.close()
    return path


def test_a_database_from_before_versioning_is_migrated_and_keeps_everything(tmp_path: Path) -> None:
    path = _old_database(tmp_path / "hive.db")
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    before = {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
              for t in ("sessions", "events", "transitions")}
    raw.close()
    assert before["events"] and before["sessions"] and before["transitions"]

    store = Store(path)
    assert store.version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    for table, rows in before.items():
        assert store.db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() == rows
    # and the data is usable through the store's own API
    assert [e.summary for e in store.events(session="alpha", event="PreToolUse")] == [
        f"Write {i}" for i in range(5)]
    assert [s["name"] for s in store.sessions()] == ["alpha"]  # beta was removed
    assert store.transitions(session="alpha")[0]["name"] == "working"
    assert store.transcript_paths() == [("alpha", "/tmp/t.jsonl")]
    store.close()
    again = Store(path)  # opening twice changes nothing
    assert again.last_event_id() == 6
    again.close()


def test_a_new_database_starts_at_the_latest_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "new.db")
    assert store.version == len(MIGRATIONS) and store.last_event_id() == 0
    store.close()


def test_a_failing_migration_rolls_back_and_keeps_the_old_version(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    migrate(db, ("CREATE TABLE a (x INTEGER)",))
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, ("CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y); INSERT INTO nope VALUES (1)"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'b'").fetchone() is None


def test_a_database_from_a_newer_hive_lab_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(SchemaTooNew, match="upgrade Hive Lab"):
        Store(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 5
