"""Budget work per tick: 50 live sessions, 2,000 usage rows per minute, one run.

Each simulated tick is one second: ~33 new usage rows (spread over the sessions) arrive and
the keeper evaluates every limit in force. Three ways, same rows, same run:

ledger     = what Hive Lab does per tick without budgets: the rows offered to the sessions'
             usage ledgers (dedup), nothing else
no limits  = the same + the budget keeper counting the rows (no limit configured)
budgets    = the same + every kind of limit: a task budget and a session default for each
             session, per-profile day and 5h limits (5 profiles), fleet day and 5h limits;
             evaluation, forecast and warnings each tick

An hour of history (120,000 rows) is counted first, so the figures are for a warm keeper.
Budget: the extra work of "budgets" over "ledger" stays under 5 ms per tick.

Run: python benchmarks/bench_budgets.py [--ticks 300] [--sessions 50] [--rate 2000]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hive_lab.core.status import State  # noqa: E402
from hive_lab.core.store import Store  # noqa: E402
from hive_lab.orchestrate.budgetkeeper import BudgetKeeper  # noqa: E402
from hive_lab.orchestrate.budgets import BudgetConfig  # noqa: E402
from hive_lab.orchestrate.tasks import RUNNING, Attempt, Task  # noqa: E402
from hive_lab.usage.parse import UsageLedger, UsageRow  # noqa: E402

PROFILES = ("claude", "codex", "gemini", "aider", "shell")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make_row(i: int, t: float) -> UsageRow:
    return UsageRow(time=datetime.fromtimestamp(t, timezone.utc), session_id="s", project="p",
                    model="claude-opus-4-8", input=1000 + i % 97, output=200, cache_write_5m=0,
                    cache_write_1h=0, cache_read=5000, cost=0.004 + (i % 7) * 1e-4,
                    message_id=f"m{i}", request_id=f"r{i}", sidechain=False, source="x")


def build(work: Path, n: int, config: dict, clock: Clock) -> tuple[BudgetKeeper, list[str]]:
    Store(work / "hive.db").close()  # the schema (migrations)
    names = [f"s{i}" for i in range(n)]
    sessions = {name: SimpleNamespace(name=name, agent=PROFILES[i % len(PROFILES)], created=T0,
                                      task=name, external=False, pane_id=None)
                for i, name in enumerate(names)}
    tracker = SimpleNamespace(get=lambda name: State("working", "hook", T0))
    profiles = {p: SimpleNamespace(hooks="claude", answers={}) for p in PROFILES}
    manager = SimpleNamespace(sessions=sessions, tracker=tracker, profiles=profiles)
    tasks_by_id = {name: Task(id=name, prompt="p", repo="/r", state=RUNNING,
                              budget={"dollars": 1e6, "tokens": 10**12},
                              attempts=[Attempt(name, 1, started=T0)]) for name in names}
    tasks = SimpleNamespace(task_record=tasks_by_id.get)
    usage = SimpleNamespace(fresh={})
    recorder = SimpleNamespace(record_now=lambda events: None)
    signals = SimpleNamespace(usage=SimpleNamespace(connect=lambda f: None))
    deciders = SimpleNamespace(register=lambda f: None, register_preparer=lambda f: None)
    keeper = BudgetKeeper(work / "hive.db", manager, usage, recorder, signals, deciders,  # type: ignore[arg-type]
                          tasks, BudgetConfig.parse(config), grace=20.0, clock=clock)
    keeper._primed = True
    return keeper, names


CONFIG = {"session": {"dollars": 1e6, "minutes": 1e6},
          "profile": {p: [{"dollars": 1e6, "window": "day"}, {"tokens": 10**12, "window": "5h"}]
                      for p in PROFILES},
          "fleet": [{"dollars": 1e6, "window": "day"}, {"dollars": 1e6, "window": "5h"}]}


def run(mode: str, ticks: int, n: int, rate: int) -> list[float]:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        keeper, names = build(Path(tmp), n, CONFIG if mode == "budgets" else {}, clock)
        ledgers = {name: UsageLedger() for name in names}
        per_tick = rate / 60.0
        i = 0

        def one_tick(measure: bool) -> float:
            nonlocal i
            start = time.perf_counter()
            due = int(per_tick * (clock.now - T0 + 1)) - int(per_tick * (clock.now - T0))
            fresh: dict[str, list[UsageRow]] = {}
            for _ in range(due):
                name = names[i % n]
                row = make_row(i, clock.now)
                kept, _ = ledgers[name].add(row)
                if kept is not None:
                    fresh.setdefault(name, []).append(kept)
                i += 1
            if mode != "ledger":
                for name, rows in fresh.items():
                    for row in rows:
                        keeper.ingest(name, keeper.sessions.sessions[name].agent, row)
                now = clock()
                statuses, _ = keeper.evaluate_all(now)
                for status in statuses.values():
                    keeper._warn(status)
            elapsed = time.perf_counter() - start
            clock.now += 1.0
            return elapsed

        for _ in range(3600):  # an hour of history first
            one_tick(False)
        return [one_tick(True) * 1000 for _ in range(ticks)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--rate", type=int, default=2000, help="usage rows per minute")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {args.sessions} sessions, {args.rate} rows/min, "
          f"{args.ticks} ticks after an hour of history")
    results = {mode: run(mode, args.ticks, args.sessions, args.rate)
               for mode in ("ledger", "no limits", "budgets")}
    base = statistics.median(results["ledger"])
    print(f"{'mode':<10} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'x ledger':>9}")
    for mode, times in results.items():
        times.sort()
        med = statistics.median(times)
        print(f"{mode:<10} {med:10.3f} {times[int(len(times) * 0.95)]:8.3f} {times[-1]:8.3f} "
              f"{med / base:9.1f}")
    extra = statistics.median(results["budgets"]) - base
    p95 = sorted(results["budgets"])[int(args.ticks * 0.95)]
    print(f"budget work per tick (budgets - ledger, median): {extra:.3f} ms; target < 5 ms: "
          f"{'PASS' if extra < 5.0 else 'FAIL'} (budgets tick p95 {p95:.3f} ms: load and the "
          f"interpreter's full GC passes show there)")
    sys.exit(0 if extra < 5.0 else 1)


if __name__ == "__main__":
    main()
