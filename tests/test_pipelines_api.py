"""Review pipelines through the REST API: implement, checks, review, tests, ready.

A real Jupyter server, real tmux, real git repositories, and the scripted stand-in agent
(tests/support/scripted_agent.py) playing implementer, reviewer and tester from per-task turn
scripts (``SCRIPTED_TURNS``): the only stand-in, for the model. The same flows with the real
Claude Code CLI are in test_pipelines_claude.py.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from support import git, GIT_ENV, HiveServer, make_repo, wait_for

pytestmark = pytest.mark.e2e

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")


def _profile(turns: Path, *capabilities: str) -> dict[str, Any]:
    return {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
            "capabilities": list(capabilities), "env": {**GIT_ENV, "SCRIPTED_TURNS": str(turns)}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pipes")
    turns = root / "turns"
    turns.mkdir()
    profiles = {"impl": _profile(turns), "rev": _profile(turns, "review"),
                "tester": _profile(turns)}
    srv = HiveServer(root, extra_config={"profiles": profiles, "task_interval": 0.3}).start()
    srv.turns = turns  # type: ignore[attr-defined]
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def repo(server: HiveServer, tmp_path: Path) -> Path:
    path = server.root / f"repo-{tmp_path.name[-10:]}"
    return make_repo(path, {"src/app.py": "VALUE = 0\n", "tests/__init__.py": ""})


def script(server: HiveServer, task_id: str, *turns: list[str]) -> None:
    (server.turns / f"{task_id}.json").write_text(json.dumps(list(turns)))  # type: ignore[attr-defined]


def say(verdict: dict[str, Any]) -> str:
    """A reviewer's last message: prose, then the verdict as a fenced JSON block."""
    return "@say I read the diff.\\n```json\\n" + json.dumps(verdict) + "\\n```"


APPROVE = say({"verdict": "approve", "summary": "looks right"})


def changes(text: str, line: int = 1) -> str:
    return say({"verdict": "changes", "summary": "not yet", "findings": [
        {"file": "src/app.py", "line": line, "severity": "major", "text": text}]})


def add(server: HiveServer, pid: str, repo: Path, **extra: Any) -> dict[str, Any]:
    body = {"id": pid, "prompt": "Set VALUE to the right number.", "repo": str(repo),
            "scope": ["src/**"], "criteria": ["VALUE is 42", "a test covers it"],
            "checks": [["sh", "-c", "grep -q 'VALUE = 42' src/app.py"]],
            "implementer": "impl", "reviewer": "rev", "tester": "tester", **extra}
    status, data = server.request("POST", "pipelines", body)
    assert status == 201, data
    return data


def until(server: HiveServer, pid: str, *states: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> Any:
        p = server.get(f"pipelines/{pid}")
        return p if p["state"]["name"] in states else None
    try:
        found = wait_for(ready, timeout=timeout, what=f"pipeline {pid} in {states}")
        if found["state"]["name"] == states[0]:
            return found
        dump(server, pid)
        return found
    except AssertionError:
        dump(server, pid)
        raise


def dump(server: HiveServer, pid: str) -> None:
    """What a failing test needs to see: the stages, the tasks, their last events."""
    if True:
        p = server.get(f"pipelines/{pid}")
        print(json.dumps({k: p[k] for k in ("state", "stage", "round", "tasks")}, indent=1))
        for s in p["history"]:
            print(s["idx"], s["kind"], s["round"], s["task_id"], s["state"], s["reason"])
        for t in p["tasks"].values():
            print(t, server.get(f"tasks/{t}")["state"])
            for e in server.get(f"events?session={t}&limit=10000")["events"][-15:]:
                print("  ", e["agent"], e["event"], e["summary"][:200])


def kinds(p: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["kind"], s["state"]) for s in p["history"]]


def created(server: HiveServer, session: str) -> int:
    return len(server.get(f"events?session={session}&event=SessionCreated")["events"])


def show(repo: Path, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}")


# -- the edge --------------------------------------------------------------------------------
@pytest.mark.parametrize("change, needle", [
    ({"id": "bad id"}, "pipeline id"),
    ({"criteria": None}, "criteria"),
    ({"criteria": []}, "criteria"),
    ({"scope": []}, "scope"),
    ({"checks": "make test"}, "checks"),
    ({"stages": ["review", "implement"]}, "implement"),
    ({"stages": ["implement", "deploy"]}, "deploy"),
    ({"max_review_rounds": 0}, "max_review_rounds"),
    ({"repo": "relative"}, "absolute"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_bodies_are_refused_and_nothing_is_stored(server: HiveServer, repo: Path,
                                                      change: dict[str, Any],
                                                      needle: str) -> None:
    body = {"id": "edge", "prompt": "x", "repo": str(repo), "scope": ["src/**"],
            "criteria": ["c"], **change}
    status, data = server.request("POST", "pipelines", body)
    assert status == 400 and needle in data["detail"], data
    assert all(p["id"] != "edge" for p in server.get("pipelines")["pipelines"])


def test_a_second_pipeline_with_the_same_id_is_a_conflict(server: HiveServer, repo: Path) -> None:
    script(server, "dup-impl", ["@write src/app.py VALUE = 42"])
    add(server, "dup", repo, stages=["implement"], checks=None)
    status, data = server.request("POST", "pipelines", {
        "id": "dup", "prompt": "x", "repo": str(repo), "scope": ["src/**"], "criteria": ["c"]})
    assert status == 409, data
    until(server, "dup", "ready")


# -- the whole flow ------------------------------------------------------------------------------
def test_changes_once_then_approve_tests_added_and_ready(server: HiveServer, repo: Path) -> None:
    script(server, "flow-impl", ["@write src/app.py VALUE = 41"],
           ["@write src/app.py VALUE = 42"])
    script(server, "flow-rev2-1", [changes("VALUE must be 42, not 41")])
    script(server, "flow-rev2-2", [APPROVE])
    script(server, "flow-test3-1", ["@write tests/test_app.py from src.app import VALUE\\n"
                                    "assert VALUE == 42"])
    add(server, "flow", repo, checks=[["true"], ["sh", "-c", "grep -q 'VALUE = 4' src/app.py"]])
    p = until(server, "flow", "ready", "needs_you")
    assert p["state"]["name"] == "ready", p["state"]
    assert kinds(p) == [
        ("implement", "passed"), ("checks", "passed"), ("review", "changes"),
        ("implement", "passed"), ("checks", "passed"), ("review", "passed"),
        ("tests", "passed"), ("checks", "passed"), ("ready", "passed")]
    assert p["round"] == 2
    assert [(f["file"], f["line"], f["severity"], f["round"]) for f in p["findings"]] == [
        ("src/app.py", 1, "major", 1)]
    assert p["history"][2]["verdict"]["verdict"] == "changes"
    assert p["history"][5]["verdict"]["verdict"] == "approve"
    # cheapest first: the first checks visit ran both, in order
    first = [c for c in p["checks"] if c["stage_row"] == p["history"][1]["id"]]
    assert [c["argv"][-1] for c in first] == ["true", "grep -q 'VALUE = 4' src/app.py"]
    # the implementer kept one session through both rounds; each reviewer had its own
    assert created(server, "flow-impl") == 1
    impl = server.get("tasks/flow-impl")
    assert impl["state"]["name"] == "done" and len(impl["attempts"]) == 1
    assert server.get("tasks/flow-rev2-1")["base"] != server.get("tasks/flow-rev2-2")["base"]
    assert server.get("tasks/flow-rev2-1")["scope"] == []
    # the branch holds the fix and the tester's test; the base is untouched
    assert show(repo, "hive/flow-impl", "src/app.py").strip() == "VALUE = 42"
    assert "assert VALUE == 42" in show(repo, "hive/flow-impl", "tests/test_app.py")
    assert show(repo, "main", "src/app.py").strip() == "VALUE = 0"
    assert p["branch"] == "hive/flow-impl" and p["base_branch"] == "main"
    # every step was streamed
    names = {e["event"] for e in server.get("events?session=flow&limit=10000")["events"]}
    assert {"PipelineChanged", "StageChanged", "CheckRan"} <= names
    # the ready branch is offered to the merge queue once, and merges after a person approves
    item = wait_for(lambda: next((m for m in server.get("merges")["merges"]
                                  if m["branch"] == "hive/flow-impl"
                                  and m["state"] == "awaiting_approval"), None),
                    what="the ready branch awaiting approval in the merge queue")
    assert item["source"] == "pipeline:flow" and item["base"] == "main"
    # (``offered`` is stored once the queue has taken the branch: a moment after its item)
    wait_for(lambda: server.get("pipelines/flow")["offered"] is True,
             what="the pipeline to say its branch was offered")
    assert show(repo, "main", "src/app.py").strip() == "VALUE = 0"  # nothing merged unapproved
    assert server.request("POST", f"merges/{item['id']}/approve", {})[0] == 200
    wait_for(lambda: server.get(f"merges/{item['id']}")["state"] == "merged",
             what="the approved merge")
    assert show(repo, "main", "src/app.py").strip() == "VALUE = 42"
    assert "assert VALUE == 42" in show(repo, "main", "tests/test_app.py")
    assert len([m for m in server.get("merges")["merges"] if m["branch"] == "hive/flow-impl"]) == 1


def test_a_failing_check_goes_back_to_the_implementer_and_passes_after_the_fix(
        server: HiveServer, repo: Path) -> None:
    script(server, "fix-impl", ["@write src/app.py VALUE = 7"], ["@write src/app.py VALUE = 42"])
    script(server, "fix-rev2-1", [APPROVE])
    add(server, "fix", repo, stages=["implement", "checks", "review"])
    p = until(server, "fix", "ready", "needs_you")
    assert p["state"]["name"] == "ready", p["state"]
    assert kinds(p) == [("implement", "passed"), ("checks", "failed"), ("implement", "passed"),
                        ("checks", "passed"), ("review", "passed"), ("ready", "passed")]
    assert [c["passed"] for c in p["checks"]] == [False, True]
    assert created(server, "fix-impl") == 1  # the same session got the output
    prompts = [e["payload"].get("prompt", "") for e in
               server.get("events?session=fix-impl&event=UserPromptSubmit")["events"]]
    assert len(prompts) == 2 and "failed" in prompts[1]


def test_a_malformed_verdict_is_asked_for_again(server: HiveServer, repo: Path) -> None:
    script(server, "mal-impl", ["@write src/app.py VALUE = 42"])
    script(server, "mal-rev1-1", ["@say I think it is fine, approve."], [APPROVE])
    add(server, "mal", repo, stages=["implement", "review"], checks=None, reviewer=None)
    p = until(server, "mal", "ready", "needs_you")
    assert p["state"]["name"] == "ready", p["state"]
    # no reviewer named: another installed profile than the implementer's, one that reviews
    assert server.get("tasks/mal-rev1-1")["attempts"][0]["profile"] == "rev"
    assert kinds(p) == [("implement", "passed"), ("review", "failed"), ("review", "passed"),
                        ("ready", "passed")]
    assert "malformed" in p["history"][1]["reason"]
    assert created(server, "mal-rev1-1") == 1  # asked in the same session


def test_malformed_twice_needs_you(server: HiveServer, repo: Path) -> None:
    script(server, "mal2-impl", ["@write src/app.py VALUE = 42"])
    script(server, "mal2-rev1-1", ["@say approve"], ['@say {"verdict": "maybe"}'], [APPROVE])
    add(server, "mal2", repo, stages=["implement", "review"], checks=None)
    p = until(server, "mal2", "needs_you", "ready")
    assert p["state"]["name"] == "needs_you" and "malformed again" in p["state"]["reason"]
    assert p["can_retry"]
    status, p = server.request("POST", "pipelines/mal2/retry")
    assert status == 200, p
    p = until(server, "mal2", "ready", "needs_you")
    assert p["state"]["name"] == "ready"


def test_a_reviewer_that_tries_to_write_is_denied(server: HiveServer, repo: Path) -> None:
    script(server, "ro-impl", ["@write src/app.py VALUE = 42"])
    script(server, "ro-rev1-1", ["@write src/app.py VALUE = 666", APPROVE])
    add(server, "ro", repo, stages=["implement", "review"], checks=None)
    p = until(server, "ro", "ready", "needs_you")
    assert p["state"]["name"] == "ready", p["state"]
    review = server.get("tasks/ro-rev1-1")
    guarded = review["flags"].get("guarded", [])
    assert guarded and guarded[0]["action"] == "deny" and "read-only" in guarded[0]["reason"]
    wt = Path(review["worktree"])
    if (wt / "src" / "app.py").exists():  # the released review task's worktree may be gone
        assert (wt / "src" / "app.py").read_text().strip() == "VALUE = 42"
    assert show(repo, "hive/ro-impl", "src/app.py").strip() == "VALUE = 42"


def test_three_rounds_of_changes_then_needs_you_and_a_retry_gives_one_more(
        server: HiveServer, repo: Path) -> None:
    script(server, "stub-impl", *[[f"@write src/app.py VALUE = {n}"] for n in range(1, 6)])
    for n in (1, 2, 3):
        script(server, f"stub-rev1-{n}", [changes(f"still wrong ({n})")])
    script(server, "stub-rev1-4", [APPROVE])
    add(server, "stub", repo, stages=["implement", "review"], checks=None)
    p = until(server, "stub", "needs_you", "ready", timeout=120)
    assert p["state"]["name"] == "needs_you" and "after 3 round(s)" in p["state"]["reason"]
    assert [s["state"] for s in p["history"] if s["kind"] == "review"] == [
        "changes", "changes", "needs_you"]
    assert len(p["findings"]) == 3 and created(server, "stub-impl") == 1
    # the person is called once, with what to do
    noted = wait_for(lambda: [n for n in server.get("notifications?limit=1000")["notifications"]
                              if n["kind"] == "pipeline_needs_you" and "stub" in n["body"]],
                     what="the notification")
    assert len(noted) == 1
    assert "after 3 round(s)" in noted[0]["body"] and "retry or cancel" in noted[0]["body"]
    status, p = server.request("POST", "pipelines/stub/retry")
    assert status == 200 and p["max_review_rounds_now"] == 4
    p = until(server, "stub", "ready", "needs_you", timeout=90)
    assert p["state"]["name"] == "ready", p["state"]
    assert show(repo, "hive/stub-impl", "src/app.py").strip() == "VALUE = 4"
    status, _ = server.request("POST", "pipelines/stub/retry")
    assert status == 409


def test_cancel_stops_every_stage_task(server: HiveServer, repo: Path) -> None:
    script(server, "stop-impl", ["@sleep 30"])
    add(server, "stop", repo, stages=["implement", "review"], checks=None)
    wait_for(lambda: server.get("pipelines/stop")["tasks"].get("0"), what="the implement task")
    status, p = server.request("POST", "pipelines/stop/cancel")
    assert status == 200 and p["state"]["name"] == "canceled"
    assert server.get("tasks/stop-impl")["state"]["name"] == "canceled"
    assert server.request("POST", "pipelines/stop/cancel")[0] == 409
    assert server.request("GET", "pipelines/nope")[0] == 404
    assert server.request("GET", "pipelines?state=bogus")[0] == 400


def test_a_server_restart_mid_pipeline_resumes_and_nothing_runs_twice(
        server: HiveServer, repo: Path) -> None:
    script(server, "boot-impl", ["@write src/app.py VALUE = 42"])
    script(server, "boot-rev2-1", ["@sleep 5", APPROVE])
    script(server, "boot-test3-1", ["@write tests/test_app.py assert True"])
    add(server, "boot", repo)
    wait_for(lambda: "boot-rev2-1" in {s["name"] for s in server.get("sessions")["sessions"]},
             timeout=60, what="the reviewer's session")
    server.stop(signal.SIGKILL)
    server.start()
    p = until(server, "boot", "ready", "needs_you", timeout=120)
    assert p["state"]["name"] == "ready", p["state"]
    assert kinds(p) == [("implement", "passed"), ("checks", "passed"), ("review", "passed"),
                        ("tests", "passed"), ("checks", "passed"), ("ready", "passed")]
    for tid in ("boot-impl", "boot-rev2-1", "boot-test3-1"):
        assert created(server, tid) == 1, tid
        assert len(server.get(f"tasks/{tid}")["attempts"]) == 1, tid
    assert len(p["checks"]) == 2
    assert all(not (server.turns / f"boot-rev2-{n}.count").exists() for n in (2, 3))  # type: ignore[attr-defined]


def test_cli_client_and_frames(server: HiveServer, repo: Path) -> None:
    from hive_lab import pipeframes

    script(server, "cli-impl", ["@write src/app.py VALUE = 42"])
    script(server, "cli-rev1-1", [changes("say why")], [APPROVE])
    script(server, "cli-rev1-2", [APPROVE])
    out = server.cli("pipeline", "add", "--id", "cli", "--repo", str(repo), "--scope", "src/**",
                     "--criterion", "VALUE is 42", "--stages", "implement,review",
                     "--implementer", "impl", "--reviewer", "rev", "--prompt", "Set VALUE.")
    assert out.returncode == 0 and "implement -> review -> ready" in out.stdout, out
    p = until(server, "cli", "ready", "needs_you")
    assert p["state"]["name"] == "ready"
    ls = server.cli("pipeline", "ls")
    assert ls.returncode == 0 and any(line.split()[:2] == ["cli", "ready"]
                                      for line in ls.stdout.splitlines()), ls.stdout
    show = server.cli("pipeline", "show", "cli")
    assert "[major] src/app.py:1: say why" in show.stdout and "verdict approve" in show.stdout
    bad = server.cli("pipeline", "retry", "cli")
    assert bad.returncode == 1 and "conflict" in bad.stderr
    client = server.client()
    stages = pipeframes.stages(client, "cli")
    assert list(stages["kind"].astype(str)) == ["implement", "review", "implement", "review",
                                                "ready"]
    assert str(stages["state"].dtype) == "category" and stages["findings"].sum() == 1
    found = pipeframes.findings(client, "cli")
    assert list(found["file"]) == ["src/app.py"] and found["line"].iloc[0] == 1
    frame = pipeframes.pipelines(client, state="ready")
    assert "cli" in set(frame["id"])


def test_a_canceled_review_task_needs_you_and_a_retry_starts_a_new_reviewer(
        server: HiveServer, repo: Path) -> None:
    script(server, "redo-impl", ["@write src/app.py VALUE = 42"])
    script(server, "redo-rev1-1", ["@sleep 60"])
    script(server, "redo-rev1-2", [APPROVE])
    add(server, "redo", repo, stages=["implement", "review"], checks=None)
    wait_for(lambda: server.get("pipelines/redo")["tasks"].get("1"), timeout=60,
             what="the review task")
    assert server.request("PATCH", "tasks/redo-rev1-1", {"state": "canceled"})[0] == 200
    p = until(server, "redo", "needs_you")
    assert "canceled" in p["state"]["reason"] and p["can_retry"]
    status, p = server.request("POST", "pipelines/redo/retry")
    assert status == 200, p
    p = until(server, "redo", "ready", "needs_you")
    assert p["state"]["name"] == "ready"
    assert [s["task_id"] for s in p["history"] if s["kind"] == "review"] == [
        "redo-rev1-1", "redo-rev1-2"]


def test_a_verdict_file_counts_when_the_last_message_has_none(server: HiveServer,
                                                              repo: Path) -> None:
    script(server, "vf-impl", ["@write src/app.py VALUE = 42"])
    verdict = json.dumps({"verdict": "changes", "findings": [
        {"file": "src/app.py", "line": None, "severity": "minor", "text": "from the file"}]})
    script(server, "vf-rev1-1", [f"@run mkdir -p .hive && printf '%s' '{verdict}' > "
                                 ".hive/verdict.json"])
    add(server, "vf", repo, stages=["implement", "review"], checks=None, max_review_rounds=1)
    p = until(server, "vf", "needs_you", "ready")
    assert [(f["text"], f["line"]) for f in p["findings"]] == [("from the file", None)]
    review = server.get("tasks/vf-rev1-1")
    assert not review["flags"].get("violations")  # git never saw .hive/
    assert ".hive" not in git(repo, "ls-tree", "-r", "--name-only", "hive/vf-impl")


def test_a_stranger_task_with_a_stage_name_is_not_adopted(server: HiveServer, repo: Path) -> None:
    status, _ = server.request("POST", "tasks", {"id": "col-rev1-1", "prompt": "@sleep 1",
                                                 "repo": str(repo), "agent": "nobody"})
    assert status == 201
    script(server, "col-impl", ["@write src/app.py VALUE = 42"])
    add(server, "col", repo, stages=["implement", "review"], checks=None)
    p = until(server, "col", "needs_you")
    assert "not a stage of pipeline col" in p["state"]["reason"]
    assert server.get("tasks/col-rev1-1")["prompt"] == "@sleep 1"


def test_a_check_failing_after_the_tests_stage_goes_back_to_the_tester(server: HiveServer,
                                                                      repo: Path) -> None:
    script(server, "tb-impl", ["@write src/app.py VALUE = 42"])
    script(server, "tb-rev2-1", [APPROVE])
    script(server, "tb-test3-1", ["@write tests/test_app.py BAD"], ["@write tests/test_app.py GOOD"])
    check = ["sh", "-c", "grep -q 'VALUE = 42' src/app.py && "
                         "{ test ! -e tests/test_app.py || grep -q GOOD tests/test_app.py; }"]
    add(server, "tb", repo, checks=[check])
    p = until(server, "tb", "ready", "needs_you")
    assert p["state"]["name"] == "ready", p["state"]
    assert kinds(p) == [
        ("implement", "passed"), ("checks", "passed"), ("review", "passed"),
        ("tests", "passed"), ("checks", "failed"), ("tests", "passed"), ("checks", "passed"),
        ("ready", "passed")]
    assert created(server, "tb-test3-1") == 1 and created(server, "tb-impl") == 1
    assert show(repo, "hive/tb-impl", "tests/test_app.py").strip() == "GOOD"
    # the tester's two commits moved the implementer's branch forward, never rewrote it
    log = git(repo, "log", "--format=%s", "hive/tb-impl").splitlines()
    assert [line for line in log if line.startswith("pipeline tb:")] == [
        "pipeline tb: tests (task tb-test3-1, round 2)",
        "pipeline tb: tests (task tb-test3-1, round 1)",
        "pipeline tb: implement (task tb-impl, round 1)"]


def test_two_pipelines_whose_branches_conflict_the_queue_orders_them_and_loses_nothing(
        server: HiveServer, repo: Path) -> None:
    # Both change src/app.py (so the second pipeline's implementer waits for the first one's
    # scope), both pass review; the queue merges the first after approval and stops the second
    # on the real conflict, with both branches' commits intact.
    for pid, value in (("cfa", 1), ("cfb", 2)):
        script(server, f"{pid}-impl", [f"@write src/app.py VALUE = {value}"])
        script(server, f"{pid}-rev1-1", [APPROVE])
        add(server, pid, repo, stages=["implement", "review"], checks=None)
    for pid in ("cfa", "cfb"):
        assert until(server, pid, "ready", "needs_you")["state"]["name"] == "ready"
    items = wait_for(lambda: (lambda ms: ms if len(ms) == 2 else None)(
        [m for m in server.get("merges")["merges"] if m["source"] in ("pipeline:cfa", "pipeline:cfb")]),
        what="both ready branches in the merge queue")
    by = {m["source"].split(":")[1]: m for m in items}
    first, second = sorted(by.values(), key=lambda m: m["position"] or 99)
    assert first["id"] == by["cfa"]["id"], items  # offered first, merges first
    second = wait_for(lambda: (lambda m: m if m["predicted"] else None)(server.get(f"merges/{second['id']}")),
                      what="the conflict predicted for the second branch")
    assert "src/app.py" in json.dumps(second["predicted"]) and f"#{first['id']}" in second["order_reason"]
    wait_for(lambda: server.get(f"merges/{first['id']}")["state"] == "awaiting_approval",
             what="the first branch awaiting approval")
    assert server.request("POST", f"merges/{first['id']}/approve", {})[0] == 200
    wait_for(lambda: server.get(f"merges/{first['id']}")["state"] == "merged", what="first merged")
    stopped = wait_for(lambda: (lambda m: m if m["state"] == "needs_you" else None)(
        server.get(f"merges/{second['id']}")), what="the second stopped on its conflict")
    assert stopped["conflicts"] == ["src/app.py"], stopped
    assert show(repo, "main", "src/app.py").strip() == "VALUE = 1"
    assert show(repo, "hive/cfa-impl", "src/app.py").strip() == "VALUE = 1"
    assert show(repo, "hive/cfb-impl", "src/app.py").strip() == "VALUE = 2"  # nothing lost
    assert git(repo, "status", "--porcelain").strip() == ""  # the user's checkout untouched
