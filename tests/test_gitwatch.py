"""gitwatch against real git repositories in tmp dirs (git configured per test through env)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hive_lab.core import gitwatch as gw
from hive_lab.core.errors import BadRequest, Conflict, GitError, NotFound

IDENTITY = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com"}
LEAKY = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
         "GIT_CEILING_DIRECTORIES", "GIT_CONFIG_COUNT", "GIT_OPTIONAL_LOCKS")


def test_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    env.update(IDENTITY, GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1")
    return env


test_env.__test__ = False  # type: ignore[attr-defined]


def git(cwd: Path | str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """The tests' own git (it may write: commits, merges, pushes)."""
    proc = subprocess.run(["git", *args], cwd=cwd, env=env or dict(os.environ),
                          capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout.strip()


def commit_all(cwd: Path | str, msg: str) -> str:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", msg)
    return git(cwd, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig"
    config.write_text("")
    for key, value in test_env(config).items():
        if key.startswith("GIT_"):
            monkeypatch.setenv(key, value)
    for key in LEAKY:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "f.txt").write_text("alpha\nbeta\ngamma\n")
    (r / "g.txt").write_text("one\n")
    (r / "docs").mkdir()
    (r / "docs" / "readme.md").write_text("# readme\n")
    commit_all(r, "init")
    return r


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "worktrees"


class Spy:
    """Records every git argv gitwatch starts."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    s = Spy()
    real = gw._exec

    def recording(argv: list[str], cwd: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
        s.calls.append(argv)
        return real(argv, cwd, timeout)

    monkeypatch.setattr(gw, "_exec", recording)
    return s


def sub(argv: list[str]) -> str:
    """The git subcommand of a recorded argv."""
    return argv[1 + len(gw.GIT_OPTIONS)]


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()


def registered(repo: Path) -> list[str]:
    return [line[9:] for line in git(repo, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


# ---------------------------------------------------------------------------------------------
# discovery, validation
# ---------------------------------------------------------------------------------------------
def test_find_repo(repo: Path, tmp_path: Path) -> None:
    assert gw.find_repo(repo) == repo.resolve()
    assert gw.find_repo(repo / "docs") == repo.resolve()
    assert gw.find_repo(repo / "docs" / "readme.md") == repo.resolve()
    plain = tmp_path / "plain"
    plain.mkdir()
    assert gw.find_repo(plain) is None
    assert gw.find_repo(tmp_path / "missing") is None


HOSTILE_SESSIONS = ["--upload-pack=x", "a..b", "HEAD;rm -rf", "$(id)", "foo\nbar", "x" * 300,
                    "../x", "a/b", "", "a b", "#{pane_id}"]
HOSTILE_BASES = ["--upload-pack=x", "-b", "a..b", "HEAD;rm -rf", "$(id)", "foo\nbar", "x" * 300,
                 "main@{1}", "ma in", "refs/heads/.x", "x.lock", "a//b", "/main", "main/", "@",
                 "main:f.txt", "ma*n", "ma?n", "ma[n", "ma\\n", "\x7f", "main\t", "`id`", ""]


@pytest.mark.parametrize("session", HOSTILE_SESSIONS)
def test_hostile_session_refused_before_git(repo: Path, root: Path, spy: Spy, session: str) -> None:
    with pytest.raises(BadRequest):
        gw.create_worktree(repo, session, None, root)
    assert spy.calls == []
    assert not root.exists()
    assert branches(repo) == ["main"]


@pytest.mark.parametrize("base", HOSTILE_BASES)
def test_hostile_base_refused_before_git(repo: Path, root: Path, spy: Spy, base: str) -> None:
    with pytest.raises(BadRequest):
        gw.create_worktree(repo, "s1", base, root)
    with pytest.raises(BadRequest):
        gw.diff(repo, base, 1000)
    assert spy.calls == []
    assert not root.exists()
    assert branches(repo) == ["main"]


def test_rev_validation_agrees_with_check_ref_format(repo: Path) -> None:
    """Whatever we accept, git accepts as a ref name; whatever git refuses, we refuse."""
    good = ["main", "feature/x-1", "v1.2.3", "release/2026.11", "a+b", "user@host", "HEAD",
            "refs/heads/main", "origin/main", "a_b", "x" * 200]
    candidates = good + [b for b in HOSTILE_BASES if b and not b.startswith("-")] + [
        "a.", ".a", "a/.b", "a.lock/b", "a/b.lock", "a@{b", "~", "^"]
    for name in candidates:
        git_ok = subprocess.run(["git", "check-ref-format", "--allow-onelevel", name],
                                cwd=repo, capture_output=True).returncode == 0
        try:
            gw.validate_rev(name)
            ours = True
        except BadRequest:
            ours = False
        if ours:
            assert git_ok, f"we accept {name!r}, git refuses it"
        if not git_ok:
            assert not ours, f"git refuses {name!r}, we accept it"
    for name in good:
        assert gw.validate_rev(name) == name
    for rev in ("main~2", "main^", "HEAD~1^2", "a" * 40):
        assert gw.validate_rev(rev) == rev


def test_worktree_record_round_trip_and_validation(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    assert gw.Worktree.from_json(wt.to_json()) == wt
    bad = [dict(wt.to_json(), branch="main"), dict(wt.to_json(), session="a;b"),
           dict(wt.to_json(), base_ref="--upload-pack=x"), dict(wt.to_json(), base_sha="HEAD"),
           dict(wt.to_json(), path="relative/path")]
    for data in bad:
        with pytest.raises(BadRequest):
            gw.Worktree.from_json(data)


# ---------------------------------------------------------------------------------------------
# creating worktrees
# ---------------------------------------------------------------------------------------------
def test_create_worktree(repo: Path, root: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    wt = gw.create_worktree(repo, "agent-1", None, root)
    assert wt.branch == "hive/agent-1"
    assert wt.base_sha == head and wt.base_ref == "refs/heads/main"
    assert wt.repo == str(repo.resolve())
    path = Path(wt.path)
    assert path.parent.parent == root.resolve() and path.name == "agent-1"
    assert path.parent.name.startswith("repo-")
    assert (path / "f.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == "hive/agent-1"
    assert git(repo, "config", "branch.hive/agent-1.hivebase") == f"{head} refs/heads/main"


def test_create_from_named_base_and_commit(repo: Path, root: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", "feature")
    (repo / "g.txt").write_text("two\n")
    commit_all(repo, "second")
    wt = gw.create_worktree(repo, "s1", "feature", root)
    assert (wt.base_sha, wt.base_ref) == (first, "refs/heads/feature")
    wt2 = gw.create_worktree(repo, "s2", first[:10], root)
    assert (wt2.base_sha, wt2.base_ref) == (first, None)
    wt3 = gw.create_worktree(repo, "s3", "main~1", root)
    assert (wt3.base_sha, wt3.base_ref) == (first, None)
    assert (Path(wt3.path) / "g.txt").read_text() == "one\n"


def assert_nothing_made(repo: Path, root: Path, session: str, before_branches: list[str]) -> None:
    assert branches(repo) == before_branches
    assert not any(p.endswith("/" + session) for p in registered(repo))
    assert not list(root.glob(f"*/{session}"))
    assert git(repo, "config", "--get-regexp", f"branch.hive/{session}", check=False) == ""


def test_create_refuses_existing_branch(repo: Path, root: Path) -> None:
    git(repo, "branch", "hive/s1")
    before = branches(repo)
    with pytest.raises(Conflict, match="already exists"):
        gw.create_worktree(repo, "s1", None, root)
    assert_nothing_made(repo, root, "s1", before)


def test_create_refuses_taken_path(repo: Path, root: Path) -> None:
    ident = gw._repo_id(repo)
    taken = root / gw.repo_slug(ident.main, ident.common) / "s1"
    taken.mkdir(parents=True)
    (taken / "user-file").write_text("keep me")
    with pytest.raises(Conflict, match="already taken"):
        gw.create_worktree(repo, "s1", None, root)
    assert branches(repo) == ["main"]
    assert [p.name for p in taken.iterdir()] == ["user-file"]
    assert (taken / "user-file").read_text() == "keep me"


def test_create_refuses_bad_base(repo: Path, root: Path) -> None:
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    for base in ("nope", tree, "main~5"):
        with pytest.raises(BadRequest, match="not a commit"):
            gw.create_worktree(repo, "s1", base, root)
    assert_nothing_made(repo, root, "s1", ["main"])
    assert not list(root.glob("*/*"))


def test_create_in_repo_without_commits(tmp_path: Path, root: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(BadRequest, match="no commit"):
        gw.create_worktree(empty, "s1", None, root)


def test_create_outside_a_repo_is_bad_request(tmp_path: Path, root: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BadRequest, match="not inside a git repository"):
        gw.create_worktree(plain, "s1", None, root)


def test_create_rolls_back_when_git_fails_midway(repo: Path, root: Path) -> None:
    """A failing post-checkout hook makes `worktree add` fail after it made everything."""
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(GitError):
        gw.create_worktree(repo, "s1", None, root)
    assert_nothing_made(repo, root, "s1", ["main"])
    assert registered(repo) == [str(repo.resolve())]
    assert not list(root.glob("*"))  # the repo folder we made is gone too


def test_create_refuses_symlinked_slug_dir(repo: Path, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ident = gw._repo_id(repo)
    root.mkdir()
    (root / gw.repo_slug(ident.main, ident.common)).symlink_to(outside)
    with pytest.raises(BadRequest, match="not a plain directory"):
        gw.create_worktree(repo, "s1", None, root)
    assert list(outside.iterdir()) == []
    assert branches(repo) == ["main"]


def test_relative_root_refused(repo: Path, spy: Spy) -> None:
    with pytest.raises(BadRequest):
        gw.create_worktree(repo, "s1", None, "relative/root")
    assert spy.calls == []


def test_worktree_cwd(repo: Path, root: Path, tmp_path: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    wt_path = Path(wt.path).resolve()
    assert gw.worktree_cwd(repo, repo / "docs", wt.path) == wt_path / "docs"
    assert gw.worktree_cwd(repo, repo, wt.path) == wt_path
    (repo / "untracked-dir").mkdir()
    assert gw.worktree_cwd(repo, repo / "untracked-dir", wt.path) == wt_path
    (repo / "escape").symlink_to(tmp_path)
    for bad in (repo / ".." / "elsewhere", tmp_path, Path("/etc"), repo / "escape", "../x"):
        with pytest.raises(BadRequest, match="outside the repository"):
            gw.worktree_cwd(repo, bad, wt.path)


# ---------------------------------------------------------------------------------------------
# live state
# ---------------------------------------------------------------------------------------------
def test_git_state_reports_everything(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    p = Path(wt.path)
    (p / "f.txt").write_text("alpha\nBETA\ngamma\ndelta\n")
    head = commit_all(p, "change f")
    (p / "g.txt").write_text("one\ntwo\nthree\n")
    git(p, "add", "g.txt")
    (p / "docs" / "readme.md").write_text("")
    (p / "new.txt").write_text("1\n2\n3")
    (p / "blob.bin").write_bytes(b"\0\1\2")
    st = gw.git_state(p, wt.base_ref, wt.base_sha)
    assert st.branch == "hive/s1" and st.head == head
    assert st.repo == str((repo / ".git").resolve())
    assert (st.ahead, st.behind, st.merges_cleanly) == (1, 0, True)
    assert st.merge_base == wt.base_sha and st.base_tip == wt.base_sha
    assert st.last_commit is not None and st.last_commit.subject == "change f"
    assert st.last_commit.sha == head and abs(st.last_commit.time - time.time()) < 600
    assert st.committed == ["f.txt"]
    assert st.staged == [gw.FileChange("g.txt", "M", 2, 0)]
    assert st.unstaged == [gw.FileChange("docs/readme.md", "M", 0, 1)]
    assert st.untracked == [gw.FileChange("blob.bin", "?", None, None),
                            gw.FileChange("new.txt", "?", 3, 0)]
    assert st.changed_paths() == {"f.txt", "g.txt", "docs/readme.md", "new.txt", "blob.bin"}
    data = st.to_json()
    assert data["dirty"] is True and data["last_commit"]["subject"] == "change f"
    assert data["staged"] == [{"path": "g.txt", "status": "M", "added": 2, "removed": 0}]


def test_git_state_with_awkward_file_names(repo: Path, root: Path) -> None:
    """Glob characters, spaces and non-ASCII names survive status, pathspecs and JSON."""
    names = ["a*b.txt", "[x] y.txt", "ünï code.txt", ":(glob)q.txt"]
    for n in names:
        (repo / n).write_text("1\n")
    (repo / "aXb.txt").write_text("1\n")  # would match a*b.txt as a glob
    commit_all(repo, "names")
    wt = gw.create_worktree(repo, "s1", None, root)
    for n in names:
        (Path(wt.path) / n).write_text("1\n2\n")
    st = gw.git_state(wt.path, wt.base_ref, wt.base_sha)
    assert st.unstaged == [gw.FileChange(n, "M", 1, 0) for n in sorted(names)]
    assert [c["path"] for c in st.to_json()["unstaged"]] == sorted(names)


def test_parsers_handle_renames() -> None:
    out = b"1\t0\t\0old name\0new name\0" + b"-\t-\tbin\0" + b"3\t2\tplain\0"
    assert gw.parse_numstat(out) == {"new name": (1, 0), "bin": (None, None), "plain": (3, 2)}
    status = (b"# branch.oid " + b"a" * 40 + b"\0# branch.head (detached)\0"
              b"2 R. N... 100644 100644 100644 " + b"b" * 40 + b" " + b"b" * 40 + b" R100 new\0old\0"
              b"u UU N... 100644 100644 100644 100644 " + b"c" * 40 + b" " + b"c" * 40 + b" "
              + b"c" * 40 + b" conflicted file\0? un tracked\0")
    st = gw.parse_status(status)
    assert st.head == "a" * 40 and st.branch is None
    assert st.staged == {"new": "R"} and st.unstaged == {"conflicted file": "U"}
    assert st.untracked == ["un tracked"]


def test_git_state_sees_base_move_and_conflict(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    p = Path(wt.path)
    (p / "f.txt").write_text("alpha\nMINE\ngamma\n")
    commit_all(p, "mine")
    (repo / "f.txt").write_text("alpha\nTHEIRS\ngamma\n")
    tip = commit_all(repo, "theirs")
    st = gw.git_state(p, wt.base_ref, wt.base_sha)
    assert st.base_tip == tip and (st.ahead, st.behind) == (1, 1)
    assert st.merges_cleanly is False and st.merge_conflicts == ["f.txt"]
    (repo / "g.txt").write_text("other\n")  # base moves again, no conflict on g
    commit_all(repo, "more")
    st2 = gw.git_state(p, wt.base_ref, wt.base_sha)
    assert st2.behind == 2 and st2.merge_conflicts == ["f.txt"]
    assert st2 != st


def test_git_state_clean_merge_with_diverged_base(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    (Path(wt.path) / "f.txt").write_text("alpha\nMINE\ngamma\n")
    commit_all(wt.path, "mine")
    (repo / "g.txt").write_text("theirs\n")
    commit_all(repo, "theirs")
    st = gw.git_state(wt.path, wt.base_ref, wt.base_sha)
    assert (st.ahead, st.behind, st.merges_cleanly, st.merge_conflicts) == (1, 1, True, [])


def test_git_state_falls_back_when_base_branch_is_gone(repo: Path, root: Path) -> None:
    git(repo, "branch", "topic")
    wt = gw.create_worktree(repo, "s1", "topic", root)
    git(repo, "branch", "-D", "topic")
    st = gw.git_state(wt.path, wt.base_ref, wt.base_sha)
    assert st.base_missing and st.base_tip == wt.base_sha and st.ahead == 0


def test_steady_refresh_uses_few_processes(repo: Path, root: Path, spy: Spy) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    (Path(wt.path) / "f.txt").write_text("changed\n")
    commit_all(wt.path, "c")
    cache = gw.GitCache()  # what the git monitor keeps between refreshes
    gw.git_state(wt.path, wt.base_ref, wt.base_sha, cache=cache)
    spy.calls.clear()
    st = gw.git_state(wt.path, wt.base_ref, wt.base_sha, cache=cache)  # nothing committed: cached
    assert [sub(c) for c in spy.calls] == ["status", "log"] and st.git_calls == 2
    (Path(wt.path) / "g.txt").write_text("dirty\n")
    spy.calls.clear()
    st = gw.git_state(wt.path, wt.base_ref, wt.base_sha, cache=cache)
    assert [sub(c) for c in spy.calls] == ["status", "log", "diff"]
    assert st.unstaged == [gw.FileChange("g.txt", "M", 1, 1)]


def test_every_git_call_is_lock_free_with_explicit_env(repo: Path, root: Path, spy: Spy,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_DIR", "/nonexistent")  # must not leak into gitwatch's git
    monkeypatch.setenv("GIT_INDEX_FILE", "/nonexistent/index")
    wt = gw.create_worktree(repo, "s1", None, root)
    gw.git_state(wt.path, wt.base_ref, wt.base_sha)
    gw.diff(wt.path, wt.base_sha, 10_000)
    prefix = ["git", "--no-optional-locks", "-c", "diff.autoRefreshIndex=false"]
    assert spy.calls and all(c[:4] == prefix for c in spy.calls)
    env = gw.git_env()
    assert env["GIT_OPTIONAL_LOCKS"] == "0" and env["LC_ALL"] == "C"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and "GIT_DIR" not in env


def index_fingerprint(worktree: Path) -> tuple[int, int, str]:
    index = Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    st = index.stat()
    return st.st_ino, st.st_mtime_ns, hashlib.sha256(index.read_bytes()).hexdigest()


def test_monitoring_never_writes_the_index(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    p = Path(wt.path)
    future = time.time() + 5
    for f in ("f.txt", "g.txt", "docs/readme.md"):  # stale stat data: git wants to refresh
        os.utime(p / f, (future, future))
    (p / "new.txt").write_text("x\n")
    time.sleep(0.05)
    before = index_fingerprint(p)
    gw.git_state(p, wt.base_ref, wt.base_sha)
    gw.diff(p, wt.base_sha, 100_000)
    assert index_fingerprint(p) == before
    assert not list((repo / ".git" / "worktrees").glob("*/index.lock"))
    # control: a plain `git status` does rewrite this index, so the check above can fail
    env = {k: v for k, v in os.environ.items() if k != "GIT_OPTIONAL_LOCKS"}
    git(p, "status", "--porcelain", env=env)
    assert index_fingerprint(p) != before


def test_refresh_while_an_agent_commits(repo: Path, root: Path) -> None:
    """An agent commits 25 times in a loop; refreshing meanwhile must never make it fail."""
    wt = gw.create_worktree(repo, "s1", None, root)
    script = ("set -e; for i in $(seq 1 25); do echo $i >> loop.txt; git add loop.txt; "
              "git commit -q -m \"c$i\"; done")
    agent = subprocess.Popen(["sh", "-c", script], cwd=wt.path, stderr=subprocess.PIPE)
    refreshes = 0
    while agent.poll() is None:
        gw.git_state(wt.path, wt.base_ref, wt.base_sha)
        refreshes += 1
    assert agent.returncode == 0, agent.stderr.read().decode() if agent.stderr else ""
    st = gw.git_state(wt.path, wt.base_ref, wt.base_sha)
    assert refreshes > 0 and st.ahead == 25 and not st.dirty
    assert st.last_commit is not None and st.last_commit.subject == "c25"


def test_git_state_errors_are_clear(repo: Path, tmp_path: Path, root: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFound):
        gw.git_state(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BadRequest):
        gw.git_state(plain)
    with pytest.raises(BadRequest):
        gw.git_state(repo / "docs")  # not the top of a worktree
    with pytest.raises(BadRequest):
        gw.git_state(repo, "--upload-pack=x", None)
    with pytest.raises(BadRequest):
        gw.git_state(repo, "refs/heads/main", "HEAD")
    monkeypatch.setattr(gw, "GIT", str(tmp_path / "no-such-git"))
    with pytest.raises(GitError, match="not installed"):
        gw.git_state(repo)


def test_git_state_of_a_plain_repo_without_base(repo: Path) -> None:
    (repo / "x.txt").write_text("x\n")
    st = gw.git_state(repo)
    assert st.branch == "main" and st.ahead is None and st.merges_cleanly is None
    assert [c.path for c in st.untracked] == ["x.txt"]


def test_untracked_symlink_is_never_followed(repo: Path, root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET\n" * 10)
    wt = gw.create_worktree(repo, "s1", None, root)
    (Path(wt.path) / "link").symlink_to(secret)
    st = gw.git_state(wt.path, wt.base_ref, wt.base_sha)
    assert st.untracked == [gw.FileChange("link", "?", 1, 0)]
    d = gw.diff(wt.path, wt.base_sha, 100_000)
    assert "TOPSECRET" not in d.text and f"+{secret}" in d.text and "new file mode 120000" in d.text


# ---------------------------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------------------------
def tree_files(top: Path) -> dict[str, bytes]:
    return {str(f.relative_to(top)): f.read_bytes() for f in sorted(top.rglob("*"))
            if f.is_file() and ".git" not in f.relative_to(top).parts}


def test_diff_includes_untracked_and_applies_back(repo: Path, root: Path, tmp_path: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    p = Path(wt.path)
    (p / "f.txt").write_text("alpha\nBETA\ngamma\n")
    commit_all(p, "committed change")
    (p / "g.txt").write_text("one\nstaged\n")
    git(p, "add", "g.txt")
    (p / "docs" / "readme.md").unlink()
    (p / "new dir").mkdir()
    (p / "new dir" / "spaced name.txt").write_text("no newline at end")
    (p / "ünï.txt").write_text("ü\n")
    (p / "empty").write_text("")
    (p / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (p / "run.sh").chmod(0o755)
    d = gw.diff(p, wt.base_sha, 1_000_000)
    assert not d.truncated and d.base == wt.base_sha
    assert sorted(d.untracked) == ["empty", "new dir/spaced name.txt", "run.sh", "ünï.txt"]
    assert "+BETA" in d.text and "+staged" in d.text and "deleted file mode" in d.text
    assert d.bytes == len(d.text.encode())
    # the diff reproduces the worktree from the base, byte for byte
    check = tmp_path / "check"
    git(repo, "worktree", "add", "-q", "--detach", str(check), wt.base_sha)
    patch = tmp_path / "patch.diff"
    patch.write_text(d.text)
    git(check, "apply", str(patch))
    assert tree_files(check) == tree_files(p)
    assert os.access(check / "run.sh", os.X_OK)


def test_untracked_patch_matches_git_byte_for_byte(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    samples = {"text.txt": b"a\nb\n", "noeol.txt": b"a\nb", "sp ace.txt": b"x\n",
               "empty": b"", "bin.dat": b"a\0b", 'q"uote\\.txt': b"q\n",
               "ünï.txt": "ü\n".encode(), "crlf.txt": b"a\r\nb\r\n", "one": b"1"}
    for name, data in samples.items():
        (work / name).write_bytes(data)
    (work / "exe").write_bytes(b"#!/bin/sh\n")
    (work / "exe").chmod(0o755)
    (work / "link").symlink_to("/etc/passwd")
    for name in [*samples, "exe", "link"]:
        expected = subprocess.run(["git", "diff", "--no-index", "--no-color", "--", "/dev/null", name],
                                  cwd=work, capture_output=True).stdout
        assert gw.new_file_patch(work, name, 1 << 20) == expected, name


def test_diff_is_capped(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    p = Path(wt.path)
    (p / "f.txt").write_text("".join(f"line {i}\n" for i in range(5000)))
    d = gw.diff(p, wt.base_sha, 1000)
    assert d.truncated and d.bytes <= 1000 and d.text.endswith("\n") and d.untracked == []
    assert d.text.startswith("diff --git a/f.txt b/f.txt")
    git(p, "checkout", "--", "f.txt")
    (p / "big-new.txt").write_text("".join(f"row {i}\n" for i in range(5000)))
    d = gw.diff(p, wt.base_sha, 2000)
    assert d.truncated and d.bytes <= 2000 and d.untracked == ["big-new.txt"]
    assert "@@ -0,0 +1,5000 @@" in d.text
    full = gw.diff(p, wt.base_sha, 10_000_000)
    assert not full.truncated and full.text.startswith(d.text)
    with pytest.raises(BadRequest):
        gw.diff(p, wt.base_sha, 0)
    with pytest.raises(BadRequest):
        gw.diff(p, "nope", 100)


# ---------------------------------------------------------------------------------------------
# collisions
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def pair(repo: Path, root: Path) -> tuple[gw.Worktree, gw.Worktree]:
    return gw.create_worktree(repo, "a", None, root), gw.create_worktree(repo, "b", None, root)


def states(*wts: gw.Worktree) -> dict[str, gw.GitState]:
    return {w.session: gw.git_state(w.path, w.base_ref, w.base_sha) for w in wts}


def test_same_line_edits_overlap_and_conflict(pair: tuple[gw.Worktree, gw.Worktree]) -> None:
    a, b = pair
    (Path(a.path) / "f.txt").write_text("alpha\nFROM A\ngamma\n")
    commit_all(a.path, "a")
    (Path(b.path) / "f.txt").write_text("alpha\nFROM B\ngamma\n")
    commit_all(b.path, "b")
    result = gw.collisions(states(a, b), gw.ConflictPredictor())
    assert [(o.path, o.sessions, o.committed) for o in result.overlaps] == \
        [("f.txt", ["a", "b"], ["a", "b"])]
    assert len(result.conflicts) == 1
    c = result.conflicts[0]
    assert c.sessions == ("a", "b") and c.paths == ["f.txt"] and c.conflict is True
    assert result.to_json()["conflicts"][0]["paths"] == ["f.txt"]


def test_edits_of_other_files_predict_no_conflict(pair: tuple[gw.Worktree, gw.Worktree]) -> None:
    a, b = pair
    (Path(a.path) / "f.txt").write_text("alpha\nFROM A\ngamma\n")
    ha = commit_all(a.path, "a")
    (Path(b.path) / "g.txt").write_text("from b\n")
    hb = commit_all(b.path, "b")
    result = gw.collisions(states(a, b), gw.ConflictPredictor())
    assert result.overlaps == [] and result.conflicts == [] and result.predictions == []
    direct = gw.ConflictPredictor().predict_pair(a.repo, "a", ha, "b", hb)
    assert direct.conflict is False and direct.paths == []


def test_same_file_other_lines_overlap_without_conflict(pair: tuple[gw.Worktree, gw.Worktree]) -> None:
    a, b = pair
    (Path(a.path) / "f.txt").write_text("ALPHA\nbeta\ngamma\n")
    commit_all(a.path, "a")
    (Path(b.path) / "f.txt").write_text("alpha\nbeta\nGAMMA\n")
    commit_all(b.path, "b")
    result = gw.collisions(states(a, b), gw.ConflictPredictor())
    assert [o.path for o in result.overlaps] == ["f.txt"]
    assert len(result.predictions) == 1 and result.predictions[0].conflict is False
    assert result.conflicts == []


def test_uncommitted_overlap_is_reported_not_predicted(pair: tuple[gw.Worktree, gw.Worktree]) -> None:
    a, b = pair
    (Path(a.path) / "f.txt").write_text("alpha\nFROM A\ngamma\n")
    (Path(b.path) / "f.txt").write_text("alpha\nFROM B\ngamma\n")
    (Path(b.path) / "shared-new.txt").write_text("b\n")
    (Path(a.path) / "shared-new.txt").write_text("a\n")
    result = gw.collisions(states(a, b), gw.ConflictPredictor())
    assert [(o.path, o.sessions, o.committed) for o in result.overlaps] == [
        ("f.txt", ["a", "b"], []), ("shared-new.txt", ["a", "b"], [])]
    assert result.predictions == []


def test_overlaps_are_per_repository(tmp_path: Path, repo: Path, root: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(repo, other)
    a = gw.create_worktree(repo, "a", None, root)
    b = gw.create_worktree(other, "b", None, root)
    for w in (a, b):
        (Path(w.path) / "f.txt").write_text(f"{w.session}\n")
        commit_all(w.path, w.session)
    result = gw.collisions(states(a, b), gw.ConflictPredictor())
    assert result.overlaps == [] and result.predictions == []


def test_predictions_are_cached_by_commit_pair(pair: tuple[gw.Worktree, gw.Worktree], spy: Spy) -> None:
    a, b = pair
    (Path(a.path) / "f.txt").write_text("alpha\nFROM A\ngamma\n")
    commit_all(a.path, "a")
    (Path(b.path) / "f.txt").write_text("alpha\nFROM B\ngamma\n")
    commit_all(b.path, "b")
    predictor = gw.ConflictPredictor()
    st = states(a, b)
    first = gw.collisions(st, predictor)
    spy.calls.clear()
    again = gw.collisions(st, predictor)
    assert spy.calls == [] and predictor.hits == 1 and predictor.misses == 1
    assert again.conflicts == first.conflicts and again.conflicts[0].cached
    assert {p.key for p in again.conflicts} == {p.key for p in first.conflicts}
    (Path(b.path) / "f.txt").write_text("alpha\nFROM A\ngamma\n")  # b now agrees with a
    commit_all(b.path, "agree")
    later = gw.collisions(states(a, b), predictor)
    assert later.conflicts == [] and predictor.misses == 2


def test_overlaps_function_directly() -> None:
    got = gw.overlaps({"a": {"x", "y"}, "b": {"y", "z"}, "c": {"y", "x"}}, {"a": {"y"}})
    assert [(o.path, o.sessions, o.committed) for o in got] == [
        ("x", ["a", "c"], []), ("y", ["a", "b", "c"], ["a"])]


# ---------------------------------------------------------------------------------------------
# cleanup
# ---------------------------------------------------------------------------------------------
def test_cleanup_refuses_unmerged_then_succeeds_after_merge(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    (Path(wt.path) / "f.txt").write_text("alpha\nwork\ngamma\n")
    head = commit_all(wt.path, "work")
    with pytest.raises(Conflict, match="1 commit not merged into main and not pushed") as err:
        gw.remove_worktree(wt)
    assert err.value.extra["unmerged_commits"] == 1
    assert Path(wt.path).is_dir() and "hive/s1" in branches(repo)
    git(repo, "merge", "-q", "--no-ff", "-m", "merge s1", "hive/s1")
    removed = gw.remove_worktree(wt)
    assert removed.merged and removed.head == head and not removed.forced
    assert removed.removed_worktree and removed.removed_branch
    assert not Path(wt.path).exists() and branches(repo) == ["main"]
    assert registered(repo) == [str(repo.resolve())]
    assert git(repo, "config", "--get-regexp", "branch.hive/s1", check=False) == ""


def test_cleanup_of_untouched_worktree(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    assert gw.remove_worktree(wt).merged
    assert branches(repo) == ["main"]


def test_untouched_worktree_removed_even_after_the_base_moved(repo: Path, root: Path) -> None:
    """B5: nothing committed, nothing changed: worktree and branch go (the base may move on)."""
    wt = gw.create_worktree(repo, "s1", None, root)
    (repo / "g.txt").write_text("main moved on\n")
    commit_all(repo, "main moves")
    removal, note = gw.remove_if_untouched(wt)
    assert removal is not None and removal.removed_worktree and removal.removed_branch
    assert note.startswith("removed")
    assert not Path(wt.path).exists() and branches(repo) == ["main"]
    assert registered(repo) == [str(repo.resolve())]


@pytest.mark.parametrize("work,why", [
    ("commit", "1 commit beyond its base"),
    ("edit", "1 uncommitted or untracked change"),
    ("untracked", "1 uncommitted or untracked change"),
    ("detached", "1 commit beyond its base"),
    ("merged", "1 commit beyond its base"),   # merged work is for cleanup=worktree to judge
])
def test_worktree_with_any_work_is_kept(repo: Path, root: Path, work: str, why: str) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    path = Path(wt.path)
    if work == "edit":
        (path / "g.txt").write_text("edited\n")
    elif work == "untracked":
        (path / "docs" / "new.md").write_text("new\n")
    else:
        if work == "detached":
            git(path, "checkout", "-q", "--detach")
        (path / "f.txt").write_text("work\n")
        commit_all(path, "work")
        if work == "merged":
            git(repo, "merge", "-q", "--no-ff", "-m", "merge", "hive/s1")
    removal, note = gw.remove_if_untouched(wt)
    assert removal is None and note == f"kept: {why}"
    assert path.is_dir() and "hive/s1" in branches(repo)


def test_untouched_check_keeps_a_locked_worktree(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    git(repo, "worktree", "lock", wt.path)
    assert gw.remove_if_untouched(wt) == (None, "kept: the worktree is locked")
    assert Path(wt.path).is_dir()


def test_cleanup_refuses_uncommitted_changes_unless_forced(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    (Path(wt.path) / "scratch.txt").write_text("unsaved work\n")
    (Path(wt.path) / "g.txt").write_text("edited\n")
    with pytest.raises(Conflict, match="2 uncommitted changes"):
        gw.remove_worktree(wt)
    assert (Path(wt.path) / "scratch.txt").exists()
    removed = gw.remove_worktree(wt, force=True)
    assert removed.forced and not Path(wt.path).exists() and branches(repo) == ["main"]


def test_pushed_branch_is_cleanable(repo: Path, root: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    wt = gw.create_worktree(repo, "s1", None, root)
    (Path(wt.path) / "f.txt").write_text("pushed work\n")
    commit_all(wt.path, "work")
    with pytest.raises(Conflict):
        gw.remove_worktree(wt)
    git(wt.path, "push", "-q", "origin", "hive/s1")
    removed = gw.remove_worktree(wt)
    assert removed.pushed and not removed.merged and branches(repo) == ["main"]
    assert git(remote, "rev-parse", "refs/heads/hive/s1") == removed.head


def test_squash_merged_branch_is_cleanable(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    (Path(wt.path) / "f.txt").write_text("alpha\nsquashed\ngamma\n")
    commit_all(wt.path, "one")
    (Path(wt.path) / "g.txt").write_text("two\n")
    commit_all(wt.path, "two")
    git(repo, "merge", "-q", "--squash", "hive/s1")
    git(repo, "commit", "-qm", "squash s1")
    removed = gw.remove_worktree(wt)
    assert removed.merged and removed.unmerged_commits == 2


def test_cleanup_protects_commits_on_a_detached_head(repo: Path, root: Path) -> None:
    wt = gw.create_worktree(repo, "s1", None, root)
    git(wt.path, "checkout", "-q", "--detach")
    (Path(wt.path) / "f.txt").write_text("detached work\n")
    commit_all(wt.path, "detached")
    with pytest.raises(Conflict, match="detached HEAD"):
        gw.remove_worktree(wt)
    assert Path(wt.path).is_dir()


def test_cleanup_refuses_non_hive_branch(repo: Path) -> None:
    fake = gw.Worktree(session="main", repo=str(repo), path=str(repo), branch="main",
                       base_sha=None, base_ref=None)
    with pytest.raises(BadRequest):
        gw.remove_worktree(fake)
    assert branches(repo) == ["main"]


def test_list_and_clean_orphans(repo: Path, root: Path, tmp_path: Path) -> None:
    live = gw.create_worktree(repo, "live", None, root)
    idle = gw.create_worktree(repo, "idle", None, root)
    gone = gw.create_worktree(repo, "gone", None, root)
    shutil.rmtree(gone.path)  # the folder vanished, git still lists it (prunable)
    orphans = gw.list_orphans(root, {"live"})
    assert [o.session for o in orphans] == ["gone", "idle"]
    by_name = {o.session: o for o in orphans}
    assert by_name["idle"].path == idle.path and by_name["idle"].base_sha == idle.base_sha
    assert by_name["idle"].base_ref == "refs/heads/main"
    (Path(idle.path) / "f.txt").write_text("orphan work\n")
    commit_all(idle.path, "orphan work")
    with pytest.raises(Conflict):
        gw.remove_worktree(by_name["idle"])
    assert gw.remove_worktree(by_name["gone"]).removed_branch
    git(repo, "worktree", "remove", "--force", live.path)  # only the branch is left now
    assert [o.session for o in gw.list_orphans(tmp_path / "empty-root", set(), repos=[repo])] == \
        ["idle", "live"]
    branch_only = [o for o in gw.list_orphans(root, set(), repos=[repo]) if o.session == "live"][0]
    assert branch_only.path is None
    assert gw.remove_worktree(branch_only).removed_branch
    assert sorted(branches(repo)) == ["hive/idle", "main"]


# ---------------------------------------------------------------------------------------------
# a 5,000-file repository
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    top = tmp_path_factory.mktemp("big")
    config = top / "gitconfig"
    config.write_text("")
    env = test_env(config)
    r = top / "repo"
    for i in range(5000):
        d = r / f"pkg{i // 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i:04d}.py").write_text(f"# module {i}\nVALUE = {i}\n")
    git(r, "init", "-q", "-b", "main", env=env)
    git(r, "add", "-A", env=env)
    git(r, "commit", "-qm", "5000 files", env=env)
    return r, env


def test_state_of_a_5000_file_repo(big_repo: tuple[Path, dict[str, str]], root: Path, spy: Spy) -> None:
    r, _ = big_repo
    wt = gw.create_worktree(r, "big", None, root)
    p = Path(wt.path)
    (p / "pkg00" / "mod0001.py").write_text("# changed\n")
    commit_all(p, "one commit")
    (p / "pkg10" / "mod1000.py").write_text("# staged\nVALUE = 0\nX = 1\n")
    git(p, "add", "pkg10/mod1000.py")
    (p / "pkg49" / "mod4999.py").unlink()
    (p / "pkg20" / "new.py").write_text("A = 1\nB = 2\n")
    cache = gw.GitCache()
    first = gw.git_state(p, wt.base_ref, wt.base_sha, cache=cache)
    assert first.ahead == 1 and first.committed == ["pkg00/mod0001.py"]
    assert first.staged == [gw.FileChange("pkg10/mod1000.py", "M", 3, 2)]
    assert first.unstaged == [gw.FileChange("pkg49/mod4999.py", "D", 0, 2)]
    assert first.untracked == [gw.FileChange("pkg20/new.py", "?", 2, 0)]
    timings = []
    for _ in range(5):
        spy.calls.clear()
        t0 = time.perf_counter()
        st = gw.git_state(p, wt.base_ref, wt.base_sha, cache=cache)
        timings.append(time.perf_counter() - t0)
        assert st == first and len(spy.calls) == 4  # status, log, 2 targeted numstats
    # generous bound for a shared CI box; benchmarks/bench_git.py records the real figure
    assert sorted(timings)[2] < 0.5, timings


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("gitwatch tests rely on Linux file semantics")


def test_a_worktree_waits_for_another_process_holding_the_config_lock(repo: Path, root: Path) -> None:
    # Two servers on one store started worktrees of one repository at the same moment: git
    # refused at once with "could not lock config file" and the task's first attempt failed.
    lock = Path(git(repo, "rev-parse", "--git-common-dir"))
    lock = (lock if lock.is_absolute() else repo / lock) / "config.lock"
    lock.write_text("held by another git\n")
    release = threading.Timer(0.4, lock.unlink)
    release.start()
    try:
        wt = gw.create_worktree(repo, "locked", None, root)
    finally:
        release.join()
    assert Path(wt.path).is_dir()
    assert git(repo, "config", "--get", f"branch.hive/locked.{gw.BASE_CONFIG}").split()[0] == wt.base_sha


def test_a_lock_held_for_good_still_fails_clearly_and_leaves_nothing(repo: Path, root: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gw, "LOCK_WAIT", 0.3)
    (repo / ".git" / "config.lock").write_text("stale\n")
    with pytest.raises(gw.GitError, match="could not lock config file"):
        gw.create_worktree(repo, "stuck", None, root)
    assert git(repo, "branch", "--list", "hive/stuck") == ""
