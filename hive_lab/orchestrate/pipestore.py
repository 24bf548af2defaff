"""Pipelines in SQLite: the pipeline, one row per visit of a stage, findings, check runs.

The DDL is appended to the store's migrations as ``V6_PIPELINES`` (core/schema.py). Every
stage visit, verdict, finding and check run stays, so a pipeline's history (and its cost)
can be read back after the fact and survives restarts.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import Any

from ..core.errors import NotFound
from .pipelines import Pipeline, PipelineSpec

MIGRATION_SQL: list[str] = [
    """CREATE TABLE IF NOT EXISTS pipelines (
        id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT NOT NULL DEFAULT '',
        state_since REAL NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        updated REAL NOT NULL DEFAULT 0,
        stage INTEGER NOT NULL DEFAULT 0,
        round INTEGER NOT NULL DEFAULT 1,
        base_sha TEXT NOT NULL DEFAULT '',
        base_branch TEXT,
        cursor TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE IF NOT EXISTS pipeline_stages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline_id TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        round INTEGER NOT NULL,
        task_id TEXT,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        started REAL NOT NULL,
        ended REAL,
        cost REAL,
        verdict TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS pipeline_stages_by ON pipeline_stages(pipeline_id, id)",
    """CREATE TABLE IF NOT EXISTS pipeline_findings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline_id TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
        stage_row INTEGER NOT NULL,
        round INTEGER NOT NULL,
        file TEXT NOT NULL,
        line INTEGER,
        severity TEXT NOT NULL,
        text TEXT NOT NULL,
        created REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS pipeline_findings_by ON pipeline_findings(pipeline_id, id)",
    """CREATE TABLE IF NOT EXISTS pipeline_checks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline_id TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
        stage_row INTEGER NOT NULL,
        argv TEXT NOT NULL,
        passed INTEGER NOT NULL,
        exit_code INTEGER,
        seconds REAL NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        output_tail TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS pipeline_checks_by ON pipeline_checks(pipeline_id, stage_row)",
]


def apply(conn: sqlite3.Connection) -> None:  # for tests
    with conn:
        for stmt in MIGRATION_SQL:
            conn.execute(stmt)


def _from_row(row: tuple[Any, ...]) -> Pipeline:
    (pid, spec, state, reason, since, created, stage, round_no, base_sha, base_branch,
     cursor) = row
    return Pipeline(spec=PipelineSpec.from_json(json.loads(spec)), state=state,
                    state_reason=reason, state_since=since, created=created, stage=stage,
                    round=round_no, base_sha=base_sha, base_branch=base_branch,
                    cursor=json.loads(cursor))


_COLS = ("id, spec, state, state_reason, state_since, created, stage, round, base_sha, "
         "base_branch, cursor")


def insert(conn: sqlite3.Connection, p: Pipeline, now: float) -> None:
    with conn:
        conn.execute(f"INSERT INTO pipelines ({_COLS}, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     (p.id, json.dumps(p.spec.to_json()), p.state, p.state_reason,
                      p.state_since, p.created, p.stage, p.round, p.base_sha, p.base_branch,
                      json.dumps(p.cursor), now))


def save(conn: sqlite3.Connection, p: Pipeline, now: float) -> None:
    with conn:
        conn.execute("UPDATE pipelines SET state=?, state_reason=?, state_since=?, stage=?, "
                     "round=?, cursor=?, updated=? WHERE id=?",
                     (p.state, p.state_reason[:500], p.state_since, p.stage, p.round,
                      json.dumps(p.cursor), now, p.id))


def exists(conn: sqlite3.Connection, pid: str) -> bool:
    return conn.execute("SELECT 1 FROM pipelines WHERE id=?", (pid,)).fetchone() is not None


def get(conn: sqlite3.Connection, pid: str) -> Pipeline:
    row = conn.execute(f"SELECT {_COLS} FROM pipelines WHERE id=?", (pid,)).fetchone()
    if row is None:
        raise NotFound(f"no pipeline {pid!r}")
    return _from_row(row)


def list_all(conn: sqlite3.Connection, state: str | None = None) -> list[Pipeline]:
    sql = f"SELECT {_COLS} FROM pipelines"
    args: tuple[Any, ...] = ()
    if state:
        sql += " WHERE state=?"
        args = (state,)
    return [_from_row(r) for r in conn.execute(sql + " ORDER BY created, id", args)]


# -- stage rows --------------------------------------------------------------------------------
def start_stage(conn: sqlite3.Connection, pid: str, idx: int, kind: str, round_no: int,
                now: float) -> int:
    with conn:
        cur = conn.execute("INSERT INTO pipeline_stages (pipeline_id, idx, kind, round, state, "
                           "started) VALUES (?,?,?,?,?,?)", (pid, idx, kind, round_no,
                                                             "running", now))
    return int(cur.lastrowid or 0)


def update_stage(conn: sqlite3.Connection, row_id: int, **fields: Any) -> None:
    allowed = {"task_id", "state", "reason", "ended", "cost", "verdict"}
    sets = {k: v for k, v in fields.items() if k in allowed}
    if "verdict" in sets and sets["verdict"] is not None:
        sets["verdict"] = json.dumps(sets["verdict"])
    if "reason" in sets:
        sets["reason"] = str(sets["reason"])[:500]
    with conn:
        conn.execute("UPDATE pipeline_stages SET " + ", ".join(f"{k}=?" for k in sets)
                     + " WHERE id=?", (*sets.values(), row_id))


_STAGE_COLS = ("id", "pipeline_id", "idx", "kind", "round", "task_id", "state", "reason",
               "started", "ended", "cost", "verdict")


def stages(conn: sqlite3.Connection, pid: str) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT {', '.join(_STAGE_COLS)} FROM pipeline_stages "
                        "WHERE pipeline_id=? ORDER BY id", (pid,))
    out = []
    for r in rows:
        d = dict(zip(_STAGE_COLS, r))
        d["verdict"] = json.loads(d["verdict"]) if d["verdict"] else None
        out.append(d)
    return out


def stage_row(conn: sqlite3.Connection, row_id: int) -> dict[str, Any] | None:
    r = conn.execute(f"SELECT {', '.join(_STAGE_COLS)} FROM pipeline_stages WHERE id=?",
                     (row_id,)).fetchone()
    if r is None:
        return None
    d = dict(zip(_STAGE_COLS, r))
    d["verdict"] = json.loads(d["verdict"]) if d["verdict"] else None
    return d


# -- findings and check runs --------------------------------------------------------------------
def add_findings(conn: sqlite3.Connection, pid: str, row_id: int, round_no: int,
                 findings: list[dict[str, Any]], now: float) -> None:
    with conn:
        conn.executemany("INSERT INTO pipeline_findings (pipeline_id, stage_row, round, file, "
                         "line, severity, text, created) VALUES (?,?,?,?,?,?,?,?)",
                         [(pid, row_id, round_no, f["file"], f["line"], f["severity"],
                           f["text"], now) for f in findings])


def findings(conn: sqlite3.Connection, pid: str) -> list[dict[str, Any]]:
    cols = ("id", "pipeline_id", "stage_row", "round", "file", "line", "severity", "text",
            "created")
    return [dict(zip(cols, r)) for r in conn.execute(
        f"SELECT {', '.join(cols)} FROM pipeline_findings WHERE pipeline_id=? ORDER BY id",
        (pid,))]


def add_check(conn: sqlite3.Connection, pid: str, row_id: int, argv: list[str],
              result: dict[str, Any], now: float) -> dict[str, Any]:
    with conn:
        cur = conn.execute("INSERT INTO pipeline_checks (pipeline_id, stage_row, argv, passed, "
                           "exit_code, seconds, reason, output_tail, created) "
                           "VALUES (?,?,?,?,?,?,?,?,?)",
                           (pid, row_id, json.dumps(argv), int(bool(result["passed"])),
                            result["exit_code"], result["seconds"], result["reason"],
                            result["output_tail"], now))
    return {"id": cur.lastrowid, "pipeline_id": pid, "stage_row": row_id, "argv": argv,
            **result, "created": now}


def checks(conn: sqlite3.Connection, pid: str, row_id: int | None = None) -> list[dict[str, Any]]:
    cols = ("id", "pipeline_id", "stage_row", "argv", "passed", "exit_code", "seconds",
            "reason", "output_tail", "created")
    sql = f"SELECT {', '.join(cols)} FROM pipeline_checks WHERE pipeline_id=?"
    args: tuple[Any, ...] = (pid,)
    if row_id is not None:
        sql += " AND stage_row=?"
        args = (pid, row_id)
    out = []
    for r in conn.execute(sql + " ORDER BY id", args):
        d = dict(zip(cols, r))
        d["argv"] = json.loads(d["argv"])
        d["passed"] = bool(d["passed"])
        out.append(d)
    return out


def with_cursor(p: Pipeline, **changes: Any) -> Pipeline:
    cursor = dict(p.cursor)
    cursor.update(changes)
    return replace(p, cursor=cursor)
