"""Cost of one status tick for 1, 10 and 100 live sessions: batched vs naive.

quiet    = Hive Lab's real ``SessionManager.tick()`` when no pane printed since the last tick:
           one ``list-panes -a`` for every pane (the common case).
active   = the same tick when every pane printed (the worst case): ``list-panes -a`` plus one
           more tmux process capturing every screen.
naive    = what a straightforward poller does: per pane, one ``display-message`` for its
           state and one ``capture-pane`` for its screen (2 tmux processes per pane).

Run: python benchmarks/bench_tick.py [--sizes 1,10,100] [--rounds 30]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hive_lab.core.agents import load_profiles  # noqa: E402
from hive_lab.core.bus import Broadcaster  # noqa: E402
from hive_lab.core.datadir import DataDir  # noqa: E402
from hive_lab.core.recorder import Recorder  # noqa: E402
from hive_lab.core.sessions import Session, SessionManager  # noqa: E402
from hive_lab.core.signals import Signals  # noqa: E402
from hive_lab.core.status import Tracker  # noqa: E402
from hive_lab.core.store import Store  # noqa: E402
from hive_lab.core.tmux import PANE_FORMAT, Tmux  # noqa: E402


def build(n: int, work: Path) -> tuple[Tmux, SessionManager]:
    tmux = Tmux(f"bench-tick-{n}", work / "tmux.conf")
    tmux.write_config()
    store = Store(work / "hive.db")
    tracker, signals = Tracker(), Signals()
    manager = SessionManager(tmux, store, Recorder(store, Broadcaster(), tracker, signals), tracker,
                             load_profiles({}), DataDir(work), work, signals)
    for i in range(n):
        name = f"s{i:03d}"
        # Quiet panes (no CPU load of their own); the tick is forced to treat every one as
        # changed, so each round captures every screen: the worst case.
        pane = tmux.new_session(name, ["sh", "-c", f"seq 1 40; echo session {i}; exec cat"],
                                str(work), {}, {"hive": 1, "name": name})
        session = Session(name=name, agent="shell", command=["sh"], cwd=str(work),
                          created=time.time(), spawn_id="", pane_id=pane.pane_id, pid=pane.pid)
        manager.sessions[name] = session
    return tmux, manager


def naive_tick(tmux: Tmux, pane_ids: list[str]) -> None:
    base = [tmux.binary, "-L", tmux.socket_name]
    for pane_id in pane_ids:
        subprocess.run([*base, "display-message", "-p", "-t", pane_id, PANE_FORMAT],
                       capture_output=True, check=True)
        subprocess.run([*base, "capture-pane", "-p", "-t", pane_id], capture_output=True, check=True)


def timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(f"# status tick benchmark — {platform.node()} {platform.machine()}, "
          f"{__import__('os').cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
          f"{subprocess.run(['tmux', '-V'], capture_output=True, text=True).stdout.strip()}")
    print(f"{'sessions':>8} {'quiet p50':>10} {'quiet p95':>10} {'active p50':>11} "
          f"{'active p95':>11} {'naive p50':>10} {'naive p95':>10} {'naive/active':>13}")
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            tmux, manager = build(n, Path(tmp))
            try:
                time.sleep(0.3)
                pane_ids = [s.pane_id for s in manager.sessions.values()]

                def active() -> None:
                    for s in manager.sessions.values():
                        s.last_activity = 0  # force: every pane counts as changed
                    manager.tick()

                active()  # warm-up; also records the activity stamps for the quiet ticks
                manager.tick()
                q = timed(manager.tick, args.rounds)
                a = timed(active, args.rounds)
                nv = timed(lambda: naive_tick(tmux, pane_ids), max(5, args.rounds // 3))
                p50 = statistics.median
                def p95(xs: list[float]) -> float:
                    return sorted(xs)[int(0.95 * (len(xs) - 1))]
                print(f"{n:>8} {p50(q):>8.2f}ms {p95(q):>8.2f}ms {p50(a):>9.2f}ms {p95(a):>9.2f}ms "
                      f"{p50(nv):>8.1f}ms {p95(nv):>8.1f}ms {p50(nv) / p50(a):>12.1f}x")
            finally:
                tmux.kill_server()
                manager.store.close()


if __name__ == "__main__":
    main()
