"""Cost of one planning tick: 1,000 tasks, 50 profiles, 50 running sessions (target < 10 ms).

planner  = ``hive_lab.orchestrate.planner.plan``: scopes of running tasks indexed by
           (repository, literal first segment), compiled patterns and pair answers cached
           across ticks (the same scopes come back every tick).
cold     = the same, first tick after clearing every cache (a server start).
naive    = the same rules written the obvious way: every candidate against every scope
           holder, pattern pair by pair, nothing cached or indexed. Both must give the same
           plan (checked).

Run: python benchmarks/bench_planner.py [--tasks 1000] [--profiles 50] [--running 50] [--rounds 30]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hive_lab.orchestrate import scopes  # noqa: E402
from hive_lab.orchestrate.planner import Limits, Plan, ProfileInfo, RunningInfo, Start, plan  # noqa: E402
from hive_lab.orchestrate.planner import _eligible  # noqa: E402
from hive_lab.orchestrate.tasks import ACTIVE, DONE, PENDING, READY, RUNNING, Task  # noqa: E402

CAPS = ["implement", "review", "tests", "python", "frontend", "docs", "rust", "sql"]


def world(n_tasks: int, n_profiles: int, n_running: int, seed: int = 7):
    rnd = random.Random(seed)
    repos = [f"/repos/r{k}" for k in range(5)]

    def scope() -> tuple[str, ...]:
        kind = rnd.random()
        pkg = f"pkg{rnd.randrange(40)}"
        if kind < 0.5:
            return (f"{pkg}/**", f"tests/test_{pkg}.py")
        if kind < 0.8:
            return (f"{pkg}/mod{rnd.randrange(10)}.py", f"{pkg}/mod{rnd.randrange(10)}_*.py")
        if kind < 0.95:
            return (f"docs/{pkg}/*.md",)
        return ()

    tasks: list[Task] = []
    for i in range(n_tasks):
        state = RUNNING if i < n_running else rnd.choice([READY] * 6 + [PENDING, DONE, DONE])
        deps = tuple(f"t{rnd.randrange(i)}" for _ in range(rnd.randrange(2))) if i > n_running else ()
        tasks.append(Task(id=f"t{i}", prompt="p", repo=rnd.choice(repos), state=state, scope=scope(),
                          requires=tuple(rnd.sample(CAPS, rnd.randrange(3))),
                          priority=rnd.randrange(5), created=float(rnd.randrange(10_000)),
                          depends_on=tuple(dict.fromkeys(deps))))
    profiles = [ProfileInfo(f"p{k}", frozenset(rnd.sample(CAPS, rnd.randrange(2, 6))),
                            rnd.random() > 0.1, rnd.choice([None, 1, 2, 4])) for k in range(n_profiles)]
    names = [p.name for p in profiles]
    sessions = [RunningInfo(f"t{i}", rnd.choice(names)) for i in range(n_running)]
    conflicts = {frozenset({f"t{rnd.randrange(n_tasks)}", f"t{rnd.randrange(n_tasks)}"}) for _ in range(100)}
    return tasks, profiles, sessions, {c for c in conflicts if len(c) == 2}, Limits(max_agents=n_running + 10)


def _overlap_uncached(a: str, b: str) -> bool:
    return scopes.patterns_overlap.__wrapped__(a, b)


def naive_plan(tasks, profiles, sessions, conflicts, limits, now) -> Plan:
    """The same rules, written without an index or caches (the baseline)."""
    all_tasks = sorted(tasks, key=lambda t: t.id)
    by_id = {t.id: t for t in all_tasks}
    profs = sorted(profiles, key=lambda p: p.name)
    load: dict[str, int] = defaultdict(int)
    for s in sessions:
        load[s.profile] += 1
    fleet = len(list(sessions))
    out = Plan()
    holders = [(t, "running") for t in all_tasks if t.state in ACTIVE]
    cands = []
    for t in all_tasks:
        if t.state not in (READY, PENDING):
            continue
        waits = [d for d in t.depends_on if by_id.get(d) is None or by_id[d].state != DONE]
        if waits:
            dead = [d for d in waits if d in by_id and by_id[d].state in ("failed", "canceled")]
            out.why[t.id] = (f"dependency {dead[0]} {by_id[dead[0]].state}; this task cannot start"
                             if dead else "waits for task " + ", ".join(waits))
            continue
        if t.state == PENDING:
            out.promote.append(t.id)
        cands.append(t)
    cands.sort(key=lambda t: (-t.priority, t.created, t.id))
    for t in cands:
        eligible = _eligible(t, profs, {p.name: p for p in profs})
        if isinstance(eligible, str):
            out.why[t.id] = eligible
            continue
        hits = []
        for pattern in t.scope:
            for h, label in holders:
                if h.repo != t.repo or h.id == t.id:
                    continue
                found = next(((h.id, q, label) for q in h.scope if _overlap_uncached(pattern, q)), None)
                if found:
                    hits.append(found)
                    break
        if hits:
            other, pattern, label = min(hits)
            out.why[t.id] = (f"scope overlaps running task {other} on {pattern}" if label == "running"
                             else f"scope overlaps task {other} (starting now) on {pattern}")
            continue
        holding = {h.id for h, _ in holders}
        rival = sorted(x for x in holding if frozenset({t.id, x}) in conflicts)
        if rival:
            kind = "running task" if by_id[rival[0]].state in ACTIVE else "task"
            out.why[t.id] = f"branch predicted to conflict with {kind} {rival[0]}"
            continue
        if limits.max_agents is not None and fleet >= limits.max_agents:
            out.why[t.id] = f"fleet at max_agents={limits.max_agents}"
            continue
        free = [p for p in eligible if p.max_sessions is None or load[p.name] < p.max_sessions]
        if not free:
            out.why[t.id] = ", ".join(f"profile {p.name} at max_sessions={p.max_sessions}" for p in eligible)
            continue
        chosen = min(free, key=lambda p: (load[p.name], p.name))
        out.start.append(Start(t.id, chosen.name))
        load[chosen.name] += 1
        fleet += 1
        holders.append((t, "starting"))
    return out


def clear_caches() -> None:
    for f in (scopes.compile_pattern, scopes.patterns_overlap, scopes._segments_disjoint, scopes._segment_regex):
        f.cache_clear()


def timed(fn, *args) -> tuple[float, Plan]:
    t0 = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - t0) * 1000, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--profiles", type=int, default=50)
    ap.add_argument("--running", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)
    w = world(args.tasks, args.profiles, args.running)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"planner tick: {args.tasks} tasks, {args.profiles} profiles, {args.running} running; "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, load {load}")
    clear_caches()
    cold, first = timed(plan, *w, 0.0)
    fast: list[float] = []
    naive: list[float] = []
    for _ in range(args.rounds):  # interleaved, so both see the same machine
        ms, p = timed(plan, *w, 0.0)
        fast.append(ms)
        ms, q = timed(naive_plan, *w, 0.0)
        naive.append(ms)
    same = (p.start, p.why, p.promote) == (q.start, q.why, q.promote) == (first.start, first.why, first.promote)
    ready = sum(1 for t in w[0] if t.state in (READY, PENDING))
    print(f"  plan: {len(p.start)} started, {len(p.why)} with a why, of {ready} ready/pending; "
          f"same plan from both: {same}")
    def row(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        return (f"  {name:<8} median {statistics.median(xs):8.2f} ms   p95 {xs[int(0.95 * (len(xs) - 1))]:8.2f} ms"
                f"   x planner {statistics.median(xs) / statistics.median(fast):6.1f}")
    print(row("planner", fast))
    print(f"  {'cold':<8} first tick {cold:8.2f} ms")
    print(row("naive", naive))
    met = statistics.median(fast) < 10.0
    print(f"  target < 10 ms per tick: {'met' if met else 'MISSED'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
