"""Run every benchmark in benchmarks/ one after another (``make bench``).

    python benchmarks/run_all.py [--only tick,events] [--skip usage]

Each ``bench_*.py`` runs as its own subprocess with this interpreter, from the repository
root, its output streamed as it comes. Known ones run in a fixed order (cheap first); any other
``bench_*.py`` found here runs after them. Exits 1 if any benchmark exits non-zero (or cannot
start), after running the rest. Figures are recorded by hand in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ORDER = ["tick", "planner", "budgets", "hook", "git", "usage", "events", "panel"]


def discover() -> list[str]:
    found = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated names (" + ", ".join(ORDER) + ")")
    ap.add_argument("--skip", default="", help="comma-separated names to leave out")
    args = ap.parse_args(argv)
    names = discover()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            ap.error(f"unknown benchmark(s) {', '.join(unknown)}; have {', '.join(names)}")
        names = [n for n in names if n in wanted]
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    names = [n for n in names if n not in skip]

    results: list[tuple[str, int, float]] = []
    for name in names:
        script = HERE / f"bench_{name}.py"
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\n{'=' * 78}\n== {script.relative_to(ROOT)}  (load average {load}, "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n{'=' * 78}", flush=True)
        start = time.monotonic()
        try:
            code = subprocess.run([sys.executable, str(script)], cwd=ROOT).returncode
        except OSError as exc:
            print(f"cannot run {script}: {exc}", flush=True)
            code = 127
        except KeyboardInterrupt:
            print(f"\ninterrupted during {script.name}", flush=True)
            return 130
        results.append((name, code, time.monotonic() - start))

    print(f"\n{'=' * 78}\n== summary ({os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    for name, code, seconds in results:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"   bench_{name + '.py':<12} {seconds:7.1f} s  {status}")
    failed = [name for name, code, _ in results if code != 0]
    if failed:
        print(f"{len(failed)} of {len(results)} benchmarks failed: {', '.join(failed)}")
        return 1
    print(f"all {len(results)} benchmarks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
