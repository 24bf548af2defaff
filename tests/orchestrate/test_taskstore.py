"""Persistence and the atomic claim on a real SQLite file, with two connections racing."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from hive_lab.core.errors import BadRequest, Conflict
from hive_lab.orchestrate import claims, schema, taskstore
from hive_lab.orchestrate.errors import StaleGeneration, TaskExists, TaskNotFound
from hive_lab.orchestrate.tasks import READY, RUNNING, Task, transition


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "hive.sqlite"
    conn = connect(path)
    schema.apply(conn)
    schema.apply(conn)  # idempotent
    conn.close()
    return path


def task(id: str, **kw) -> Task:
    return Task(id=id, prompt="do it", repo="/r", created=1.0, state_since=1.0, **kw)


def test_roundtrip_and_filters(db: Path) -> None:
    conn = connect(db)
    t = task("api", scope=("src/**",), check=("pytest", "-q"), requires=("python",),
             depends_on=(), budget={"usd": 1}, flags={"guard_degraded": [[1, 2]]}, state=READY)
    taskstore.insert_task(conn, t)
    taskstore.insert_task(conn, task("docs"))
    with pytest.raises(TaskExists):
        taskstore.insert_task(conn, task("api"))
    got = taskstore.get_task(conn, "api")
    assert got == t
    assert [x.id for x in taskstore.list_tasks(conn, state=READY)] == ["api"]
    assert [x.id for x in taskstore.list_tasks(conn)] == ["api", "docs"]
    with pytest.raises(TaskNotFound):
        taskstore.get_task(conn, "nope")
    running = transition(got, RUNNING, "started", 5.0)
    running.session = "hive-api"
    taskstore.save_task(conn, running, 5.0)
    assert [x.id for x in taskstore.list_tasks(conn, session="hive-api")] == ["api"]
    with pytest.raises(Conflict):
        taskstore.delete_task(conn, "api")  # running


def test_attempts(db: Path) -> None:
    conn = connect(db)
    taskstore.insert_task(conn, task("api"))
    a1 = taskstore.start_attempt(conn, "api", "s1", "claude", 2.0)
    a1.ended, a1.outcome, a1.reason, a1.check_tail = 3.0, "check_failed", "exit 1", "E assert"
    taskstore.update_attempt(conn, a1)
    a2 = taskstore.start_attempt(conn, "api", "s2", "claude", 4.0)
    assert (a1.n, a2.n) == (1, 2)
    got = taskstore.get_task(conn, "api").attempts
    assert [(a.n, a.outcome, a.check_tail) for a in got] == [(1, "check_failed", "E assert"), (2, None, "")]
    assert [x.attempts for x in taskstore.list_tasks(conn, with_attempts=True)][0] == got


def test_delete_refuses_dependants(db: Path) -> None:
    conn = connect(db)
    taskstore.insert_task(conn, task("schema"))
    taskstore.insert_task(conn, task("api", depends_on=("schema",)))
    with pytest.raises(Conflict, match="api"):
        taskstore.delete_task(conn, "schema")
    taskstore.delete_task(conn, "api")
    taskstore.delete_task(conn, "schema")
    assert taskstore.list_tasks(conn) == []


def test_scope_requests(db: Path) -> None:
    conn = connect(db)
    taskstore.insert_task(conn, task("api", scope=("src/**",)))
    r = taskstore.add_scope_request(conn, "api", "docs/", "document the API", "s1", 2.0)
    assert (r.glob, r.state) == ("docs/**", "pending")
    for bad in ("../x", "/etc", "", 3):
        with pytest.raises(BadRequest):
            taskstore.add_scope_request(conn, "api", bad, "x", None, 2.0)
    with pytest.raises(TaskNotFound):
        taskstore.add_scope_request(conn, "nope", "docs/**", "x", None, 2.0)
    done = taskstore.decide_scope_request(conn, r.id, True, "alice", "ok", 3.0)
    assert done.state == "approved" and done.decided_by == "alice"
    assert taskstore.get_task(conn, "api").scope == ("src/**", "docs/**")
    with pytest.raises(Conflict):
        taskstore.decide_scope_request(conn, r.id, False, "bob", "", 4.0)
    r2 = taskstore.add_scope_request(conn, "api", "lib/**", "", None, 5.0)
    taskstore.decide_scope_request(conn, r2.id, False, "bob", "no", 6.0)
    assert taskstore.get_task(conn, "api").scope == ("src/**", "docs/**")
    assert [x.state for x in taskstore.list_scope_requests(conn, "api")] == ["approved", "refused"]


def test_claim_from_two_connections_has_one_winner(db: Path) -> None:
    a, b = connect(db), connect(db)
    taskstore.insert_task(a, task("api", state=READY))
    taskstore.insert_task(a, task("later"))  # pending: not claimable
    g = claims.claim(a, "api", "server-1", now=10.0, lease_s=30.0)
    assert g == 1
    assert claims.claim(b, "api", "server-2", now=11.0, lease_s=30.0) is None
    assert claims.claim(b, "later", "server-2", now=11.0, lease_s=30.0) is None
    assert claims.claim(b, "nope", "server-2", now=11.0, lease_s=30.0) is None
    # the lease runs out: the second server takes over; the first one's writes are refused
    g2 = claims.claim(b, "api", "server-2", now=41.0, lease_s=30.0)
    assert g2 == 2
    with pytest.raises(StaleGeneration):
        claims.guarded_update(a, "api", g, state=RUNNING, session="hive-api")
    assert not claims.renew(a, "api", "server-1", g, 42.0, 30.0)
    assert claims.renew(b, "api", "server-2", g2, 42.0, 30.0)
    claims.guarded_update(b, "api", g2, state=RUNNING, session="hive-api")
    t = taskstore.get_task(a, "api")
    assert (t.state, t.session, t.owner, t.generation) == (RUNNING, "hive-api", "server-2", 2)
    # running tasks are not claimable, whatever the lease
    assert claims.claim(a, "api", "server-1", now=1e9, lease_s=1) is None
    with pytest.raises(ValueError):
        claims.guarded_update(b, "api", g2, id="evil")


def test_claim_race_many_threads(db: Path) -> None:
    setup = connect(db)
    for i in range(20):
        taskstore.insert_task(setup, task(f"t{i}", state=READY))
    wins: dict[str, list[str]] = {f"t{i}": [] for i in range(20)}
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        conn = connect(db)
        barrier.wait()
        for i in range(20):
            if claims.claim(conn, f"t{i}", name, now=100.0, lease_s=60.0) is not None:
                wins[f"t{i}"].append(name)
        conn.close()

    threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(len(w) == 1 for w in wins.values()), wins
    rows = setup.execute("SELECT id, owner, generation FROM tasks").fetchall()
    assert all(gen == 1 for _, _, gen in rows)
    assert {tid: [owner] for tid, owner, _ in rows} == wins
