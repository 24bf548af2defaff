"""Review pipelines run by the real Claude Code CLI, end to end, through the REST API only.

The unmodified ``claude`` binary plays implementer, reviewer and tester (Hive Lab's built-in
``claude`` profile, one private HOME); the model behind it is :class:`FakeAnthropic` with one
scenario, ``pipe``, that routes by what the conversation is: the pipeline key is in the
change's prompt (``SCENARIO:pipe <key>``, which every stage's first prompt quotes), the role
is read from that first prompt (a reviewer's says "You are the reviewer ... review round N",
a tester's begins "Write tests"), and the turn is the number of prompts the session was sent
(Hive Lab's feedback is a later prompt in the same conversation). One server for the file.
"""
from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from support import git, HiveServer, make_repo, wait_for

try:  # with or without tests/__init__.py
    from tests.claude_support import cli as _cli
    from tests.claude_support.fake_api import (FakeAnthropic, Reply, ScriptContext, ToolCall,
                                               _is_prompt, _texts)
except ImportError:  # pragma: no cover - tests/ itself on sys.path (pytest's prepend mode)
    from claude_support import cli as _cli  # type: ignore[no-redef]
    from claude_support.fake_api import (FakeAnthropic, Reply, ScriptContext,  # type: ignore[no-redef]
                                         ToolCall, _is_prompt, _texts)

pytestmark = pytest.mark.e2e

TIMEOUT = 300.0  # a whole pipeline: several Claude sessions one after another, on 2 loaded cores

#: key -> role -> turns -> steps. A step: ("write", path, content) or ("text", words) or
#: ("wait", seconds, words): the model thinks that long, then says words.
PLANS: dict[str, dict[str, list[list[tuple[Any, ...]]]]] = {}


def verdict(v: dict[str, Any]) -> tuple[str, str]:
    return ("text", "I read the diff.\n```json\n" + json.dumps(v) + "\n```")


APPROVE = verdict({"verdict": "approve", "summary": "right"})


def changes(text: str) -> tuple[str, str]:
    return verdict({"verdict": "changes", "summary": "not yet", "findings": [
        {"file": "src/app.py", "line": 1, "severity": "major", "text": text}]})


def pipe(ctx: ScriptContext) -> Reply:
    """The model: the plan's step for this role, this turn, this step of the turn."""
    prompts = [i for i, m in enumerate(ctx.messages) if _is_prompt(m)]
    first = "\n".join(_texts(ctx.messages[prompts[0]].get("content")))
    found = re.search(r"SCENARIO:pipe (\S+)", first)
    if not found or found.group(1) not in PLANS:
        return Reply(text="OK.")
    if "You are the reviewer" in first:
        role = "review" + re.search(r"review round (\d+)", first).group(1)  # type: ignore[union-attr]
    elif "Write tests for the change" in first:
        role = "tests"
    else:
        role = "impl"
    turns = PLANS[found.group(1)].get(role, [])
    turn = len(prompts) - 1
    step = sum(1 for m in ctx.messages[prompts[-1] + 1:] if m.get("role") == "assistant")
    # Claude Code writes a file only after reading it (in this conversation, since its last
    # change): every write is a Read, then the Write.
    steps = [x for s in (turns[turn] if turn < len(turns) else [])
             for x in ([("read", s[1]), s] if s[0] == "write" else [s])]
    if step >= len(steps):
        return Reply(text="Done.")
    kind, *args = steps[step]
    if kind == "write":
        return Reply(text=f"Writing {args[0]}.",
                     tools=[ToolCall("Write", {"file_path": ctx.path(args[0]), "content": args[1]})])
    if kind == "read":
        return Reply(tools=[ToolCall("Read", {"file_path": ctx.path(args[0])})])
    if kind == "wait":
        return Reply(text=args[1], delay=float(args[0]))
    return Reply(text=args[0])


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def claude() -> Path:
    path = _cli.find_or_install_claude()
    if path is None:
        pytest.skip(f"real Claude Code CLI unavailable: {_cli.skip_reason()}")
    return path


@pytest.fixture(scope="module")
def api() -> Any:
    with FakeAnthropic(seed=13) as fake:
        fake.scenarios["pipe"] = pipe
        fake.resumable.add("pipe")  # feedback prompts carry no SCENARIO of their own
        yield fake


@pytest.fixture(scope="module")
def server(claude: Path, api: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("pipes-claude")
    env = _cli.private_home(base, [], base_url=api.base_url)
    user_settings = Path(env["HOME"]) / ".claude" / "settings.json"
    settings = json.loads(user_settings.read_text())
    settings["permissions"] = {"allow": ["Bash"]}  # Write/Edit: the guard's own allow
    user_settings.write_text(json.dumps(settings))
    srv = HiveServer(base / "hive", extra_path=[str(claude.parent)],
                     drop_env_prefixes=("ANTHROPIC_", "CLAUDE", "OTEL_"),
                     extra_config={"profiles": {"claude": {"env": env}}, "task_interval": 0.3})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill_tmux()


@pytest.fixture
def repo(server: HiveServer, tmp_path: Path) -> Path:
    path = server.root / f"repo-{tmp_path.name[-10:]}"
    (path / "tests").mkdir(parents=True)  # empty: the tester adds the first test
    return make_repo(path, {"src/app.py": "VALUE = 0\n"})


def add(server: HiveServer, key: str, repo: Path, **extra: Any) -> dict[str, Any]:
    body = {"id": key, "repo": str(repo), "scope": ["src/**"],
            "prompt": f"Set VALUE in src/app.py to the answer.\nSCENARIO:pipe {key}",
            "criteria": ["VALUE is 42"], "implementer": "claude", "reviewer": "claude",
            "tester": "claude", **extra}
    status, data = server.request("POST", "pipelines", body)
    assert status == 201, data
    return data


def until(server: HiveServer, pid: str, *states: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    def seen() -> Any:
        p = server.get(f"pipelines/{pid}")
        return p if p["state"]["name"] in states else None
    try:
        found = wait_for(seen, timeout=timeout, interval=0.5, what=f"pipeline {pid} in {states}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain(server, pid)}") from None
    if found["state"]["name"] != states[0]:
        print(explain(server, pid))
    return found


def explain(server: HiveServer, pid: str) -> str:
    p = server.get(f"pipelines/{pid}")
    lines = [json.dumps(p["state"])]
    lines += [f"{s['kind']} r{s['round']} {s['task_id']} {s['state']}: {s['reason']}"
              for s in p["history"]]
    for tid in p["tasks"].values():
        lines.append(f"task {tid}: {server.get(f'tasks/{tid}')['state']}")
        for e in server.get(f"events?session={tid}&limit=10000")["events"][-12:]:
            lines.append(f"   {e['agent']} {e['event']} {e['summary'][:160]}")
        status, screen = server.request("GET", f"sessions/{tid}/screen")
        if status == 200:
            lines.append(screen.get("text", "")[-1500:])
    return "\n".join(lines)


def kinds(p: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["kind"], s["state"]) for s in p["history"]]


def created(server: HiveServer, session: str) -> int:
    return len(server.get(f"events?session={session}&event=SessionCreated")["events"])


def show(repo: Path, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}")


# -- the flows ---------------------------------------------------------------------------------
def test_check_fails_once_changes_once_tester_adds_a_test_ready(server: HiveServer,
                                                                 repo: Path) -> None:
    PLANS["cc-flow"] = {
        "impl": [[("write", "src/app.py", "VALUE = 1\n")],      # the check fails
                 [("write", "src/app.py", "VALUE = 41\n")],     # the check passes
                 [("write", "src/app.py", "VALUE = 42\n")]],    # the reviewer's finding fixed
        "review1": [[changes("VALUE must be 42, not 41")]],
        "review2": [[APPROVE]],
        "tests": [[("write", "tests/test_app.py", "from src.app import VALUE\n\n\n"
                    "def test_value():\n    assert VALUE == 42\n")]],
    }
    add(server, "cc-flow", repo, checks=[["sh", "-c", "grep -q 'VALUE = 4' src/app.py"]])
    p = until(server, "cc-flow", "ready", "needs_you")
    assert p["state"]["name"] == "ready", explain(server, "cc-flow")
    assert kinds(p) == [
        ("implement", "passed"), ("checks", "failed"), ("implement", "passed"),
        ("checks", "passed"), ("review", "changes"), ("implement", "passed"),
        ("checks", "passed"), ("review", "passed"), ("tests", "passed"), ("checks", "passed"),
        ("ready", "passed")]
    assert [c["passed"] for c in p["checks"]] == [False, True, True, True]
    assert [(f["file"], f["text"]) for f in p["findings"]] == [
        ("src/app.py", "VALUE must be 42, not 41")]
    # one implementer session kept its context: three prompts in one conversation
    assert created(server, "cc-flow-impl") == 1
    prompts = [e["payload"].get("prompt", "") for e in server.get(
        "events?session=cc-flow-impl&event=UserPromptSubmit")["events"]]
    assert len(prompts) == 3 and "failed" in prompts[1] and "VALUE must be 42" in prompts[2]
    assert show(repo, "hive/cc-flow-impl", "src/app.py") == "VALUE = 42\n"
    assert "assert VALUE == 42" in show(repo, "hive/cc-flow-impl", "tests/test_app.py")
    assert show(repo, "main", "src/app.py") == "VALUE = 0\n"
    # the spend is counted per visit: the implementer's three visits share one session, and
    # together they cost no more than that session spent (each is its part, not the total)
    usage = {r["sessionId"]: r["knownCost"] for r in server.get("usage?by=session")["sessions"]}
    impl_visits = [s["cost"] for s in p["history"] if s["kind"] == "implement"]
    assert all(c is not None for c in impl_visits) and sum(impl_visits) > 0
    # each figure is rounded to 6 decimals: a sum of n of them may be n * 0.5e-6 over
    assert sum(impl_visits) <= usage["cc-flow-impl"] + len(impl_visits) * 1e-6, (impl_visits, usage)
    assert 0 < p["cost"] <= sum(c for n, c in usage.items() if n.startswith("cc-flow-")) \
        + len(p["history"]) * 1e-6
    # offered to the merge queue once; merged into main only after a person approves
    item = wait_for(lambda: next((m for m in server.get("merges")["merges"]
                                  if m["branch"] == "hive/cc-flow-impl"
                                  and m["state"] == "awaiting_approval"), None),
                    what="the ready branch awaiting approval")
    assert show(repo, "main", "src/app.py") == "VALUE = 0\n"
    assert server.request("POST", f"merges/{item['id']}/approve", {})[0] == 200
    wait_for(lambda: server.get(f"merges/{item['id']}")["state"] == "merged", what="the merge")
    assert show(repo, "main", "src/app.py") == "VALUE = 42\n"
    assert "assert VALUE == 42" in show(repo, "main", "tests/test_app.py")


def test_a_reviewer_that_writes_is_denied_and_a_malformed_verdict_is_asked_again(
        server: HiveServer, repo: Path) -> None:
    PLANS["cc-ro"] = {
        "impl": [[("write", "src/app.py", "VALUE = 42\n")]],
        "review1": [[("write", "src/app.py", "VALUE = 666\n"), ("text", "Looks fine, approve.")],
                    [APPROVE]],
    }
    add(server, "cc-ro", repo, stages=["implement", "review"])
    p = until(server, "cc-ro", "ready", "needs_you")
    assert p["state"]["name"] == "ready", explain(server, "cc-ro")
    assert kinds(p) == [("implement", "passed"), ("review", "failed"), ("review", "passed"),
                        ("ready", "passed")]
    assert "malformed" in p["history"][1]["reason"]
    review = server.get("tasks/cc-ro-rev1-1")
    decided = server.get("events?session=cc-ro-rev1-1&event=HookDecided")["events"]
    assert [(d["payload"]["verdict"]["action"], d["payload"]["tool"]) for d in decided] == [
        ("deny", "Write")]
    assert "read-only" in decided[0]["payload"]["verdict"]["reason"]
    # Released at ready, the reviewer's session ends; the denied write left its worktree
    # untouched, so the worktree and its branch go with it (a touched one would be kept).
    removed = wait_for(lambda: server.get("events?session=cc-ro-rev1-1&event=SessionRemoved")["events"],
                       what="the reviewer's session removed")
    assert removed[-1]["payload"]["worktree_removed"] is True, removed[-1]["payload"]
    assert not Path(review["worktree"]).exists()
    assert show(repo, "hive/cc-ro-impl", "src/app.py") == "VALUE = 42\n"
    assert created(server, "cc-ro-rev1-1") == 1  # asked again in the same session


def test_three_rounds_of_changes_then_needs_you(server: HiveServer, repo: Path) -> None:
    PLANS["cc-stub"] = {
        "impl": [[("write", "src/app.py", f"VALUE = {n}\n")] for n in (1, 2, 3)],
        **{f"review{n}": [[changes(f"still wrong ({n})")]] for n in (1, 2, 3)},
    }
    add(server, "cc-stub", repo, stages=["implement", "review"])
    p = until(server, "cc-stub", "needs_you", "ready")
    assert "after 3 round(s)" in p["state"]["reason"], explain(server, "cc-stub")
    assert [s["state"] for s in p["history"] if s["kind"] == "review"] == [
        "changes", "changes", "needs_you"]
    assert len(p["findings"]) == 3 and created(server, "cc-stub-impl") == 1
    # the person is told, and nothing runs on: every reviewer's session is gone
    wait_for(lambda: not {f"cc-stub-rev1-{n}" for n in (1, 2, 3)} & {
        s["name"] for s in server.get("sessions")["sessions"]}, what="the reviewers gone")
    assert server.get("tasks/cc-stub-rev1-3")["state"]["name"] == "done"


def test_a_server_restart_mid_pipeline_resumes_and_nothing_runs_twice(
        server: HiveServer, repo: Path) -> None:
    PLANS["cc-boot"] = {
        "impl": [[("write", "src/app.py", "VALUE = 42\n")]],
        "review1": [[("wait", 8, APPROVE[1])]],  # the model thinks 8 s: the server dies meanwhile
    }
    add(server, "cc-boot", repo, stages=["implement", "review"])
    wait_for(lambda: any(e["event"] == "UserPromptSubmit" for e in server.get(
        "events?session=cc-boot-rev1-1&limit=1000")["events"]), timeout=TIMEOUT, interval=0.5,
        what="the reviewer at work")
    server.stop(signal.SIGKILL)
    server.start()
    p = until(server, "cc-boot", "ready", "needs_you")
    assert p["state"]["name"] == "ready", explain(server, "cc-boot")
    assert kinds(p) == [("implement", "passed"), ("review", "passed"), ("ready", "passed")]
    for tid in ("cc-boot-impl", "cc-boot-rev1-1"):
        assert created(server, tid) == 1, tid
        assert len(server.get(f"tasks/{tid}")["attempts"]) == 1, tid
    # The review prompt was taken once: not typed again after the restart (Claude Code would
    # queue the copy and run a second review turn).
    prompts = server.get("events?session=cc-boot-rev1-1&event=UserPromptSubmit")["events"]
    assert len(prompts) == 1, [e["summary"][:80] for e in prompts]
