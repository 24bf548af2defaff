"""Tasks through the REST API: assignment, scopes that hold, checks, restarts.

A real Jupyter server, real tmux, real git repositories, and a scripted stand-in agent
(tests/support/scripted_agent.py) that acts on ``@`` lines of its prompt the way a model
would act on instructions: it is the only stand-in, for the model these tests cannot reach.
The same flows with the real Claude Code CLI are in test_tasks_claude.py.
"""
from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support import git, GIT_ENV, HiveServer, make_repo, wait_for

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
PROFILES = {
    "scripted": {"command": [sys.executable, "-u", AGENT], "capabilities": ["implement", "python"],
                 "env": GIT_ENV},
    "guarded": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                "capabilities": ["hooked"], "env": GIT_ENV},
    "second": {"command": [sys.executable, "-u", AGENT], "capabilities": ["implement"],
               "max_sessions": 1, "env": GIT_ENV},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("tasks"),
                     extra_config={"profiles": PROFILES, "task_interval": 0.3}).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def repo(server: HiveServer, tmp_path: Path) -> Path:
    path = server.root / f"repo-{tmp_path.name[-10:]}"
    return make_repo(path, {"src/app.py": "print('app')\n", "docs/index.md": "# docs\n"})


def add(server: HiveServer, **body: Any) -> dict[str, Any]:
    status, task = server.request("POST", "tasks", body)
    assert status == 201, task
    return task


def task(server: HiveServer, task_id: str) -> dict[str, Any]:
    return server.get(f"tasks/{task_id}")


def state(server: HiveServer, task_id: str) -> str:
    return task(server, task_id)["state"]["name"]


def until_state(server: HiveServer, task_id: str, *names: str, timeout: float = 30) -> dict:
    return wait_for(lambda: (t := task(server, task_id))["state"]["name"] in names and t,
                    timeout=timeout, what=f"task {task_id} in {names}")


def events(server: HiveServer, session: str, name: str) -> list[dict[str, Any]]:
    return server.get(f"events?session={session}&event={name}&limit=10000")["events"]


# -- the edge -------------------------------------------------------------------------------
@pytest.mark.parametrize("body, needle", [
    ({"id": "a;b", "prompt": "x"}, "task id"),
    ({"id": "t1", "prompt": ""}, "prompt"),
    ({"id": "t1", "prompt": "x", "repo": "relative/path"}, "absolute"),
    ({"id": "t1", "prompt": "x", "scope": ["../outside/**"]}, "scope"),
    ({"id": "t1", "prompt": "x", "scope": ["/etc/**"]}, "scope"),
    ({"id": "t1", "prompt": "x", "depends_on": ["nope"]}, "nope"),
    ({"id": "t1", "prompt": "x", "check": "make test"}, "check"),
    ({"id": "t1", "prompt": "x", "max_attempts": 0}, "max_attempts"),
    ({"id": "t1", "prompt": "x", "surprise": 1}, "surprise"),
    ({"id": "t1", "prompt": "x", "base": "--upload-pack=evil"}, "base"),
])
def test_bad_task_bodies_are_refused_and_store_nothing(server: HiveServer, repo: Path,
                                                      body: dict, needle: str) -> None:
    body = {"repo": str(repo), **body}
    status, answer = server.request("POST", "tasks", body)
    assert status == 400, answer
    assert needle in answer["detail"] and "Traceback" not in answer["detail"]
    assert server.request("GET", "tasks/t1")[0] == 404


def test_a_repo_outside_git_and_a_dependency_cycle_are_refused(server: HiveServer,
                                                               tmp_path: Path, repo: Path) -> None:
    plain = server.root / f"plain-{tmp_path.name[-8:]}"
    plain.mkdir()
    status, answer = server.request("POST", "tasks", {"id": "p1", "prompt": "x",
                                                      "repo": str(plain)})
    assert status == 400 and "git repository" in answer["detail"]
    add(server, id="cyc-a", prompt="x", repo=str(repo), agent="nobody")
    status, answer = server.request("PATCH", "tasks/cyc-a", {"state": "running"})
    assert status == 400, answer  # only cancel is a state a person may set
    server.request("PATCH", "tasks/cyc-a", {"state": "canceled"})
    assert server.request("DELETE", "tasks/cyc-a")[0] == 200
    assert server.request("GET", "tasks/cyc-a")[0] == 404


# -- assignment and why ------------------------------------------------------------------------
def test_a_task_no_profile_can_take_says_why(server: HiveServer, repo: Path) -> None:
    add(server, id="needs-review", prompt="review it", repo=str(repo), requires=["review"],
        scope=[])
    why = wait_for(lambda: task(server, "needs-review").get("why", "").startswith("no ")
                   and task(server, "needs-review")["why"], what="a why")
    assert "review" in why and state(server, "needs-review") == "ready"
    server.request("PATCH", "tasks/needs-review", {"state": "canceled"})


def test_a_task_runs_commits_passes_its_check_and_is_done(server: HiveServer, repo: Path) -> None:
    add(server, id="build-a", title="make a", repo=str(repo), requires=["implement"],
        scope=["src/**"], check=["test", "-f", "src/a.py"],
        prompt="Add src/a.py\n@write src/a.py A = 1\n@commit add a")
    done = until_state(server, "build-a", "done", "failed", timeout=40)
    assert done["state"]["name"] == "done", (done["state"], done["attempts"])
    assert done["state"]["reason"] == "the check passed"
    assert [a["outcome"] for a in done["attempts"]] == ["done"]
    assert done["attempts"][0]["profile"] in ("scripted", "second")
    assert "src/a.py" in git(repo, "show", "--stat", "hive/build-a")
    changes = [e["payload"]["task"]["state"]["name"] for e in events(server, "build-a", "TaskChanged")]
    assert changes[0] == "ready" and changes[-1] == "done" and "checking" in changes
    assert [e["payload"]["passed"] for e in events(server, "build-a", "CheckRan")] == [True]
    wait_for(lambda: "build-a" not in {s["name"] for s in server.get("sessions")["sessions"]},
             what="the finished task's session stopped")


def test_overlapping_scopes_run_one_after_the_other_disjoint_ones_together(
        server: HiveServer, repo: Path) -> None:
    slow = "@sleep 4\n@write src/one.py ONE = 1\n@commit one"
    add(server, id="ov-one", prompt=slow, repo=str(repo), scope=["src/**"], priority=5,
        agent="scripted", check=["test", "-f", "src/one.py"])
    until_state(server, "ov-one", "running")
    add(server, id="ov-two", prompt="@write src/two.py TWO = 2\n@commit two", repo=str(repo),
        scope=["src/two.py"], agent="scripted", check=["test", "-f", "src/two.py"])
    add(server, id="ov-docs", prompt="@write docs/d.md D\n@commit d", repo=str(repo),
        scope=["docs/**"], agent="scripted", check=["test", "-f", "docs/d.md"])
    blocked = wait_for(lambda: (t := task(server, "ov-two")).get("why") and "ov-one" in t["why"]
                       and t, what="ov-two's why naming ov-one")
    assert "scope overlaps" in blocked["why"] and "src/**" in blocked["why"]
    assert blocked["state"]["name"] == "ready"
    # the disjoint one runs while ov-one still holds src/**
    until_state(server, "ov-docs", "running", "checking", "done")
    assert state(server, "ov-one") in ("running", "checking")
    until_state(server, "ov-one", "done", timeout=40)
    until_state(server, "ov-two", "done", timeout=40)
    one, two = task(server, "ov-one"), task(server, "ov-two")
    assert two["attempts"][0]["started"] >= one["attempts"][0]["ended"]


# -- the guard and the backstop ---------------------------------------------------------------
def test_the_guard_denies_a_write_outside_the_scope_before_it_happens(server: HiveServer,
                                                                     repo: Path) -> None:
    add(server, id="guard-a", prompt="@write docs/x.md nope\n@write src/ok.py OK = 1\n@commit ok",
        repo=str(repo), requires=["hooked"], scope=["src/**"], check=["test", "-f", "src/ok.py"])
    done = until_state(server, "guard-a", "done", "failed", "blocked", timeout=40)
    assert done["state"]["name"] == "done", (done["state"], done["attempts"])
    tree = git(repo, "ls-tree", "-r", "--name-only", "hive/guard-a")
    assert "src/ok.py" in tree and "docs/x.md" not in tree
    decided = events(server, "guard-a", "HookDecided")
    assert [d["payload"]["verdict"]["action"] for d in decided] == ["deny"]
    reason = decided[0]["payload"]["verdict"]["reason"]
    assert "docs/x.md" in reason and "request-scope guard-a" in reason
    assert [(g["action"], g["tool"], g["paths"], g["reason"]) for g in done["flags"]["guarded"]] \
        == [("deny", "Write", ["docs/x.md"], reason)]  # the task shows the attempt
    assert not events(server, "guard-a", "ScopeViolation")


def test_the_backstop_flags_a_write_the_guard_never_saw(server: HiveServer, repo: Path) -> None:
    # the plain scripted agent has no hooks: only the audit after each git refresh sees this
    add(server, id="sneaky", prompt="@write docs/leak.md x\n@write src/s.py S = 1\n@commit s",
        repo=str(repo), agent="scripted", scope=["src/**"], check=["true"])
    blocked = until_state(server, "sneaky", "blocked", "done", timeout=40)
    assert blocked["state"]["name"] == "blocked", blocked
    assert blocked["state"]["reason"].startswith("scope_violation")
    flagged = blocked["flags"]["violations"]
    assert [v["path"] for v in flagged] == ["docs/leak.md"]
    assert [e["payload"]["violation"]["path"] for e in events(server, "sneaky", "ScopeViolation")] \
        == ["docs/leak.md"]
    status, _ = server.request("POST", "tasks/sneaky/violations", {"accept": ["src/nope.py"]})
    assert status == 400  # only what was flagged can be accepted
    status, accepted = server.request("POST", "tasks/sneaky/violations", {"accept": ["docs/leak.md"]})
    assert status == 200, accepted
    until_state(server, "sneaky", "done", timeout=30)


# -- failures, rounds and restarts --------------------------------------------------------------
def test_a_failing_check_feeds_its_output_back_and_the_next_round_passes(server: HiveServer,
                                                                        repo: Path) -> None:
    # The check prints an instruction when it fails; the agent acts on what it is sent back.
    check = ["sh", "-c", "test -f src/fixed.py || { echo '@write src/fixed.py FIXED = 1'; "
                         "echo '@commit fix'; exit 1; }"]
    add(server, id="rounds", prompt="@write src/first.py F = 1\n@commit first", repo=str(repo),
        agent="scripted", scope=["src/**"], check=check)
    done = until_state(server, "rounds", "done", "failed", timeout=60)
    assert done["state"]["name"] == "done", (done["state"], done["attempts"])
    runs = [e["payload"] for e in events(server, "rounds", "CheckRan")]
    assert [r["passed"] for r in runs] == [False, True]
    assert done["attempts"][0]["rounds"] == 2 and len(done["attempts"]) == 1


def test_a_crashing_agent_is_retried_up_to_max_attempts_then_failed(server: HiveServer,
                                                                   repo: Path) -> None:
    add(server, id="crashy", prompt="@exit 3", repo=str(repo), agent="scripted", scope=["src/**"],
        max_attempts=2)
    failed = until_state(server, "crashy", "failed", timeout=40)
    assert [a["outcome"] for a in failed["attempts"]] == ["died", "died"]
    assert "status 3" in failed["state"]["reason"] and "2 of 2" in failed["state"]["reason"]


def test_server_killed_mid_run_restarts_without_starting_anything_twice(server: HiveServer,
                                                                        repo: Path) -> None:
    add(server, id="survivor", prompt="@sleep 6\n@write src/sv.py SV = 1\n@commit sv",
        repo=str(repo), agent="scripted", scope=["src/**"], check=["test", "-f", "src/sv.py"])
    until_state(server, "survivor", "running")
    wait_for(lambda: "survivor" in {s["name"] for s in server.get("sessions")["sessions"]},
             what="the session")
    server.stop(signal.SIGKILL)
    server.start()
    done = until_state(server, "survivor", "done", "failed", timeout=60)
    if done["state"]["name"] != "done":
        for e in server.get("events?session=survivor&limit=10000")["events"]:
            print(e["id"], e["agent"], e["event"], e["summary"][:150])
        print(server.request("GET", "sessions/survivor"))
    assert done["state"]["name"] == "done", (done["state"], done["attempts"])
    assert len(done["attempts"]) == 1  # re-adopted, not started again
    created = [e for e in server.get("events?session=survivor&event=SessionCreated")["events"]]
    assert len(created) == 1


def test_a_prompt_taken_just_before_a_crash_is_not_typed_again(server: HiveServer,
                                                               repo: Path) -> None:
    """The server types a task's prompt, the agent's hook says it took it, and the server
    dies before it clears the task's outbox. After the restart the prompt must not be typed
    again: the agent would queue it and run the turn twice (a reviewer's second answer read as
    its verdict). The outbox is often still set when the hook is seen (the typing waits for the
    state to turn working); the test sets it either way, to a line that leaves a mark if it is
    ever typed."""
    marker = server.root / f"{repo.name}-typed-twice"
    add(server, id="taken", prompt="@sleep 4\n@write src/tk.py TK = 1\n@commit tk",
        repo=str(repo), agent="guarded", scope=["src/**"], check=["test", "-f", "src/tk.py"])
    wait_for(lambda: events(server, "taken", "UserPromptSubmit"), what="the prompt taken")
    time.sleep(0.5)  # its Enter pressed (this agent takes the first line before the Enter)
    server.stop(signal.SIGKILL)
    with sqlite3.connect(server.data_dir / "hive.db") as db:
        (raw,) = db.execute("SELECT flags FROM tasks WHERE id = 'taken'").fetchone()
        flags = json.loads(raw)
        assert flags["round_started"] > 0
        flags["outbox"] = f"@run echo again >> {marker}"
        db.execute("UPDATE tasks SET flags = ? WHERE id = 'taken'", (json.dumps(flags),))
    server.start()
    done = until_state(server, "taken", "done", "failed", timeout=60)
    assert done["state"]["name"] == "done", done["state"]
    time.sleep(1.5)  # a retyped line would run as soon as the turn ended
    assert not marker.exists(), "the prompt was typed a second time"
    assert "outbox" not in done["flags"] and len(events(server, "taken", "UserPromptSubmit")) == 1
