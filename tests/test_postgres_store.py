"""The shared store on a real PostgreSQL server: migrations, the task store, claims, outages.

Every test gets a fresh database on the session's server (conftest ``pg_url``); the outage test
runs its own server, since it stops it. The dialect step is also checked without a server.
"""
from __future__ import annotations

import multiprocessing
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from hive_lab.core.errors import StoreUnavailable
from hive_lab.core.schema import MIGRATIONS, SchemaTooNew, migrate
from hive_lab.core.sharedstore import PgConnection, connect_store, redact, to_postgres
from hive_lab.orchestrate import claims, recoverystore, taskstore
from hive_lab.orchestrate.errors import StaleGeneration, TaskExists
from hive_lab.orchestrate.recovery import Park
from hive_lab.orchestrate.tasks import READY, RUNNING, Task

NOW = 1_796_000_000.123456  # a time that a 4-byte REAL would round: columns must be 8 bytes


def task(id: str, **kw) -> Task:
    kw.setdefault("state", READY)
    return Task(id=id, prompt="do it", repo="/r", created=kw.pop("created", NOW),
                state_since=NOW, **kw)


# ------------------------------------------------------------------ the dialect step (no server)


def test_dialect_step_spellings() -> None:
    assert to_postgres("SELECT * FROM t WHERE a = ? AND b LIKE 'x%'") == \
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%'"
    assert to_postgres("INSERT OR IGNORE INTO resume_marks VALUES (?, ?)") == \
        "INSERT INTO resume_marks VALUES (%s, %s) ON CONFLICT DO NOTHING"
    assert to_postgres("INSERT OR REPLACE INTO budgets (scope, key, limits) VALUES (?,?,?)",
                       keys={"budgets": ("scope", "key")}).endswith(
        "ON CONFLICT (scope, key) DO UPDATE SET limits = EXCLUDED.limits")
    with pytest.raises(ValueError):
        to_postgres("INSERT OR REPLACE INTO mystery VALUES (?)")  # no columns known: refuse
    assert "jsonb_array_elements_text((tasks.depends_on)::jsonb) AS json_each(value)" in \
        to_postgres("SELECT id FROM tasks, json_each(tasks.depends_on) WHERE json_each.value = ?")


def test_redact_hides_the_password() -> None:
    url = "postgresql://hive:s3cret@db.example:5433/board"
    assert redact(url) == "postgresql://hive:***@db.example:5433/board"
    assert "s3cret" not in redact(url)
    assert redact("postgresql:///board") == "postgresql:///board"


def test_other_store_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="postgresql://"):
        connect_store(tmp_path / "hive.db", "mysql://x@y/z")
    conn = connect_store(tmp_path / "hive.db", "")
    assert isinstance(conn, sqlite3.Connection)  # the default is the node's SQLite, as before


def test_a_postgres_url_without_the_driver_says_what_to_install(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(Exception, match=r"hive-lab\[postgres\]"):
        connect_store(tmp_path / "hive.db", "postgresql://u:p@127.0.0.1:1/x")


# ------------------------------------------------------------------ migrations


def _sqlite_columns(tmp_path: Path) -> set[tuple[str, str]]:
    db = sqlite3.connect(tmp_path / "ref.db", isolation_level=None)
    migrate(db)
    out = set()
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                               "AND name NOT LIKE 'sqlite_%'"):
        out |= {(table, row[1]) for row in db.execute(f"PRAGMA table_info({table})")}
    return out


def test_migrations_give_postgres_the_same_tables_and_columns(pg_url: str, tmp_path: Path) -> None:
    conn = PgConnection(pg_url)
    assert conn.version == len(MIGRATIONS) and conn.available
    rows = conn.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name != 'hive_schema'")
    found = {(r[0], r[1]) for r in rows.fetchall()}
    assert found == _sqlite_columns(tmp_path)
    types = {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema()").fetchall()}
    assert types[("tasks", "lease_until")] == "double precision"
    assert types[("tasks", "generation")] == "bigint"
    indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes "
                                          "WHERE schemaname = current_schema()").fetchall()}
    assert {"tasks_state", "tasks_ready", "attempts_session"} <= indexes
    again = PgConnection(pg_url)  # a second server starting on the same store: nothing to do
    assert again.version == len(MIGRATIONS)
    assert again.execute("SELECT version FROM hive_schema").fetchone()[0] == len(MIGRATIONS)


def test_migrations_apply_in_order_from_an_older_store(pg_url: str) -> None:
    PgConnection(pg_url, migrations=MIGRATIONS[:2])
    conn = PgConnection(pg_url)
    assert conn.execute("SELECT version FROM hive_schema").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("SELECT COUNT(*) FROM provider_parks").fetchone()[0] == 0  # from v3


def test_a_store_from_a_newer_hive_lab_is_refused(pg_url: str) -> None:
    conn = PgConnection(pg_url)
    conn.execute("UPDATE hive_schema SET version = ?", (len(MIGRATIONS) + 3,))
    with pytest.raises(SchemaTooNew):
        PgConnection(pg_url)


# ------------------------------------------------------------------ the task store on both


def _exercise(conn) -> dict:
    """The same sequence on either store; returns what it saw, to compare."""
    taskstore.insert_task(conn, task("api", scope=("src/**",), check=("pytest", "-q"),
                                     budget={"usd": 1.5}, flags={"x": [1, 2]}))
    taskstore.insert_task(conn, task("docs", depends_on=("api",), state="pending"))
    with pytest.raises(TaskExists):
        taskstore.insert_task(conn, task("api"))
    gen = claims.claim(conn, "api", "me", NOW, 60)
    attempt = taskstore.start_attempt(conn, "api", "api", "scripted", NOW)
    req = taskstore.add_scope_request(conn, "api", "docs/**", "needs the docs", "api", NOW)
    taskstore.decide_scope_request(conn, req.id, True, "lead", "ok", NOW + 1)
    blocked = ""
    try:
        taskstore.delete_task(conn, "api")
    except Exception as exc:  # noqa: BLE001 - the message is what we compare
        blocked = str(exc)
    recoverystore.save_park(conn, Park("anthropic", "rate_limit", NOW, NOW + 60, 0, "hook"))
    recoverystore.save_park(conn, Park("anthropic", "rate_limit", NOW, NOW + 90, 2, "probe"))
    first = recoverystore.mark_resumed(conn, "api", NOW, "anthropic", NOW)
    second = recoverystore.mark_resumed(conn, "api", NOW, "anthropic", NOW)
    return {"tasks": [t.to_json() for t in taskstore.list_tasks(conn, with_attempts=True)],
            "gen": gen, "attempt": (attempt.id, attempt.n), "req": req.id, "blocked": blocked,
            "requests": [r.to_json() for r in taskstore.list_scope_requests(conn)],
            "parks": recoverystore.parks(conn), "resumed": (first, second)}


def test_the_task_store_behaves_the_same_on_both(pg_url: str, tmp_path: Path) -> None:
    lite = connect_store(tmp_path / "hive.db", "")
    migrate(lite)
    assert _exercise(PgConnection(pg_url)) == _exercise(lite)


# ------------------------------------------------------------------ claims


def test_a_claim_is_exclusive_and_a_lost_lease_refuses_writes(pg_url: str) -> None:
    a, b = PgConnection(pg_url), PgConnection(pg_url)
    taskstore.insert_task(a, task("t1"))
    gen_a = claims.claim(a, "t1", "server-a", NOW, 5.0)
    assert gen_a == 1
    assert claims.claim(b, "t1", "server-b", NOW + 1, 5.0) is None  # A's lease holds
    # A's lease runs out (A hung); B takes over and A's late write is refused.
    gen_b = claims.claim(b, "t1", "server-b", NOW + 10, 5.0)
    assert gen_b == 2
    with pytest.raises(StaleGeneration):
        claims.guarded_update(a, "t1", gen_a, state=RUNNING, session="t1")
    assert not claims.renew(a, "t1", "server-a", gen_a, NOW + 11, 5.0)
    claims.guarded_update(b, "t1", gen_b, state=RUNNING, session="t1")
    got = taskstore.get_task(a, "t1")
    assert (got.owner, got.generation, got.state) == ("server-b", 2, RUNNING)
    assert claims.claim(a, "t1", "server-a", NOW + 100, 5.0) is None  # running: not claimable
    assert claims.renew_owned(b, "server-b", [RUNNING], NOW + 12, 60.0) == 1
    assert taskstore.get_task(a, "t1").lease_until == NOW + 72.0


def test_claim_next_takes_priority_then_age(pg_url: str) -> None:
    conn = PgConnection(pg_url)
    taskstore.insert_task(conn, task("old", created=NOW))
    taskstore.insert_task(conn, task("new", created=NOW + 5))
    taskstore.insert_task(conn, task("urgent", created=NOW + 9, priority=5))
    taskstore.insert_task(conn, task("later", state="pending"))
    order = [claims.claim_next(conn, "me", NOW, 60.0) for _ in range(4)]
    assert order == [("urgent", 1), ("old", 1), ("new", 1), None]
    assert claims.claim_next(conn, "me", NOW + 120, 60.0, among=["new"]) == ("new", 2)
    assert claims.claim_next(conn, "me", NOW, 60.0, among=[]) is None


def _race_one(url: str, rounds: int, racers: int) -> None:
    """``racers`` threads claim the same task at the same moment, ``rounds`` times."""
    conns = [PgConnection(url) for _ in range(racers)]
    for r in range(rounds):
        taskstore.insert_task(conns[0], task(f"r{r}"))
        barrier = threading.Barrier(racers)
        won: list[str] = []

        def go(i: int, r: int = r, barrier: threading.Barrier = barrier,
               won: list[str] = won) -> None:
            barrier.wait()
            if claims.claim(conns[i], f"r{r}", f"s{i}", NOW, 60.0) is not None:
                won.append(f"s{i}")

        threads = [threading.Thread(target=go, args=(i,)) for i in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, f"round {r}: {won}"
        assert taskstore.get_task(conns[0], f"r{r}").owner == won[0]


def test_racing_claims_on_one_task_have_one_winner_many_times(pg_url: str) -> None:
    _race_one(pg_url, rounds=40, racers=4)


def _drain(url: str, owner: str, out: "multiprocessing.Queue | list", start: float) -> None:
    """Claim and start ready tasks until none is left (what a control server's ticks do)."""
    conn = PgConnection(url)
    mine = []
    while True:
        got = claims.claim_next(conn, owner, start, 60.0)
        if got is None:
            break
        task_id, gen = got
        claims.guarded_update(conn, task_id, gen, state=RUNNING, session=task_id)
        mine.append(task_id)
    if isinstance(out, list):
        out.extend((owner, t) for t in mine)
    else:
        out.put([(owner, t) for t in mine])


def _check_once(url: str, n: int, seen: list[tuple[str, str]]) -> None:
    ids = [t for _, t in seen]
    assert len(ids) == n and len(set(ids)) == n, "a task was claimed twice or not at all"
    conn = PgConnection(url)
    rows = conn.execute("SELECT owner, generation, state FROM tasks").fetchall()
    assert all(r[1] == 1 and r[2] == RUNNING for r in rows)  # one claim each, no second one
    assert {(r[0]) for r in rows} <= {o for o, _ in seen}


def test_competing_claimers_in_threads_start_each_task_once(pg_url: str) -> None:
    conn = PgConnection(pg_url)
    for rnd in range(5):
        conn.execute("DELETE FROM tasks")
        n = 120
        for i in range(n):
            taskstore.insert_task(conn, task(f"t{rnd}-{i:03d}", priority=i % 3))
        seen: list[tuple[str, str]] = []
        threads = [threading.Thread(target=_drain, args=(pg_url, f"s{k}", seen, NOW))
                   for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _check_once(pg_url, n, seen)


def test_competing_claimers_in_processes_start_each_task_once(pg_url: str) -> None:
    conn = PgConnection(pg_url)
    ctx = multiprocessing.get_context("spawn")
    for rnd in range(2):
        conn.execute("DELETE FROM tasks")
        n = 300
        for i in range(n):
            taskstore.insert_task(conn, task(f"p{rnd}-{i:03d}"))
        queue = ctx.Queue()
        procs = [ctx.Process(target=_drain, args=(pg_url, f"proc{k}", queue, NOW))
                 for k in range(3)]
        for p in procs:
            p.start()
        seen = [item for _ in procs for item in queue.get(timeout=120)]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        _check_once(pg_url, n, seen)


# ------------------------------------------------------------------ the store going away


def test_the_store_going_away_and_coming_back(tmp_path: Path) -> None:
    from support.postgres import PostgresServer, missing_reason

    if missing_reason():
        pytest.skip(missing_reason())
    pg = PostgresServer().start()
    try:
        url = pg.create_database("board")
        conn = PgConnection(url)
        taskstore.insert_task(conn, task("t1"))
        pg.pause()
        with pytest.raises(StoreUnavailable) as err:
            taskstore.list_tasks(conn)
        assert pg.password not in err.value.detail
        health = conn.health()
        assert health["reachable"] is False and health["down_since"] is not None
        assert pg.password not in str(health)
        with pytest.raises(StoreUnavailable):  # still down: refused again, quickly
            claims.claim(conn, "t1", "me", NOW, 60.0)
        assert not conn.ping()
        pg.resume()
        # The caller does nothing special: the next call connects again.
        assert [t.id for t in taskstore.list_tasks(conn)] == ["t1"]
        assert conn.health()["reachable"] is True and conn.health()["down_since"] is None
        assert claims.claim(conn, "t1", "me", NOW, 60.0) == 1
        # A transaction the outage cut short leaves nothing behind.
        with pytest.raises(StoreUnavailable):
            with conn:
                conn.execute("UPDATE tasks SET title = 'half' WHERE id = 't1'")
                pg.pause()
                conn.execute("UPDATE tasks SET title = 'done' WHERE id = 't1'")
        pg.resume()
        assert taskstore.get_task(conn, "t1").title == ""
    finally:
        pg.stop()


def test_a_store_down_at_start_up_connects_later(tmp_path: Path) -> None:
    from support.postgres import PostgresServer, missing_reason

    if missing_reason():
        pytest.skip(missing_reason())
    pg = PostgresServer().start()
    try:
        url = pg.create_database("board")
        pg.pause()
        started = time.monotonic()
        conn = PgConnection(url)  # does not raise: the server starts, orchestration waits
        assert not conn.available and time.monotonic() - started < 30
        with pytest.raises(StoreUnavailable):
            taskstore.list_tasks(conn)
        pg.resume()
        assert taskstore.list_tasks(conn) == [] and conn.version == len(MIGRATIONS)
    finally:
        pg.stop()


# ------------------------------------------------------------------ the notifier on a shared store


def test_the_notifier_finds_tasks_in_the_shared_store(pg_url: str, tmp_path: Path) -> None:
    """A failed task notifies (and stays unresolved) when the tasks live in PostgreSQL."""
    import asyncio

    from hive_lab.core import events as ev
    from hive_lab.core.bus import Broadcaster
    from hive_lab.core.recorder import Recorder
    from hive_lab.core.signals import Signals
    from hive_lab.core.status import Tracker
    from hive_lab.core.store import Store
    from hive_lab.notify.notifier import Notifier, NotifyConfig
    from hive_lab.orchestrate.runtime import TASK_CHANGED

    shared = PgConnection(pg_url)
    failed = task("broke", state="failed")
    taskstore.insert_task(shared, failed)

    async def run() -> list[dict]:
        store, signals, tracker = Store(tmp_path / "hive.db"), Signals(), Tracker()
        recorder = Recorder(store, Broadcaster(), tracker, signals)
        notifier = Notifier(tmp_path / "hive.db", signals, recorder, tracker,
                            NotifyConfig(escalate_after=0.001))
        notifier.task_conn = shared
        notifier.start()
        recorder.record_now([ev.internal("broke", TASK_CHANGED, {
            "task": failed.to_json(), "previous": "running", "reason": "check failed"})])
        notifier.pump()
        notifier.escalate(now=time.time() + 60)  # still failed in the store: not resolved
        rows = notifier.recent()
        notifier.close()
        store.close()
        return rows

    rows = asyncio.run(run())
    assert [(r["kind"], r["task"]) for r in rows] == [("task_failed", "broke")]
    assert rows[0]["resolved"] is None and rows[0]["escalated"] is not None
