"""The merge queue's table: one row per offered branch (the record's other fields as JSON).

``generation`` moves on every change a person (or a pipeline) makes, so the driver's writes,
which are compare-and-swap on it, never undo an approve, reject or cancel made meanwhile.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import replace

from ..core.errors import NotFound
from .mergeplan import MergeItem

# Appended to the store's MIGRATIONS as one step (core/schema.py); never edited after.
MIGRATION_SQL: list[str] = [
    """CREATE TABLE IF NOT EXISTS merges (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        repo TEXT NOT NULL,
        branch TEXT NOT NULL,
        base TEXT NOT NULL,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX IF NOT EXISTS merges_state ON merges(state)",
    "CREATE INDEX IF NOT EXISTS merges_queue ON merges(repo, base, id)",
]

_COLS = "id, repo, branch, base, state, created, updated, generation, data"


def _conn_rows(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row


def insert(conn: sqlite3.Connection, item: MergeItem) -> MergeItem:
    now = time.time()
    with conn:
        cur = conn.execute(
            "INSERT INTO merges (repo, branch, base, state, created, updated, generation, data) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (item.repo, item.branch, item.base, item.state, now, now, item.data_json()))
    return replace(item, id=int(cur.lastrowid or 0), created=now, updated=now)


def get(conn: sqlite3.Connection, item_id: int) -> MergeItem:
    _conn_rows(conn)
    row = conn.execute(f"SELECT {_COLS} FROM merges WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise NotFound(f"no merge #{item_id}")
    return MergeItem.from_row(row)


def list_items(conn: sqlite3.Connection, states: tuple[str, ...] | None = None,
               repo: str | None = None) -> list[MergeItem]:
    _conn_rows(conn)
    sql, args = f"SELECT {_COLS} FROM merges WHERE 1=1", []
    if states is not None:
        sql += f" AND state IN ({', '.join('?' * len(states))})"
        args += list(states)
    if repo is not None:
        sql += " AND repo = ?"
        args.append(repo)
    return [MergeItem.from_row(r) for r in conn.execute(sql + " ORDER BY id", args)]


def save(conn: sqlite3.Connection, item: MergeItem, expect: int | None = None,
         bump: bool = False) -> MergeItem | None:
    """Write ``item``; with ``expect``, only if the stored generation is still that one
    (returns None when it moved). ``bump``: a change from outside the driver."""
    now = time.time()
    new = replace(item, updated=now, generation=item.generation + (1 if bump else 0))
    sql = ("UPDATE merges SET state = ?, updated = ?, generation = ?, data = ? WHERE id = ?")
    args: list[object] = [new.state, now, new.generation, new.data_json(), item.id]
    if expect is not None:
        sql += " AND generation = ?"
        args.append(expect)
    with conn:
        cur = conn.execute(sql, args)
    return new if cur.rowcount == 1 else None
