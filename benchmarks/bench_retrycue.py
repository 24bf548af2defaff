"""Cost of reading Claude Code's own retry countdown off the screen, per status decision.

Every captured screen of a Claude session now also goes through the ``retrying`` cue
(hive_lab/core/retrycue.py). This times ``decide_from_screen`` on Claude-like screens (the
pane height of a session, 50 lines of up to 200 columns: conversation, tool output, spinner,
input box), with the cue and without it (the baseline, same run), and on a screen showing the
countdown. The tick decides at most one screen per session per poll.

Run: python benchmarks/bench_retrycue.py [--screens 100] [--rounds 30]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hive_lab.core.agents import CLAUDE_CUES  # noqa: E402
from hive_lab.core.status import WORKING, HookMemory, State, decide_from_screen  # noqa: E402

BOX = "─" * 198 + "\n❯ \n" + "─" * 198 + "\n  ? for shortcuts\n"


def screen(rng: random.Random, retry: bool, glyph_lines: float, near_miss: bool = False) -> str:
    """``glyph_lines``: the share of lines starting with the spinner's ✻ (a real screen has a
    few, "✻ Worked for 12s"); ``near_miss``: they also hold " · Retrying in " (the adversarial
    case: the literal pre-check passes and every such line is searched, and fails, in full)."""
    lines = []
    for _ in range(44):
        kind = rng.random()
        if kind < glyph_lines:
            miss = " · Retrying in soon · attempt x" if near_miss else ""
            lines.append("✻ Worked for 12s " + "· x " * rng.randint(0, 45) + miss)
        elif kind < 0.5:
            lines.append("● " + "word " * rng.randint(3, 38))
        else:
            lines.append("  ⎿  " + "x · y " * rng.randint(1, 32))
    spinner = ("✻ API error · Retrying in 4s · attempt 3/10" if retry
               else "✻ Thinking… (12s · ↓ 1.2k tokens · esc to interrupt)")
    return "\n".join(lines) + f"\n\n{spinner}\n  esc to interrupt\n{BOX}"


def time_decisions(screens: list[str], cues: object, rounds: int) -> list[float]:
    prev, memory = State(WORKING, "hook:UserPromptSubmit", 0.0), HookMemory()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for text in screens:
            decide_from_screen(text, cues, True, prev, memory, 0.0, 100.0)  # type: ignore[arg-type]
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--screens", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    rng = random.Random(7)
    plain = [screen(rng, False, 0.07) for _ in range(args.screens)]
    retrying = [screen(rng, True, 0.07) for _ in range(args.screens)]
    hostile = [screen(rng, False, 1.0, near_miss=True) for _ in range(args.screens)]
    without = replace(CLAUDE_CUES, retrying=())
    rows = [("without the retrying cue (baseline)", time_decisions(plain, without, args.rounds)),
            ("with it, no countdown on screen", time_decisions(plain, CLAUDE_CUES, args.rounds)),
            ("with it, every screen counting down", time_decisions(retrying, CLAUDE_CUES,
                                                                   args.rounds)),
            ("adversarial: every line a near miss", time_decisions(hostile, CLAUDE_CUES,
                                                                     args.rounds))]
    base = statistics.median(rows[0][1])
    print(f"{args.screens} screens per round, {args.rounds} rounds")
    print(f"{'case':38} {'p50 ms':>8} {'p95 ms':>8} {'vs base':>8}")
    for name, ms in rows:
        p50, p95 = statistics.median(ms), sorted(ms)[int(0.95 * (len(ms) - 1))]
        print(f"{name:38} {p50:8.2f} {p95:8.2f} {p50 / base:7.2f}x")


if __name__ == "__main__":
    main()
