"""Durable state: SQLite in WAL mode under the data dir.

WAL lets readers run while a write is in progress, and a batch of events is committed in one
transaction (the recorder groups concurrent hook calls). The SQL sticks to what PostgreSQL
also accepts (``ON CONFLICT ... DO NOTHING``, plain types) apart from the id column.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence

from .events import STATE_CHANGED, Event
from .schema import MIGRATIONS, migrate

_EVENT_COLUMNS = ("id, key, session, agent, event, tool, tool_use_id, agent_session_id, "
                  "summary, fired, received, payload")


class Store:
    """All persistence. One connection, used from the server's event loop thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.version = migrate(self.db, MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    # -- events ----------------------------------------------------------------------------
    def insert_events(self, events: Sequence[Event],
                      on_inserted: Any = None) -> list[tuple[int, bool]]:
        """Insert in one transaction; returns ``(id, duplicate)`` per event, in order.

        A duplicate key keeps the first copy and returns its id. ``on_inserted(event)`` runs
        inside the transaction for each new event and may return extra events (state
        transitions) that are inserted in the same transaction: all or nothing.
        """
        results: list[tuple[int, bool]] = []
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                results.append(self._insert_one(cur, event, on_inserted))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            for event in events:
                event.id = None
            raise
        return results

    def _insert_one(self, cur: sqlite3.Cursor, event: Event, on_inserted: Any) -> tuple[int, bool]:
        cur.execute(
            "INSERT INTO events (key, session, agent, event, tool, tool_use_id, agent_session_id,"
            " summary, fired, received, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (key) DO NOTHING",
            (event.key, event.session, event.agent, event.event, event.tool, event.tool_use_id,
             event.agent_session_id, event.summary, event.time, event.received,
             json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"))),
        )
        if cur.rowcount == 0:
            row = cur.execute("SELECT id FROM events WHERE key = ?", (event.key,)).fetchone()
            return int(row[0]), True
        event.id = int(cur.lastrowid or 0)
        if event.event == STATE_CHANGED:
            self._insert_transition(cur, event)
        for extra in (on_inserted(event) if on_inserted else None) or ():
            self._insert_one(cur, extra, None)
        return event.id, False

    def _insert_transition(self, cur: sqlite3.Cursor, event: Event) -> None:
        state = event.payload["state"]
        cur.execute(
            "INSERT INTO transitions (event_id, session, name, reason, tool, source, since,"
            " exit_status) VALUES (?,?,?,?,?,?,?,?)",
            (event.id, event.session, state.get("name"), state.get("reason"), state.get("tool"),
             state.get("source"), event.time, state.get("exit_status")),
        )
        cur.execute("UPDATE sessions SET state = ? WHERE name = ?",
                    (json.dumps(event.payload.get("record", state)), event.session))

    def events(self, after: int = 0, session: str | None = None, event: str | None = None,
               limit: int = 1000, before: int | None = None, since: float | None = None,
               until: float | None = None, agent: str | None = None) -> list[Event]:
        """Events with ``id > after`` in id order, filtered in SQL."""
        where: list[str] = ["id > ?"]
        args: list[Any] = [after]
        for column, value in (("session", session), ("event", event), ("agent", agent)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        if since is not None:
            where.append("fired >= ?")
            args.append(since)
        if until is not None:
            where.append("fired < ?")
            args.append(until)
        args.append(limit)
        rows = self.db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            args,
        ).fetchall()
        return [_row_to_event(r) for r in rows]

    def last_event_id(self) -> int:
        row = self.db.execute("SELECT MAX(id) FROM events").fetchone()
        return int(row[0] or 0)

    def count_events(self, session: str | None = None) -> int:
        if session is None:
            return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        return int(self.db.execute("SELECT COUNT(*) FROM events WHERE session = ?",
                                   (session,)).fetchone()[0])

    def transitions(self, session: str | None = None, after: int = 0,
                    limit: int = 10000) -> list[dict[str, Any]]:
        sql = ("SELECT id, event_id, session, name, reason, tool, source, since, exit_status"
               " FROM transitions WHERE id > ?")
        args: list[Any] = [after]
        if session is not None:
            sql += " AND session = ?"
            args.append(session)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        cols = ("id", "event_id", "session", "name", "reason", "tool", "source", "since",
                "exit_status")
        return [dict(zip(cols, row)) for row in self.db.execute(sql, args)]

    def transcript_paths(self) -> list[tuple[str, str]]:
        """Every (session, transcript_path) an agent has reported, to resume following."""
        rows = self.db.execute(
            "SELECT DISTINCT session, json_extract(payload, '$.transcript_path') FROM events"
            " WHERE agent != 'hive' AND json_extract(payload, '$.transcript_path') IS NOT NULL"
            # ... and the usage logs Hive Lab chose for hook-less agents (Aider) at spawn
            " UNION SELECT session, json_extract(payload, '$.session.transcript_path') FROM events"
            " WHERE agent = 'hive' AND event = 'SessionCreated'"
            " AND json_extract(payload, '$.session.transcript_path') IS NOT NULL")
        return [(s, p) for s, p in rows if isinstance(p, str)]

    # -- sessions --------------------------------------------------------------------------
    def save_session(self, name: str, agent: str, created: float, meta: dict[str, Any],
                     state: dict[str, Any] | None) -> None:
        self.db.execute(
            "INSERT INTO sessions (name, agent, created, meta, state, removed) VALUES (?,?,?,?,?,NULL)"
            " ON CONFLICT (name) DO UPDATE SET agent = excluded.agent, created = excluded.created,"
            " meta = excluded.meta, state = excluded.state, removed = NULL",
            (name, agent, created, json.dumps(meta), json.dumps(state) if state else None),
        )

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        self.db.execute("UPDATE sessions SET state = ? WHERE name = ?", (json.dumps(state), name))

    def mark_removed(self, name: str, when: float) -> None:
        self.db.execute("UPDATE sessions SET removed = ? WHERE name = ?", (when, name))

    def sessions(self, include_removed: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT name, agent, created, meta, state, removed FROM sessions"
        if not include_removed:
            sql += " WHERE removed IS NULL"
        out = []
        for name, agent, created, meta, state, removed in self.db.execute(sql + " ORDER BY created"):
            out.append({"name": name, "agent": agent, "created": created,
                        "meta": json.loads(meta), "state": json.loads(state) if state else None,
                        "removed": removed})
        return out


def _row_to_event(row: Iterable[Any]) -> Event:
    (id_, key, session, agent, name, tool, tool_use_id, agent_sid, summary, fired, received,
     payload) = row
    return Event(id=id_, key=key, session=session, agent=agent, event=name, tool=tool,
                 tool_use_id=tool_use_id, agent_session_id=agent_sid, summary=summary,
                 time=fired, received=received, payload=json.loads(payload))
