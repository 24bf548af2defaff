"""Git through the REST API: a worktree per agent, live state, collisions, safe cleanup.

Real git repositories in tmp dirs, real tmux, real shell agents that type git commands in
their own panes, a real Jupyter server.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support import GIT_ENV, git, HiveServer, spawn, wait_for



@pytest.fixture
def repo(server: HiveServer, tmp_path: Path) -> Path:
    path = server.root / f"repo-{tmp_path.name[-12:]}"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "shared.txt").write_text("line one\nline two\nline three\n")
    (path / "other.txt").write_text("other\n")
    (path / "sub").mkdir()
    (path / "sub" / "deep.txt").write_text("deep\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


def agent(server: HiveServer, name: str, repo: Path, **extra: Any) -> dict[str, Any]:
    return spawn(server, name, ["sh"], cwd=repo, env=GIT_ENV, **extra)


def type_in(server: HiveServer, name: str, command: str) -> None:
    status, body = server.request("POST", f"sessions/{name}/input", {"text": command})
    assert status == 200, body


def git_of(server: HiveServer, name: str) -> dict[str, Any]:
    return server.get(f"sessions/{name}/git")["git"]


def test_spawn_in_repo_makes_worktree_on_hive_branch(server: HiveServer, repo: Path) -> None:
    session = agent(server, "wt-a", repo)
    wt = session["worktree"]
    assert wt["branch"] == "hive/wt-a"
    assert Path(session["cwd"]) == Path(wt["path"]) and Path(wt["path"]).is_dir()
    assert not Path(wt["path"]).is_relative_to(repo)
    assert "hive/wt-a" in git(repo, "branch", "--list", "hive/*")
    type_in(server, "wt-a", "pwd > where.txt")
    wait_for(lambda: (Path(wt["path"]) / "where.txt").exists(), what="agent ran in worktree")
    assert (Path(wt["path"]) / "where.txt").read_text().strip() == wt["path"]
    # a cwd inside the repo maps to the same place inside the worktree
    sub = agent(server, "wt-sub", repo / "sub")
    assert Path(sub["cwd"]) == Path(sub["worktree"]["path"]) / "sub"
    # opting out runs in the repo itself
    plain = agent(server, "wt-none", repo, worktree=False)
    assert plain["worktree"] is None and Path(plain["cwd"]) == repo
    for name in ("wt-a", "wt-sub", "wt-none"):
        server.request("DELETE", f"sessions/{name}?cleanup=worktree&force=true")


def test_live_state_diff_overlap_and_predicted_conflict(server: HiveServer, repo: Path) -> None:
    agent(server, "edit-a", repo)
    agent(server, "edit-b", repo)
    agent(server, "edit-c", repo)
    start = server.get("status")["last_event_id"]
    type_in(server, "edit-a", "sed -i 's/line two/line two by A/' shared.txt && "
                              "git commit -qam 'A edits shared' && echo done-a")
    type_in(server, "edit-b", "sed -i 's/line two/line two by B/' shared.txt && "
                              "git commit -qam 'B edits shared' && echo done-b")
    type_in(server, "edit-c", "echo more >> other.txt && git commit -qam 'C edits other' && "
                              "echo new > untracked.txt && echo done-c")
    for name in ("edit-a", "edit-b", "edit-c"):
        wait_for(lambda n=name: (git_of(server, n) or {}).get("ahead") == 1,
                 what=f"{name} committed")

    state = git_of(server, "edit-a")
    assert state["branch"] == "hive/edit-a" and state["ahead"] == 1 and state["behind"] == 0
    assert state["last_commit"]["subject"] == "A edits shared"
    assert state["committed"] == ["shared.txt"] and state["merges_cleanly"] is True
    c_state = git_of(server, "edit-c")
    assert [f["path"] for f in c_state["untracked"]] == ["untracked.txt"]
    assert c_state["untracked"][0]["added"] == 1

    conflicts = server.get("git/conflicts")
    overlap = {o["path"]: sorted(o["sessions"]) for o in conflicts["overlaps"]}
    assert overlap == {"shared.txt": ["edit-a", "edit-b"]}
    predicted = [(sorted(p["sessions"]), p["paths"]) for p in conflicts["conflicts"]]
    assert predicted == [(["edit-a", "edit-b"], ["shared.txt"])]
    assert not any("edit-c" in p["sessions"] for p in conflicts["conflicts"])

    # changes of git state and the new conflict are events on the stream
    wait_for(lambda: server.get(f"events?after={start}&event=ConflictPredicted")["events"],
             what="ConflictPredicted event")
    predicted_events = server.get(f"events?after={start}&event=ConflictPredicted")["events"]
    assert {e["session"] for e in predicted_events} == {"edit-a", "edit-b"}
    assert predicted_events[0]["payload"]["conflict"]["paths"] == ["shared.txt"]
    changed = server.get(f"events?after={start}&event=GitChanged&session=edit-a")["events"]
    assert changed and changed[-1]["payload"]["git"]["ahead"] == 1

    # the diff against the base, untracked files included, capped on request
    diff = server.get("sessions/edit-c/diff")
    assert "+more" in diff["text"] and "untracked.txt" in diff["text"] and not diff["truncated"]
    small = server.get("sessions/edit-c/diff?max_bytes=40")
    assert small["truncated"] and len(small["text"].encode()) <= 40
    assert server.request("GET", "sessions/edit-c/diff?max_bytes=-1")[0] == 400

    all_git = server.get("git")["sessions"]
    assert {"edit-a", "edit-b", "edit-c"} <= set(all_git)
    for name in ("edit-a", "edit-b", "edit-c"):
        server.request("DELETE", f"sessions/{name}?cleanup=worktree&force=true")


def test_state_catches_a_commit_made_after_the_last_output(server: HiveServer, repo: Path) -> None:
    """The pane prints when the command is typed; the commit lands later, silently. The
    monitor's trailing refresh must still see it (GET git serves the monitor's states)."""
    agent(server, "quiet", repo)
    type_in(server, "quiet", "(sleep 1; echo q > q.txt; git add q.txt; git commit -qm quiet)"
                             " >/dev/null 2>&1 &")
    wait_for(lambda: (server.get("git")["sessions"].get("quiet") or {}).get("ahead") == 1,
             timeout=8, what="GET git shows the silent commit")
    server.request("DELETE", "sessions/quiet?cleanup=worktree&force=true")


def test_monitoring_never_takes_the_index_lock(server: HiveServer, repo: Path) -> None:
    session = agent(server, "nolock", repo)
    wt = Path(session["worktree"]["path"])
    type_in(server, "nolock", "echo x >> shared.txt")
    wait_for(lambda: (git_of(server, "nolock") or {}).get("unstaged"), what="unstaged change")
    index = Path(git(wt, "rev-parse", "--git-path", "index").strip())
    index = index if index.is_absolute() else wt / index
    before = (index.stat().st_mtime_ns, index.read_bytes())
    for _ in range(5):
        git_of(server, "nolock")
        server.get("sessions/nolock/diff")
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before
    server.request("DELETE", "sessions/nolock?cleanup=worktree&force=true")


def test_cleanup_refuses_unmerged_then_succeeds_after_merge(server: HiveServer, repo: Path) -> None:
    session = agent(server, "finisher", repo)
    wt = Path(session["worktree"]["path"])
    type_in(server, "finisher", "echo feature > feature.txt && git add feature.txt && "
                                "git commit -qm feature && echo committed")
    wait_for(lambda: (git_of(server, "finisher") or {}).get("ahead") == 1, what="commit")
    status, body = server.request("DELETE", "sessions/finisher?cleanup=worktree")
    assert status == 409 and "not merged" in body["detail"] and body["unmerged_commits"] == 1
    assert server.get("sessions/finisher")["state"]["name"] != "exited"  # nothing was stopped
    assert wt.is_dir() and "hive/finisher" in git(repo, "branch", "--list")
    git(repo, "merge", "-q", "--no-edit", "hive/finisher")
    status, body = server.request("DELETE", "sessions/finisher?cleanup=worktree")
    assert status == 200, body
    assert body["worktree_removed"] and body["branch_removed"]
    assert not wt.exists() and "hive/finisher" not in git(repo, "branch", "--list")
    assert (repo / "feature.txt").read_text() == "feature\n"  # the work is kept, merged


def test_orphans_listed_and_cleaned_safely(server: HiveServer, repo: Path) -> None:
    merged = agent(server, "orphan-merged", repo)
    kept = agent(server, "orphan-kept", repo)
    for name in ("orphan-merged", "orphan-kept"):  # work: the kill keeps their worktrees
        type_in(server, name, f"echo wip > {name}.txt && git add {name}.txt && "
                              "git commit -qm wip && echo ok")
        wait_for(lambda n=name: (git_of(server, n) or {}).get("ahead") == 1, what="commit")
    git(repo, "merge", "-q", "--no-edit", "hive/orphan-merged")
    for name in ("orphan-merged", "orphan-kept"):
        status, body = server.request("DELETE", f"sessions/{name}")  # no cleanup: orphans
        assert status == 200 and not body["worktree_removed"], body
    orphans = {o["session"] for o in server.get("git/orphans")["orphans"]}
    assert {"orphan-merged", "orphan-kept"} <= orphans
    listing = server.cli("cleanup")
    assert listing.returncode == 0 and "orphan-kept" in listing.stdout
    out = server.cli("cleanup", "--yes", "orphan-merged", "orphan-kept")
    assert out.returncode == 1, out.stdout + out.stderr  # one was kept: not all removed
    assert "orphan-merged" in out.stdout and "removed" in out.stdout.split("orphan-merged")[1][:40]
    assert "kept:" in out.stdout.split("orphan-kept")[1][:20]
    assert not Path(merged["worktree"]["path"]).exists()
    assert Path(kept["worktree"]["path"]).exists()
    assert "hive/orphan-kept" in git(repo, "branch", "--list")


def test_untouched_worktree_and_branch_go_with_the_session(server: HiveServer, repo: Path) -> None:
    """B5: spawning in a repository makes hive/<name>; stopping an agent that did nothing
    there takes both away (no pile of stray branches in the user's repository)."""
    before = git(repo, "branch", "--list")
    sessions = [agent(server, "idle-wt", repo),
                spawn(server, "hooked-wt", None, cwd=repo, agent="hooked")]  # our hook settings
    for session in sessions:
        name, path = session["name"], Path(session["worktree"]["path"])
        assert path.is_dir() and f"hive/{name}" in git(repo, "branch", "--list")
        status, body = server.request("DELETE", f"sessions/{name}")
        assert status == 200, body
        assert body["worktree_removed"] and body["branch_removed"], body
        assert body["worktree_note"].startswith("removed"), body
        assert not path.exists()
    assert git(repo, "branch", "--list") == before
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


@pytest.mark.parametrize("work,why", [
    ("echo w > w.txt && git add w.txt && git commit -qm w && echo done", "1 commit beyond"),
    ("echo more >> shared.txt && echo done", "1 uncommitted or untracked change"),
    ("echo new > new.txt && echo done", "1 uncommitted or untracked change"),
])
def test_worktree_with_work_stays_when_stopped(server: HiveServer, repo: Path, work: str,
                                               why: str) -> None:
    session = agent(server, "worker", repo)
    path = Path(session["worktree"]["path"])
    type_in(server, "worker", work)
    wait_for(lambda: "done" in server.get("sessions/worker/screen")["text"].split(work)[-1],
             what="the work is done")
    status, body = server.request("DELETE", "sessions/worker")
    assert status == 200 and not body["worktree_removed"] and not body["branch_removed"], body
    assert body["worktree_note"].startswith("kept: ") and why in body["worktree_note"], body
    assert path.is_dir() and "hive/worker" in git(repo, "branch", "--list")
    git(repo, "worktree", "remove", "--force", str(path))
    git(repo, "branch", "-D", "hive/worker")


@pytest.mark.parametrize("base", ["--upload-pack=touch PWNED", "-b", "a..b", "HEAD;rm -rf x",
                                  "$(id)", "main\nx", "x" * 300, "refs/heads/../../x",
                                  "no-such-branch"])
def test_hostile_or_missing_base_refused(server: HiveServer, repo: Path, base: str) -> None:
    branches = git(repo, "branch", "--list")
    status, body = server.request("POST", "sessions", {"name": "badbase", "agent": "shell",
                                                       "command": ["sh"], "cwd": str(repo),
                                                       "base": base})
    assert status == 400, body
    assert git(repo, "branch", "--list") == branches
    assert "badbase" not in server.tmux_sessions()
    assert not list(server.root.rglob("PWNED"))
    assert not (server.data_dir / "worktrees").exists() or \
        not any(p.name == "badbase" for p in (server.data_dir / "worktrees").rglob("badbase"))


def test_worktree_outside_repo_and_existing_branch(server: HiveServer, repo: Path,
                                                   tmp_path: Path) -> None:
    outside = server.root / "not-a-repo"
    outside.mkdir(exist_ok=True)
    status, body = server.request("POST", "sessions", {"name": "outer", "agent": "shell",
                                                       "command": ["sh"], "cwd": str(outside),
                                                       "worktree": True})
    assert status == 400 and "not inside a git repository" in body["detail"]
    git(repo, "branch", "hive/taken")
    status, body = server.request("POST", "sessions", {"name": "taken", "agent": "shell",
                                                       "command": ["sh"], "cwd": str(repo)})
    assert status == 409, body
    assert "taken" not in server.tmux_sessions()
    assert not (server.data_dir / "sessions" / "taken").exists()  # no half-made session


def test_base_can_be_chosen(server: HiveServer, repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "later")
    session = agent(server, "from-first", repo, base=first)
    assert session["worktree"]["base_sha"] == first
    assert not (Path(session["worktree"]["path"]) / "later.txt").exists()
    state = git_of(server, "from-first")
    assert state["behind"] == 0  # a fixed base commit: nothing to be behind of
    server.request("DELETE", "sessions/from-first?cleanup=worktree")


def test_hook_settings_are_not_an_agents_change(server: HiveServer, repo: Path) -> None:
    """Two hooked agents in worktrees: our .claude/settings.local.json is neither a change
    nor a collision between them."""
    for name in ("hooked-a", "hooked-b"):
        status, body = server.request("POST", "sessions", {"name": name, "agent": "hooked",
                                                           "cwd": str(repo)})
        assert status == 201, body
        assert (Path(body["worktree"]["path"]) / ".claude" / "settings.local.json").exists()
    for name in ("hooked-a", "hooked-b"):
        state = git_of(server, name)
        assert state["untracked"] == [] and state["dirty"] is False, state
    assert server.get("git/conflicts")["overlaps"] == []
    for name in ("hooked-a", "hooked-b"):  # and cleanup is not blocked by it either
        status, body = server.request("DELETE", f"sessions/{name}?cleanup=worktree")
        assert status == 200, body


def test_cached_collisions_follow_changes_and_removals(server: HiveServer, repo: Path) -> None:
    """git/conflicts answers from the monitor's summary (no git per request): it must still
    show a new overlap once the agents' commits are seen, and drop a session that is gone."""
    for name in ("cache-a", "cache-b"):
        agent(server, name, repo)
        type_in(server, name, f"echo {name} >> shared.txt && git commit -qam '{name}' && echo ok")
    for name in ("cache-a", "cache-b"):
        wait_for(lambda n=name: (git_of(server, n) or {}).get("ahead") == 1,
                 what=f"{name} committed")

    def overlap() -> list[str]:
        found = [o for o in server.get("git/conflicts")["overlaps"] if o["path"] == "shared.txt"]
        return sorted(found[0]["sessions"]) if found else []

    wait_for(lambda: overlap() == ["cache-a", "cache-b"], what="the overlap in git/conflicts")
    status, _ = server.request("DELETE", "sessions/cache-b?cleanup=worktree&force=true")
    assert status == 200
    assert overlap() == []
    assert not any("cache-b" in c["sessions"] for c in server.get("git/conflicts")["conflicts"])
    server.request("DELETE", "sessions/cache-a?cleanup=worktree&force=true")
