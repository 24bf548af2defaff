"""Claims on the shared store: 10,000 ready tasks, 4 competing control servers, real PostgreSQL.

Each claimer is its own process with its own connection (a control server's orchestrator),
and does what a server's tick does for a task it may start: claim it (``claims.claim_next``:
``SELECT ... FOR UPDATE SKIP LOCKED`` and the generation bump in one UPDATE) and then write
the task ``running`` guarded by that generation. It stops when nothing ready is left.
Checked afterwards, from the claimers' own lists and from the table: every task claimed
exactly once (zero double claims, zero missed), every generation exactly 1.

Same run, same machine, for comparison:
  pg x1       one claimer alone on PostgreSQL (the no-competition baseline)
  pg x4       the target: 4 competing claimers
  pg-wait x4  the same pick with plain ``FOR UPDATE`` (no SKIP LOCKED): claimers queue on
              the row another is taking, then find it gone
  sqlite x4   4 claimers on one SQLite file (the embedded store: one writer at a time)

Run: python benchmarks/bench_claims.py [--tasks 10000] [--claimers 4] [--skip-wait]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hive_lab.core.schema import migrate  # noqa: E402
from hive_lab.core.sharedstore import PgConnection  # noqa: E402
from hive_lab.orchestrate import claims  # noqa: E402
from hive_lab.orchestrate.tasks import RUNNING  # noqa: E402

NOW = 1_796_000_000.0
LEASE = 600.0

_WAIT_CLAIM = ("UPDATE tasks SET owner = ?, lease_until = ?, generation = generation + 1, "
               "updated = ? WHERE id = (SELECT id FROM tasks WHERE state = 'ready' AND "
               "(owner IS NULL OR lease_until IS NULL OR lease_until < ?) ORDER BY priority DESC, "
               "created, id LIMIT 1 FOR UPDATE) AND state = 'ready' AND (owner IS NULL OR "
               "lease_until IS NULL OR lease_until < ?) RETURNING id, generation")


def _connect(kind: str, where: str) -> Any:
    if kind == "sqlite":
        conn = sqlite3.connect(where, timeout=60.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=60000")
        return conn
    return PgConnection(where)


def _claim(conn: Any, mode: str, owner: str) -> tuple[str, int] | None:
    if mode != "pg-wait":
        return claims.claim_next(conn, owner, NOW, LEASE)
    with conn:
        row = conn.execute(_WAIT_CLAIM, (owner, NOW + LEASE, NOW, NOW, NOW)).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def claimer(mode: str, where: str, owner: str, go: Any, out: Any) -> None:
    conn = _connect("sqlite" if mode == "sqlite" else "pg", where)
    got: list[tuple[str, int]] = []
    lat: list[float] = []
    go.wait()
    t0 = time.perf_counter()
    while True:
        s = time.perf_counter()
        picked = _claim(conn, mode, owner)
        if picked is None:
            break
        claims.guarded_update(conn, picked[0], picked[1], state=RUNNING, session=picked[0],
                              updated=NOW)
        lat.append(time.perf_counter() - s)
        got.append(picked)
    out.put({"owner": owner, "got": got, "lat": lat, "start": t0, "end": time.perf_counter()})


def _fill(conn: Any, n: int) -> None:
    rows = [(f"task-{i:05d}", "p", "/repo", i % 5, NOW + i * 1e-3) for i in range(n)]
    with conn:
        conn.execute("DELETE FROM attempts")
        conn.execute("DELETE FROM scope_requests")
        conn.execute("DELETE FROM tasks")
        if isinstance(conn, PgConnection):
            # one round trip per 1,000 rows (setup only; the claims are what is measured)
            for k in range(0, n, 1000):
                chunk = rows[k:k + 1000]
                conn.execute("INSERT INTO tasks (id, prompt, repo, priority, created, state) VALUES "
                             + ", ".join("(?, ?, ?, ?, ?, 'ready')" for _ in chunk),
                             [v for r in chunk for v in r])
        else:
            conn.executemany("INSERT INTO tasks (id, prompt, repo, priority, created, state) "
                             "VALUES (?, ?, ?, ?, ?, 'ready')", rows)


def run(mode: str, where: str, n: int, k: int) -> dict[str, Any]:
    conn = _connect("sqlite" if mode == "sqlite" else "pg", where)
    if mode == "sqlite":
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(sqlite3.connect(where, isolation_level=None))
    _fill(conn, n)
    if mode != "sqlite":
        conn.execute("VACUUM ANALYZE tasks")
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=claimer, args=(mode, where, f"ctl{i}", go, out)) for i in range(k)]
    for p in procs:
        p.start()
    time.sleep(1.5 + 0.5 * k)  # let every claimer connect before the start signal
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    ids = [t for r in results for t, _ in r["got"]]
    gens = [g for r in results for _, g in r["got"]]
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    table = conn.execute("SELECT COUNT(*), SUM(CASE WHEN generation = 1 THEN 1 ELSE 0 END), "
                         "SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END) FROM tasks").fetchone()
    lat = sorted(x for r in results for x in r["lat"])
    return {"mode": mode, "claimers": k, "claims": len(ids), "double": len(ids) - len(set(ids)),
            "missed": n - len(set(ids)), "bad_gen": sum(1 for g in gens if g != 1),
            "table_ok": (int(table[0]), int(table[1] or 0), int(table[2] or 0)) == (n, n, n),
            "seconds": span, "per_s": len(ids) / span if span else 0.0,
            "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
            "split": sorted(len(r["got"]) for r in results)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--claimers", type=int, default=4)
    ap.add_argument("--skip-wait", action="store_true", help="leave out plain FOR UPDATE")
    args = ap.parse_args()
    from support.postgres import PostgresServer, missing_reason

    why = missing_reason()
    if why:
        print(f"skipped: {why}")
        return 0
    print(f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"{args.tasks} tasks")
    pg = PostgresServer().start()
    try:
        url = pg.create_database("claims")
        PgConnection(url)  # migrate once
        scratch = tempfile.mkdtemp(prefix="bench-claims-")
        plan = [("pg", url, 1), ("pg", url, args.claimers)]
        if not args.skip_wait:
            plan.append(("pg-wait", url, args.claimers))
        plan.append(("sqlite", str(Path(scratch) / "hive.db"), args.claimers))
        rows = []
        for mode, where, k in plan:
            r = run(mode, where, args.tasks, k)
            rows.append(r)
            print(f"{mode:8s} x{k}: {r['claims']} claims in {r['seconds']:.2f} s = "
                  f"{r['per_s']:,.0f}/s; claim+start p50 {r['p50_ms']:.2f} ms p95 {r['p95_ms']:.2f} ms;"
                  f" double {r['double']}, missed {r['missed']}, generation!=1 {r['bad_gen']}, "
                  f"table ok {r['table_ok']}; split {r['split']}", flush=True)
        base = rows[0]["per_s"]
        for r in rows[1:]:
            print(f"  {r['mode']} x{r['claimers']} / pg x1: {r['per_s'] / base:.2f}x")
        print(f"load after: {os.getloadavg()[0]:.2f}")
        bad = [r for r in rows if r["double"] or r["missed"] or r["bad_gen"] or not r["table_ok"]]
        return 1 if bad else 0
    finally:
        pg.stop()


if __name__ == "__main__":
    sys.exit(main())
