"""The merge queue through the REST API and the CLI: real git repositories in tmp dirs, a real
Jupyter server, real checks (commands run in the branch's worktree).

Branches are offered to the queue directly (``POST merges``), as a pipeline does when its
branch is ready.
"""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from hive_lab import frames
from hive_lab.wire import MERGE_STATES
from support import GIT_ENV, HiveServer, git, spawn, wait_for

FAST = ["--HiveLab.task_interval=0.3"]


@pytest.fixture(scope="module")
def mq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveServer]:
    srv = HiveServer(tmp_path_factory.mktemp("mq"), extra_args=FAST).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def repo(mq: HiveServer) -> Path:
    return make_repo(mq)


def make_repo(server: HiveServer) -> Path:
    path = server.root / f"repo-{secrets.token_hex(4)}"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "a.txt").write_text("one\ntwo\nthree\n")
    (path / "b.txt").write_text("bee\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


def branch(repo: Path, name: str, files: dict[str, str], base: str = "main") -> str:
    """A branch with one commit writing ``files``; the main worktree is left on main."""
    git(repo, "switch", "-q", "-c", name, base)
    for rel, text in files.items():
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"{name}: edit {', '.join(files)}")
    git(repo, "switch", "-q", "main")
    return git(repo, "rev-parse", name).strip()


def commit_on_main(repo: Path, rel: str, text: str) -> str:
    (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"main: edit {rel}")
    return git(repo, "rev-parse", "main").strip()


def offer(server: HiveServer, repo: Path, name: str, checks: list[list[str]] | None = None,
          **extra: Any) -> dict[str, Any]:
    status, body = server.request("POST", "merges", {"repo": str(repo), "branch": name,
                                                     "base": "main", "checks": checks or [],
                                                     **extra})
    assert status == 201, body
    return body


def item(server: HiveServer, mid: int) -> dict[str, Any]:
    return server.get(f"merges/{mid}")


def until(server: HiveServer, mid: int, *states: str, timeout: float = 30) -> dict[str, Any]:
    try:
        return wait_for(lambda: (m := item(server, mid))["state"] in states and m,
                        timeout=timeout, what=f"merge #{mid} in {states}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain(server, mid)}") from None


def explain(server: HiveServer, mid: int) -> str:
    """What a timed-out wait shows: the item, its history, and its resolver task with events."""
    m = item(server, mid)
    lines = [f"merge #{mid}: {m['state']}: {m.get('reason')}"]
    for session in (f"merge-{mid}", m.get("resolver")):
        if not session:
            continue
        if session == m.get("resolver"):
            status, task = server.request("GET", f"tasks/{session}")
            lines.append(f"resolver task ({status}): {json.dumps(task.get('state', task))}")
        lines += [f"  {e['id']} {e['event']} {e['summary'][:200]}"
                  for e in server.get(f"events?session={session}&limit=10000")["events"]]
    return "\n".join(lines)


def parents(repo: Path, rev: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", rev).split()[1:]


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    return git(repo, "rev-list", b).split().count(a) == 1


def test_waits_for_approval_then_merges_with_a_real_merge(mq: HiveServer, repo: Path) -> None:
    head = branch(repo, "feature", {"a.txt": "one\nTWO\nthree\n"})
    main_before = git(repo, "rev-parse", "main").strip()
    m = offer(mq, repo, "feature", [["test", "-f", "a.txt"],  # the last one leaves output
                                    ["sh", "-c", "grep TWO a.txt > check-output.log"]],
              source="test")
    assert m["state"] == "queued" and m["head"] == head and m["source"] == "test"
    m = until(mq, m["id"], "awaiting_approval")
    assert [r["passed"] for r in m["check_runs"]] == [True, True]
    assert git(repo, "rev-parse", "main").strip() == main_before  # nothing without a person
    worktree = Path(m["worktree"])
    assert worktree.is_dir() and worktree.is_relative_to(mq.data_dir)

    ls = mq.cli("merge", "ls")
    assert ls.returncode == 0 and f"#{m['id']}" in ls.stdout and "awaiting_approval" in ls.stdout
    approve = mq.cli("merge", "approve", str(m["id"]))
    assert approve.returncode == 0, approve.stderr
    m = until(mq, m["id"], "merged")

    tip = git(repo, "rev-parse", "main").strip()
    assert m["merged_sha"] == tip and parents(repo, tip) == [main_before, head]  # --no-ff
    assert (repo / "a.txt").read_text() == "one\nTWO\nthree\n"  # merged in the user's checkout
    assert git(repo, "status", "--porcelain") == ""
    assert not worktree.exists() and "removed" in m["cleanup"]
    assert git(repo, "rev-parse", "feature").strip() == head  # branch kept
    names = [e["event"] for e in mq.client().all_events(session=f"merge-{m['id']}")]
    assert "MergeChanged" in names and names.count("CheckRan") == 2
    status, body = mq.request("POST", f"merges/{m['id']}/approve")
    assert status == 200 and body["state"] == "merged"  # idempotent
    status, body = mq.request("POST", f"merges/{m['id']}/reject")
    assert status == 409 and body["code"] == "merge_state"


def test_base_moved_on_branch_brought_up_to_date_and_checked_again(mq: HiveServer,
                                                                   repo: Path) -> None:
    own = branch(repo, "late", {"b.txt": "bee\nmore bee\n"})
    m = offer(mq, repo, "late", [["test", "-f", "b.txt"]])
    m = until(mq, m["id"], "awaiting_approval")
    assert is_ancestor(repo, git(repo, "rev-parse", "main").strip(), m["checked_head"])
    moved = commit_on_main(repo, "c.txt", "sea\n")  # the base moves on meanwhile
    mq.client().approve_merge(m["id"])
    m = until(mq, m["id"], "merged")
    assert len(m["check_runs"]) == 2 and m["check_runs"][1]["head"] != m["check_runs"][0]["head"]
    assert m["base_sha"] == moved
    late = git(repo, "rev-parse", "late").strip()
    assert is_ancestor(repo, moved, late) and is_ancestor(repo, own, late)  # updated by a merge
    tip = git(repo, "rev-parse", "main").strip()
    assert parents(repo, tip) == [moved, late]
    assert (repo / "c.txt").read_text() == "sea\n" and "more bee" in (repo / "b.txt").read_text()


def test_check_failing_after_update_stops_that_branch_only(mq: HiveServer, repo: Path) -> None:
    own = branch(repo, "fragile", {"b.txt": "fragile\n"})
    branch(repo, "sturdy", {"d.txt": "dee\n"})
    commit_on_main(repo, "broken", "the base now has what breaks fragile's check\n")
    main_before = git(repo, "rev-parse", "main").strip()
    fragile = offer(mq, repo, "fragile", [["test", "!", "-e", "broken"]])
    sturdy = offer(mq, repo, "sturdy", [["true"]])
    mq.client().approve_merge(fragile["id"])
    mq.client().approve_merge(sturdy["id"])
    fragile = until(mq, fragile["id"], "needs_you")
    assert "check failed" in fragile["reason"] and fragile["check_runs"][-1]["passed"] is False
    sturdy = until(mq, sturdy["id"], "merged")  # the queue went on
    assert parents(repo, "main") == [main_before, git(repo, "rev-parse", "sturdy").strip()]
    assert is_ancestor(repo, own, git(repo, "rev-parse", "fragile").strip())
    assert not is_ancestor(repo, own, git(repo, "rev-parse", "main").strip())
    retried = mq.client().retry_merge(fragile["id"])
    assert retried["state"] == "queued"
    mq.client().reject_merge(fragile["id"])
    assert until(mq, fragile["id"], "rejected")["reason"].startswith("rejected")


def test_conflicting_branches_ordered_first_merges_second_stops(mq: HiveServer,
                                                                repo: Path) -> None:
    first = branch(repo, "first", {"a.txt": "one\nfirst's two\nthree\n"})
    second = branch(repo, "second", {"a.txt": "one\nsecond's two\nthree\n"})
    clean = branch(repo, "clean", {"e.txt": "eee\n"})
    a = offer(mq, repo, "first")
    b = offer(mq, repo, "second")
    c = offer(mq, repo, "clean")

    def placed() -> dict[int, dict[str, Any]] | None:
        got = {m["id"]: m for m in mq.client().merges(repo=str(repo))}
        places = [got[x["id"]]["position"] for x in (a, b, c)]
        return got if places == [1, 3, 2] else None

    got = wait_for(placed, what="the queue ordered first, clean, second")
    why = got[b["id"]]["order_reason"]
    assert f"after #{a['id']}" in why and "a.txt" in why and "predicted conflict" in why
    assert f"before #{b['id']}" in got[a["id"]]["order_reason"]
    assert got[b["id"]]["predicted"][0]["with"] == a["id"]
    for x in (a, b, c):
        mq.client().approve_merge(x["id"])
    until(mq, a["id"], "merged")
    until(mq, c["id"], "merged")
    b = until(mq, b["id"], "needs_you")
    assert b["conflicts"] == ["a.txt"] and "real conflict" in b["reason"]
    # Once the first merged, the prediction was refreshed: against the base, not the branch.
    orders = [e["payload"]["merge"]["order_reason"] for e in mq.client().all_events(
        session=f"merge-{b['id']}", event="MergeChanged")]
    assert any("predicted to conflict with main already (a.txt)" in o for o in orders), orders
    # Nothing lost on either branch: both commits intact; the base has the first one only.
    assert git(repo, "rev-parse", "second").strip() == second
    assert git(repo, "show", f"{second}:a.txt") == "one\nsecond's two\nthree\n"
    tip = git(repo, "rev-parse", "main").strip()
    assert is_ancestor(repo, first, tip) and is_ancestor(repo, clean, tip)
    assert not is_ancestor(repo, second, tip)
    assert (repo / "a.txt").read_text() == "one\nfirst's two\nthree\n"
    wait_for(lambda: item(mq, b["id"])["worktree"] is None, what="the queue's worktree tidied")
    assert not (mq.data_dir / "merges" / str(b["id"])).exists()
    assert "second" in git(repo, "branch", "--list", "second")
    assert git(repo, "status", "--porcelain") == ""
    frame = frames.merges(mq.client(), repo=str(repo))  # the kernel side's view
    assert list(frame["id"]) == [a["id"], b["id"], c["id"]]
    assert list(frame["state"]) == ["merged", "needs_you", "merged"]
    assert list(frame["state"].cat.categories) == list(MERGE_STATES)
    assert frame["conflicts"][1] == ["a.txt"] and str(frame["created"].dtype).startswith("datetime")


def test_an_approval_covers_the_commits_the_person_saw(mq: HiveServer, repo: Path) -> None:
    gate = repo.parent / f"{repo.name}-gate"
    branch(repo, "busy", {"d.txt": "dee\n"})
    branch(repo, "early", {"e.txt": "eee\n"})
    busy = offer(mq, repo, "busy", [["sh", "-c", f'while [ ! -e "{gate}" ]; do sleep 0.1; done']])
    early = offer(mq, repo, "early")
    until(mq, busy["id"], "checking")  # the queue is busy with the first branch
    assert mq.client().approve_merge(early["id"])["approved"] is True  # approved ahead
    git(repo, "switch", "-q", "early")  # then the branch gets a commit nobody approved
    (repo / "e.txt").write_text("eee, changed after the approval\n")
    git(repo, "commit", "-qam", "after the approval")
    git(repo, "switch", "-q", "main")
    gate.write_text("go")
    mq.client().approve_merge(busy["id"])
    until(mq, busy["id"], "merged")
    early = until(mq, early["id"], "awaiting_approval")
    assert "1 new commit on the branch since it was approved" in early["reason"]
    assert early["approved"] is False and (repo / "e.txt").exists() is False
    mq.client().approve_merge(early["id"])
    until(mq, early["id"], "merged")
    assert (repo / "e.txt").read_text() == "eee, changed after the approval\n"


def test_dirty_base_checkout_is_never_touched(mq: HiveServer, repo: Path) -> None:
    branch(repo, "polite", {"b.txt": "polite bee\n"})
    (repo / "a.txt").write_text("the user's unsaved work\n")
    (repo / "notes.txt").write_text("untracked, also the user's\n")
    before = git(repo, "rev-parse", "main").strip()
    m = mq.client().offer_merge(str(repo), "polite", "main")
    mq.client().approve_merge(m["id"])
    m = wait_for(lambda: "uncommitted" in (x := item(mq, m["id"]))["reason"] and x,
                 what="merge refused on the dirty checkout")
    assert m["state"] == "approved" and "never touches" in m["reason"]
    seen = len(mq.client().all_events(session=f"merge-{m['id']}", event="MergeChanged"))
    time.sleep(1.5)  # about five ticks: each looks again, none says anything new
    assert len(mq.client().all_events(session=f"merge-{m['id']}", event="MergeChanged")) == seen
    assert (repo / "a.txt").read_text() == "the user's unsaved work\n"
    assert (repo / "notes.txt").read_text() == "untracked, also the user's\n"
    assert git(repo, "rev-parse", "main").strip() == before
    git(repo, "stash", "-q", "-u")  # the user puts the work aside: the merge goes ahead
    until(mq, m["id"], "merged")
    git(repo, "stash", "pop", "-q")
    assert (repo / "a.txt").read_text() == "the user's unsaved work\n"
    assert (repo / "b.txt").read_text() == "polite bee\n"


def test_no_merge_under_a_session_running_in_the_base_checkout(mq: HiveServer,
                                                              repo: Path) -> None:
    spawn(mq, "mq-in-main", ["sh"], cwd=repo, env=GIT_ENV, worktree=False)
    branch(repo, "later", {"g.txt": "gee\n"})
    before = git(repo, "rev-parse", "main").strip()
    m = offer(mq, repo, "later")
    mq.client().approve_merge(m["id"])
    m = wait_for(lambda: "mq-in-main is running" in (x := item(mq, m["id"]))["reason"] and x,
                 what="the merge held back")
    assert m["state"] == "approved" and git(repo, "rev-parse", "main").strip() == before
    assert mq.request("DELETE", "sessions/mq-in-main")[0] == 200
    until(mq, m["id"], "merged")
    assert (repo / "g.txt").read_text() == "gee\n"


def test_session_running_in_the_branch_worktree_waits(mq: HiveServer, repo: Path) -> None:
    session = spawn(mq, "mq-agent", ["sh"], cwd=repo, env=GIT_ENV)
    wt = Path(session["worktree"]["path"])
    (wt / "f.txt").write_text("from the agent\n")
    git(wt, "add", "-A")
    git(wt, "commit", "-qm", "agent work")
    cli = mq.cli("merge", "offer", "hive/mq-agent", "--repo", str(repo), "--base", "main",
                 "--check", "test -f f.txt", "--json")
    assert cli.returncode == 0, cli.stderr
    m = json.loads(cli.stdout)
    assert m["checks"] == [["test", "-f", "f.txt"]] and m["source"] == "cli"
    m = until(mq, m["id"], "waiting")
    shown = mq.cli("merge", "show", str(m["id"]))
    assert shown.returncode == 0 and "mq-agent is still running" in shown.stdout
    assert "mq-agent is still running" in m["reason"]
    status, _ = mq.request("DELETE", "sessions/mq-agent")  # stopped; worktree kept
    assert status == 200
    mq.client().approve_merge(m["id"])
    m = until(mq, m["id"], "merged")
    assert (repo / "f.txt").read_text() == "from the agent\n"
    assert not wt.exists() and f"worktree {wt} removed" in m["cleanup"]


def test_bad_input_is_refused_and_nothing_changes(mq: HiveServer, repo: Path,
                                                  tmp_path: Path) -> None:
    branch(repo, "ok", {"b.txt": "ok\n"})
    before = mq.client().merges()
    plain = mq.root / f"plain-{secrets.token_hex(3)}"
    plain.mkdir()
    cases = [
        ({"repo": str(repo), "branch": "nope", "base": "main"}, 400, "unknown_branch"),
        ({"repo": str(repo), "branch": "ok", "base": "nope"}, 400, "unknown_branch"),
        ({"repo": f"{repo}/../{repo.name}", "branch": "ok", "base": "main"}, 400, None),
        ({"repo": str(plain), "branch": "ok", "base": "main"}, 400, None),
        ({"repo": "relative/path", "branch": "ok", "base": "main"}, 400, None),
        ({"repo": str(repo), "branch": "--upload-pack=x", "base": "main"}, 400, None),
        ({"repo": str(repo), "branch": "ok", "base": "main", "checks": "make test"}, 400, None),
        ({"repo": str(repo), "branch": "ok", "base": "main", "checks": [[]]}, 400, None),
        ({"repo": str(repo), "branch": "ok", "base": "main", "force": True}, 400, None),
        ({"repo": str(repo), "branch": "main", "base": "main"}, 400, None),
        (["not", "an", "object"], 400, None),
    ]
    for body, status, code in cases:
        got, answer = mq.request("POST", "merges", body)
        assert got == status, (body, answer)
        assert answer["error"] == "bad_request" and answer["detail"], answer
        if code:
            assert answer["code"] == code
    assert mq.request("GET", "merges/999999")[0] == 404
    assert mq.request("GET", "merges/abc")[0] == 400
    assert mq.request("POST", "merges/999999/approve")[0] == 404
    assert mq.request("GET", "merges?state=bogus")[0] == 400
    assert mq.client().merges() == before  # nothing was queued
    assert "ok" in git(repo, "branch", "--list", "ok")
    m = offer(mq, repo, "ok")
    status, answer = mq.request("POST", "merges", {"repo": str(repo), "branch": "ok",
                                                   "base": "main"})
    assert status == 409 and answer["code"] == "already_queued"
    assert mq.client().cancel_merge(m["id"])["state"] == "canceled"


# A resolver that keeps both sides: drops the conflict marker lines, commits, exits 0 (a task
# whose agent exits 0 goes to its check and is done). It stands in for the model.
RESOLVE = ("sleep 0.5; kept=$(grep -v '^[<=>|]\\{7\\}' a.txt) && printf '%s\\n' \"$kept\" > a.txt "
           "&& git commit -qam 'resolve the conflict in a.txt' && echo resolved")


@pytest.fixture(scope="module")
def auto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveServer]:
    """merge_auto on, and conflicts go to a resolver task."""
    srv = HiveServer(tmp_path_factory.mktemp("mq-auto"), extra_args=FAST, extra_config={
        "merge_auto": True, "merge_conflict": "resolver", "merge_resolver_agent": "resolver",
        "profiles": {"resolver": {"command": ["sh", "-c", RESOLVE], "env": GIT_ENV,
                                  "task_prompt": "raw"}}}).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


def test_resolver_task_scoped_to_the_conflicting_files(auto: HiveServer) -> None:
    repo = make_repo(auto)
    mine = branch(repo, "mine", {"a.txt": "one\nmine\nthree\n"})
    commit_on_main(repo, "a.txt", "one\ntheirs\nthree\n")
    m = offer(auto, repo, "mine", [["grep", "-q", "mine", "a.txt"]])
    m = until(auto, m["id"], "resolving", "superseded")
    assert m["resolver"] == f"resolve-merge-{m['id']}" and m["conflicts"] == ["a.txt"]
    task = auto.get(f"tasks/{m['resolver']}")
    assert task["scope"] == ["a.txt"] and task["base"] == f"hive-merge-{m['id']}"
    assert git(repo, "rev-parse", "mine").strip() == mine  # the original branch untouched
    m = until(auto, m["id"], "superseded")
    new = wait_for(lambda: [x for x in auto.client().merges(repo=str(repo)) if x["id"] != m["id"]],
                   what="the resolver's branch offered")[0]
    assert new["branch"] == f"hive/{m['resolver']}" and f"#{m['id']}" in new["source"]
    until(auto, new["id"], "merged")  # merge_auto: no approval
    assert (repo / "a.txt").read_text() == "one\nmine\ntheirs\nthree\n"
    assert is_ancestor(repo, mine, git(repo, "rev-parse", "main").strip())


def test_auto_mode_and_a_restart_in_the_middle(auto: HiveServer) -> None:
    repo = make_repo(auto)
    head = branch(repo, "auto", {"b.txt": "auto bee\n"})
    marker = repo.parent / f"{repo.name}-checks.log"
    # The check logs each run, then waits for a file the test writes after the restart.
    gate = repo.parent / f"{repo.name}-gate"
    check = ["sh", "-c", f'echo run >> "{marker}"; while [ ! -e "{gate}" ]; do sleep 0.1; done']
    m = offer(auto, repo, "auto", [check])
    until(auto, m["id"], "checking")
    wait_for(marker.exists, what="the check started")
    auto.restart()  # in the middle of the checks
    gate.write_text("go")
    m = until(auto, m["id"], "merged")  # no approval needed: merge_auto
    tip = git(repo, "rev-parse", "main").strip()
    assert git(repo, "rev-list", "--merges", "main").split() == [tip]  # merged once
    assert parents(repo, tip)[1] == git(repo, "rev-parse", "auto").strip()
    assert is_ancestor(repo, head, tip)
    reasons = [e["payload"]["reason"] for e in auto.client().all_events(
        session=f"merge-{m['id']}", event="MergeChanged")]
    assert any("after a restart" in r for r in reasons)
