"""Cost of ordering the merge queue, paid on every tick: 20 branches queued on one base.

warm     = ``MergeQueue._plan``: the heads of all branches from one ``git for-each-ref``,
           changed files and merge-tree predictions cached by commit pair (the same heads
           come back every tick), then the pure order.
cold     = the same with empty caches (a server start, or every head moved): one ``git diff
           --name-only`` per branch, ``git merge-tree`` only for pairs that changed a common
           file, plus one per branch against the base.
naive    = per-branch ``rev-parse``, no cache, merge-tree for all 190 pairs (what a tick
           would cost without any of it). Both must give the same order (checked).
baseline = one ``git rev-parse HEAD`` process, measured in the same run: the ratios are
           what to compare across machines.

Run: python benchmarks/bench_mergeq.py [--branches 20] [--files 400] [--rounds 15]
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hive_lab.core import gitmerge  # noqa: E402
from hive_lab.core.agents import load_profiles  # noqa: E402
from hive_lab.core.facade import Hive, HiveConfig  # noqa: E402
from hive_lab.core.gitwatch import ConflictPredictor  # noqa: E402
from hive_lab.orchestrate.mergeplan import order  # noqa: E402

ENV = {**os.environ, "GIT_AUTHOR_NAME": "B", "GIT_AUTHOR_EMAIL": "b@e",
       "GIT_COMMITTER_NAME": "B", "GIT_COMMITTER_EMAIL": "b@e"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=ENV).stdout


def make_repo(root: Path, n_files: int, n_branches: int) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(n_files):
        (repo / "src" / f"m{i}.py").write_text("".join(f"line {j}\n" for j in range(40)))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    for b in range(n_branches):
        git(repo, "switch", "-q", "-c", f"b{b}", "main")
        # every fourth branch edits a shared file's first line: those conflict pairwise
        targets = [f"src/m{b * 3 % n_files}.py", f"src/m{(b * 3 + 1) % n_files}.py"]
        if b % 4 == 0:
            targets.append("src/m0.py")
        for rel in targets:
            path = repo / rel
            path.write_text(f"branch {b}\n" + path.read_text().split("\n", 1)[1])
        git(repo, "commit", "-qam", f"b{b}")
    git(repo, "switch", "-q", "main")
    return repo


def naive_plan(queue, group):  # type: ignore[no-untyped-def]
    repo, base = group[0].repo, group[0].base
    heads = {i.id: gitmerge.head_of(repo, i.branch) for i in group}
    tip = gitmerge.head_of(repo, base)
    fresh = ConflictPredictor()
    pairs, against = {}, {}
    for n, a in enumerate(group):
        for b in group[n + 1:]:
            p = fresh.predict_pair(repo, f"m{a.id}", heads[a.id], f"m{b.id}", heads[b.id])
            if p.conflict:
                pairs[frozenset((a.id, b.id))] = p.paths
    for i in group:
        p = fresh.predict_pair(repo, "base", tip, f"m{i.id}", heads[i.id])
        if p.conflict:
            against[i.id] = p.paths
    return order(group, pairs, against)


def timed(fn, rounds: int) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    out, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out, result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--branches", type=int, default=20)
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    socket = f"hivebench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root, args.files, args.branches)
        hive = Hive(HiveConfig(data_dir=root / "data", tmux_socket=socket, default_cwd=repo,
                               profiles=load_profiles({})))
        try:
            q = hive.merges
            for b in range(args.branches):
                q.offer(str(repo), f"b{b}", "main", [], "bench")
            group = q.list()
            baseline, _ = timed(lambda: git(repo, "rev-parse", "HEAD"), args.rounds)
            cold, _ = timed(lambda: (setattr(q, "predictor", ConflictPredictor()),
                                     q._changed.clear(), q._plan(group))[2],
                            max(3, args.rounds // 3))
            warm, got = timed(lambda: q._plan(group), args.rounds)
            naive, want = timed(lambda: naive_plan(q, group), max(3, args.rounds // 3))
            same = [(p.item.id, p.reason) for p in got] == [(p.item.id, p.reason) for p in want]
            conflicts = sum(1 for p in got if p.predicted)
        finally:
            q.close()
            hive.tasks.close()
            hive.store.close()
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    med = {k: statistics.median(v) for k, v in
           {"baseline": baseline, "cold": cold, "warm": warm, "naive": naive}.items()}
    print(f"merge queue order, {args.branches} branches ({conflicts} with predicted conflicts), "
          f"{args.files}-file repo; load {os.getloadavg()[0]:.1f}")
    for k in ("baseline", "warm", "cold", "naive"):
        print(f"  {k:<8} median {med[k]:8.2f} ms   ({med[k] / med['baseline']:.1f}x a git "
              "rev-parse)")
    print(f"  naive / warm: {med['naive'] / med['warm']:.1f}x; same order: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
