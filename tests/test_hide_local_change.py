"""gitwatch.hide_local_change: Hive Lab's own edit of a project file stays out of git status.

Real git repos and worktrees in tmp dirs. Gemini CLI's hooks go into ``.gemini/settings.json``,
which a project may commit (then: skip-worktree in that worktree's index) or not (then: the
repository's info/exclude).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hive_lab.core import gitwatch
from hive_lab.core.errors import BadRequest


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e",
                          *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / ".gemini").mkdir(parents=True)
    (path / ".gemini" / "settings.json").write_text('{"ui": {}}\n')
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


def test_a_tracked_file_is_hidden_in_one_worktree_and_shown_again(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "hive/x", str(wt))
    (wt / ".gemini" / "settings.json").write_text('{"ui": {}, "hooks": {}}\n')
    assert git(wt, "status", "--porcelain") == " M .gemini/settings.json\n"
    assert gitwatch.hide_local_change(wt, ".gemini/settings.json") == "skip-worktree"
    assert git(wt, "status", "--porcelain") == ""
    (repo / ".gemini" / "settings.json").write_text('{"mine": 1}\n')  # the main checkout: as before
    assert git(repo, "status", "--porcelain") == " M .gemini/settings.json\n"
    assert gitwatch.hide_local_change(wt, ".gemini/settings.json", hide=False) == "skip-worktree"
    assert git(wt, "status", "--porcelain") == " M .gemini/settings.json\n"


def test_an_untracked_file_is_excluded(tmp_path: Path) -> None:
    path = tmp_path / "bare"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "commit", "-q", "--allow-empty", "-m", "initial")
    (path / ".gemini").mkdir()
    (path / ".gemini" / "settings.json").write_text("{}")
    assert gitwatch.hide_local_change(path, ".gemini/settings.json") == "excluded"
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../b", "a\nb"])
def test_paths_outside_the_worktree_are_refused(repo: Path, bad: str) -> None:
    with pytest.raises(BadRequest):
        gitwatch.hide_local_change(repo, bad)
    assert git(repo, "status", "--porcelain") == ""
