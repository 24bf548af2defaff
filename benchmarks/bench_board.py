"""The task board and money view redraw only what changed: how much cheaper than a rebuild?

    python benchmarks/bench_board.py [--tasks 200] [--points 2000] [--rounds 30]

Kernel side only (no server: the views read ``live.data``, which the control room's
LiveState fills), so it measures the views' own work on the kernel's thread:

- board: one task of ``--tasks`` changes state (its card moves column) and ``update`` runs,
  against the baseline a naive view would do, building the whole board again;
- money: one new fleet total is appended to a cost chart holding ``--points`` points (the
  traces grow in place), against rebuilding that FigureWidget with every point.

Ratios are against the baseline measured in the same run, so they hold on any machine.
Results: benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import plotly.graph_objects as go  # noqa: E402

from hive_lab.widgets.board import TaskBoard  # noqa: E402
from hive_lab.widgets.money import MoneyView  # noqa: E402
from hive_lab.wire import TASK_STATES  # noqa: E402


@dataclass
class Data:
    tasks: list[dict[str, Any]] = field(default_factory=list)
    scopes: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)


class Client:
    def transitions(self, session: str | None = None, after: int = 0) -> list[Any]:
        return []


class Live:
    def __init__(self) -> None:
        self.client = Client()
        self.data = Data()

    def on_change(self, cb: Any) -> Any:
        return cb


def task(i: int, state: str) -> dict[str, Any]:
    return {"id": f"t{i}", "title": f"Task number {i}", "state": {"name": state, "reason": "r"},
            "attempts": [{"profile": "claude", "outcome": None}], "max_attempts": 3,
            "why": "waits for a free agent", "priority": 0, "created": float(i)}


def median_ms(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_board(n: int, rounds: int) -> tuple[float, float]:
    live = Live()
    live.data.tasks = [task(i, TASK_STATES[i % len(TASK_STATES)]) for i in range(n)]
    board = TaskBoard(live)
    flip = [0]

    def one_moves() -> None:
        flip[0] += 1
        tasks = list(live.data.tasks)
        tasks[0] = task(0, "running" if flip[0] % 2 else "done")
        live.data.tasks = tasks
        board.update({"tasks"})

    def rebuild() -> None:
        TaskBoard(live)

    return median_ms(one_moves, rounds), median_ms(rebuild, max(3, rounds // 5))


def bench_money(points: int, rounds: int) -> tuple[float, float]:
    live = Live()
    view = MoneyView(live, seed=False)
    for i in range(points):
        view.add_point(i * 0.01, i * 10, at=f"2026-12-02T00:{i // 60 % 60:02d}:{i % 60:02d}")
    count = [points]

    def append() -> None:
        count[0] += 1
        view.add_point(count[0] * 0.01, count[0] * 10)

    def rebuild() -> None:
        x = list(view.spend.data[0].x)
        fig = go.Figure([go.Scatter(x=x, y=list(view.spend.data[0].y)),
                         go.Scatter(x=x, y=list(view.spend.data[1].y))])
        go.FigureWidget(fig)

    return median_ms(append, rounds), median_ms(rebuild, max(3, rounds // 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    moved, board_rebuild = bench_board(args.tasks, args.rounds)
    appended, fig_rebuild = bench_money(args.points, args.rounds)
    print(f"board, {args.tasks} tasks: one card moves {moved:.2f} ms, whole board rebuilt "
          f"{board_rebuild:.1f} ms: {board_rebuild / moved:.0f}x less work")
    print(f"money, {args.points} points: one point appended {appended:.2f} ms, figure rebuilt "
          f"{fig_rebuild:.1f} ms: {fig_rebuild / appended:.0f}x less work")


if __name__ == "__main__":
    main()
