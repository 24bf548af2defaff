"""A server that died in the middle of a merge: the queue goes on from its store and never
merges a branch twice. Real git, the real store and queue (the facade, no HTTP: the death is
simulated exactly where it matters, between writing the merge and recording it)."""
from __future__ import annotations

import asyncio
import secrets
import sqlite3
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from hive_lab.core.agents import load_profiles
from hive_lab.core.facade import Hive, HiveConfig
from support import git


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    socket = f"hivetest-{secrets.token_hex(4)}"
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    git(repo, "switch", "-q", "-c", "f")
    (repo / "f.txt").write_text("f\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "f")
    git(repo, "switch", "-q", "main")
    yield repo, tmp_path / "data", socket
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def hive(data: Path, socket: str, repo: Path) -> Hive:
    return Hive(HiveConfig(data_dir=data, tmux_socket=socket, default_cwd=repo,
                           profiles=load_profiles({})))


async def drive(h: Hive, mid: int, state: str) -> None:
    for _ in range(400):
        await h.merges.tick()
        if h.merges.get(mid).state == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"#{mid} never reached {state}: {h.merges.get(mid)}")


def die_while_merging(h: Hive, data: Path, mid: int) -> None:
    """What the store holds when the server died after marking the item merging."""
    h.merges.close()
    h.tasks.close()
    h.budgets.close()
    h.notify.close()
    h.store.close()
    with sqlite3.connect(data / "hive.db") as db:
        db.execute("UPDATE merges SET state = 'merging' WHERE id = ?", (mid,))


def merges_on_main(repo: Path) -> list[str]:
    return git(repo, "rev-list", "--merges", "main").split()


@pytest.mark.parametrize("merge_written", [True, False])
def test_a_restart_mid_merge_never_merges_twice(setup: tuple[Path, Path, str],
                                               merge_written: bool) -> None:
    repo, data, socket = setup
    first = hive(data, socket, repo)
    item = first.merges.offer(str(repo), "f", "main", [["true"]], "test")
    asyncio.run(drive(first, item.id, "awaiting_approval"))
    first.merges.approve(item.id)
    die_while_merging(first, data, item.id)
    if merge_written:  # the merge commit landed; recording it did not
        git(repo, "merge", "-q", "--no-ff", "--no-edit", "f")
    second = hive(data, socket, repo)
    try:
        asyncio.run(drive(second, item.id, "merged"))
        done = second.merges.get(item.id)
        assert len(merges_on_main(repo)) == 1  # exactly one merge of f, either way
        assert done.merged_sha == git(repo, "rev-parse", "main").strip()
        assert ("found in the base" in done.reason) == merge_written
        asyncio.run(second.merges.tick())  # and it stays so
        assert len(merges_on_main(repo)) == 1 and second.merges.get(item.id).state == "merged"
    finally:
        second.merges.close()
        second.tasks.close()
        second.store.close()
