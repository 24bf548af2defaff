"""Tasks run by the real Claude Code CLI, end to end, through the REST API only.

The same flows as test_tasks_api.py, with the unmodified ``claude`` binary (2.1.197) run by
Hive Lab's built-in ``claude`` profile instead of the scripted stand-in: Hive Lab starts it in
the task's worktree with ``--session-id``, answers its first-run screens, types the task's
prompt, reads its hooks, guards its tool calls and runs the task's check. The model behind
it is :class:`FakeAnthropic`: the task prompt's ``SCENARIO:steps ...`` line is its plan, and
its request log is what the model was sent (so a test can read what the CLI told the model
after a deny, or what Hive Lab typed after a failed check).

The profile's only change is its ``env``: a private HOME whose user settings allow Bash, so
no dialog of Claude Code's own stops an unattended task on a command. Writes and edits are
NOT allowed there: inside the task's scope the guard itself answers "allow" (that is what
lets an unattended task edit its files), outside it "deny". A dialog that does show is the
guard's ``ask``. What was seen is in tests/claude_support/NOTES.md.
"""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

from support import HiveServer, make_repo, wait_for

try:  # with or without tests/__init__.py
    from tests.claude_support import cli as _cli
    from tests.claude_support.fake_api import ApiCall, FakeAnthropic
except ImportError:  # pragma: no cover - tests/ itself on sys.path (pytest's prepend mode)
    from claude_support import cli as _cli  # type: ignore[no-redef]
    from claude_support.fake_api import ApiCall, FakeAnthropic  # type: ignore[no-redef]

pytestmark = pytest.mark.e2e

STARTUP = 120.0  # a task from ready to done: ~5 s idle, far more at load 60 on 2 cores
SID_HEADER = "x-claude-code-session-id"


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def claude() -> Path:
    path = _cli.find_or_install_claude()
    if path is None:
        pytest.skip(f"real Claude Code CLI unavailable: {_cli.skip_reason()}")
    return path


@pytest.fixture(scope="module")
def api() -> Any:
    with FakeAnthropic(seed=10) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(claude: Path, api: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("tasks-claude")
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
    return make_repo(path, {"src/app.py": "print('app')\n", "docs/index.md": "# docs\n"})


# -- REST helpers ---------------------------------------------------------------------------
def add(server: HiveServer, **body: Any) -> dict[str, Any]:
    status, task = server.request("POST", "tasks", body)
    assert status == 201, task
    return task


def task(server: HiveServer, task_id: str) -> dict[str, Any]:
    return server.get(f"tasks/{task_id}")


def until_state(server: HiveServer, task_id: str, *names: str,
                timeout: float = STARTUP) -> dict[str, Any]:
    try:
        return wait_for(lambda: (t := task(server, task_id))["state"]["name"] in names and t,
                        timeout=timeout, interval=0.25, what=f"task {task_id} in {names}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain(server, task_id)}") from None


def explain(server: HiveServer, task_id: str) -> str:
    """The task, its session's events and screen: what a failing assertion needs."""
    lines = [json.dumps(task(server, task_id)["state"])]
    for e in server.get(f"events?session={task_id}&limit=10000")["events"]:
        lines.append(f"{e['id']} {e['agent']} {e['event']} {e['summary'][:160]}")
    status, screen = server.request("GET", f"sessions/{task_id}/screen")
    lines.append(screen.get("text", "") if status == 200 else f"(no screen: {status})")
    return "\n".join(lines)


def events(server: HiveServer, session: str, name: str) -> list[dict[str, Any]]:
    return server.get(f"events?session={session}&event={name}&limit=10000")["events"]


def calls_of(api: FakeAnthropic, t: dict[str, Any]) -> list[ApiCall]:
    """The main-loop requests of the task's Claude conversation (by the id Hive Lab gave it)."""
    sid = t["flags"]["agent_session_id"]
    return [c for c in api.calls if c.kind == "messages"
            and {k.lower(): v for k, v in c.headers.items()}.get(SID_HEADER) == sid]


def tool_results(call: ApiCall) -> list[dict[str, Any]]:
    last = (call.body.get("messages") or [{}])[-1]
    content = last.get("content") if isinstance(last.get("content"), list) else []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    c = block.get("content")
    if isinstance(c, str):
        return c
    return "\n".join(b.get("text", "") for b in c or [] if isinstance(b, dict))


def prompts_sent(call: ApiCall) -> list[str]:
    """Every text block of the user messages in ``call`` (what the model has been told)."""
    out = []
    for m in call.body.get("messages") or []:
        if m.get("role") != "user":
            continue
        c = m.get("content")
        out += [c] if isinstance(c, str) else [b.get("text", "") for b in c
                                                if isinstance(b, dict) and b.get("type") == "text"]
    return out


def wait(pred: Callable[[], Any], what: str, timeout: float = STARTUP) -> Any:
    return wait_for(pred, timeout=timeout, interval=0.25, what=what)


# -- the guard --------------------------------------------------------------------------------
def test_a_write_outside_the_scope_is_denied_the_model_is_told_and_goes_on(
        server: HiveServer, api: FakeAnthropic, repo: Path) -> None:
    add(server, id="cc-deny", repo=str(repo), requires=["implement"], scope=["src/**"],
        check=["test", "-f", "src/ok.py"],
        prompt="Add src/ok.py.\nSCENARIO:steps write docs/x.md nope ;; write src/ok.py OK = 1")
    done = until_state(server, "cc-deny", "done", "failed", "blocked")
    assert done["state"]["name"] == "done", explain(server, "cc-deny")
    assert [a["profile"] for a in done["attempts"]] == ["claude"]
    created = events(server, "cc-deny", "SessionCreated")
    assert len(created) == 1 and f"--session-id {done['flags']['agent_session_id']}" \
        in created[0]["summary"], created
    worktree = Path(done["worktree"])
    assert (worktree / "src" / "ok.py").read_text() == "OK = 1"
    assert not (worktree / "docs" / "x.md").exists()

    # Hive Lab decided once, with a reason that names the task and the way out ...
    decided = events(server, "cc-deny", "HookDecided")
    assert [(d["payload"]["verdict"]["action"], d["payload"]["tool"]) for d in decided] == \
        [("deny", "Write")]
    reason = decided[0]["payload"]["verdict"]["reason"]
    assert "docs/x.md" in reason and "request-scope cc-deny" in reason
    # ... the task shows the attempt ...
    assert [(g["action"], g["tool"], g["paths"]) for g in done["flags"]["guarded"]] == \
        [("deny", "Write", ["docs/x.md"])]
    # ... and the model got the reason as the tool's result, in the very next request.
    calls = calls_of(api, done)
    denied = [(c, r) for c in calls for r in tool_results(c) if r.get("is_error")]
    assert len(denied) == 1, [(c.scenario, c.step) for c in calls]
    call, block = denied[0]
    assert reason in result_text(block), result_text(block)
    assert call.step == 1  # the next step (write src/ok.py) was answered to this request
    assert not events(server, "cc-deny", "ScopeViolation")


def test_a_shell_write_outside_the_scope_brings_up_the_permission_dialog(
        server: HiveServer, api: FakeAnthropic, repo: Path) -> None:
    add(server, id="cc-ask", repo=str(repo), agent="claude", scope=["src/**"], check=["true"],
        prompt="Note it in the docs.\nSCENARIO:steps bash echo x > docs/y.md")
    waiting = until_state(server, "cc-ask", "waiting", "done", "failed")
    assert waiting["state"]["name"] == "waiting", explain(server, "cc-ask")
    assert "permission" in waiting["state"]["reason"] and "Bash" in waiting["state"]["reason"]
    decided = events(server, "cc-ask", "HookDecided")
    assert [d["payload"]["verdict"]["action"] for d in decided] == ["ask"]
    assert "docs/y.md" in decided[0]["payload"]["verdict"]["reason"]
    screen = wait(lambda: (s := server.get("sessions/cc-ask/screen")["text"])
                  and "Do you want to proceed?" in s and s, "the dialog on screen")
    assert "echo x > docs/y.md" in screen
    worktree = Path(waiting["worktree"])
    assert not (worktree / "docs" / "y.md").exists()
    # A person refuses through the API: nothing is written, the task goes on (and ends).
    status, body = server.request("POST", "sessions/cc-ask/deny", {})
    assert status == 200, body
    done = until_state(server, "cc-ask", "done", "failed")
    assert done["state"]["name"] == "done", explain(server, "cc-ask")
    assert not (worktree / "docs" / "y.md").exists()
    assert [(g["action"], g["tool"]) for g in done["flags"]["guarded"]] == [("ask", "Bash")]


# -- scheduling -------------------------------------------------------------------------------
def test_overlapping_scopes_run_one_after_the_other_disjoint_ones_together(
        server: HiveServer, api: FakeAnthropic, repo: Path) -> None:
    add(server, id="cc-one", repo=str(repo), agent="claude", scope=["src/**"], priority=5,
        check=["test", "-f", "src/one.py"],
        prompt="SCENARIO:steps bash sleep 6 ;; write src/one.py ONE = 1")
    until_state(server, "cc-one", "running")
    add(server, id="cc-two", repo=str(repo), agent="claude", scope=["src/two.py"],
        check=["test", "-f", "src/two.py"], prompt="SCENARIO:steps write src/two.py TWO = 2")
    add(server, id="cc-docs", repo=str(repo), agent="claude", scope=["docs/**"],
        check=["test", "-f", "docs/d.md"], prompt="SCENARIO:steps write docs/d.md D")
    blocked = wait(lambda: (t := task(server, "cc-two")).get("why") and "cc-one" in t["why"] and t,
                   "cc-two's why naming cc-one")
    assert "scope overlaps" in blocked["why"] and "src/**" in blocked["why"], blocked["why"]
    assert blocked["state"]["name"] == "ready"
    # The disjoint one runs, and is done, while cc-one still holds src/** (its sleep is 6 s).
    docs = until_state(server, "cc-docs", "done", "failed")
    assert docs["state"]["name"] == "done", explain(server, "cc-docs")
    one = task(server, "cc-one")
    assert one["state"]["name"] in ("running", "checking"), one["state"]
    assert docs["attempts"][0]["started"] > one["attempts"][0]["started"]
    assert task(server, "cc-two")["state"]["name"] == "ready"
    for name in ("cc-one", "cc-two"):
        done = until_state(server, name, "done", "failed")
        assert done["state"]["name"] == "done", explain(server, name)
    one, two = task(server, "cc-one"), task(server, "cc-two")
    assert two["attempts"][0]["started"] >= one["attempts"][0]["ended"]
    assert (Path(two["worktree"]) / "src" / "two.py").read_text() == "TWO = 2"


# -- rounds -----------------------------------------------------------------------------------
def test_a_failing_check_feeds_its_output_back_and_the_second_round_passes(
        server: HiveServer, api: FakeAnthropic, repo: Path) -> None:
    # When it fails the check says what is missing; the model reads that in its next prompt
    # (the fake model acts on a SCENARIO line, as a real one would act on the message). The
    # line is spelt SCEN""ARIO in the command: the first prompt quotes the check's command,
    # and the model must not find the fix there.
    check = ["sh", "-c", "test -f src/fixed.py && exit 0; echo 'check: src/fixed.py is missing'; "
                         "echo SCEN\"\"ARIO:write src/fixed.py FIXED = 1; exit 1"]
    add(server, id="cc-rounds", repo=str(repo), agent="claude", scope=["src/**"], check=check,
        prompt="SCENARIO:steps write src/first.py F = 1")
    done = until_state(server, "cc-rounds", "done", "failed")
    assert done["state"]["name"] == "done", explain(server, "cc-rounds")
    runs = [e["payload"] for e in events(server, "cc-rounds", "CheckRan")]
    assert [r["passed"] for r in runs] == [False, True]
    assert done["attempts"][0]["rounds"] == 2 and len(done["attempts"]) == 1
    worktree = Path(done["worktree"])
    assert (worktree / "src" / "first.py").exists() and (worktree / "src" / "fixed.py").exists()
    # What the model was sent for round 2: the failed check, its output tail, rounds left.
    round2 = [c for c in calls_of(api, done) if c.scenario == "write"]
    assert round2, [(c.scenario, c.step) for c in calls_of(api, done)]
    told = prompts_sent(round2[0])[-1]
    assert "check: src/fixed.py is missing" in told
    assert "exited with status 1 (round 1 of 3)" in told and "round(s) left" in told


# -- scope requests -------------------------------------------------------------------------
def scope_request_command(task_id: str, glob: str, why: str) -> str:
    """What ``hive-lab task request-scope`` does, done directly: the ScopeRequest hook event
    piped into the session's own hook client (the CLI subcommand was not merged yet)."""
    payload = json.dumps({"hook_event_name": "ScopeRequest", "task": task_id, "glob": glob,
                          "why": why})
    return (f"printf '%s' '{payload}' | python -S -E -s \"$HIVE_LAB_DIR/bin/hive_lab_hook.pyc\" "
            "--agent claude")


def test_a_scope_request_approved_through_the_api_lets_the_write_succeed(
        server: HiveServer, api: FakeAnthropic, repo: Path) -> None:
    ask = scope_request_command("cc-scope", "docs/**", "the guide must mention it")
    add(server, id="cc-scope", repo=str(repo), agent="claude", scope=["src/**"],
        check=["test", "-f", "docs/guide.md"],
        prompt=f"SCENARIO:steps write docs/guide.md early ;; bash {ask} ;; stop ;; "
               "write docs/guide.md GUIDE")
    blocked = until_state(server, "cc-scope", "blocked", "done", "failed")
    assert blocked["state"]["name"] == "blocked", explain(server, "cc-scope")
    assert blocked["state"]["reason"].startswith("scope: asks for docs/**"), blocked["state"]
    worktree = Path(blocked["worktree"])
    assert not (worktree / "docs" / "guide.md").exists()  # the first try was denied
    requests = server.get("scope-requests?task=cc-scope")["requests"]
    assert [(r["glob"], r["why"], r["state"]) for r in requests] == \
        [("docs/**", "the guide must mention it", "pending")]
    status, decided = server.request("POST", f"scope-requests/{requests[0]['id']}",
                                     {"approve": True, "note": "go ahead"})
    assert status == 200, decided
    done = until_state(server, "cc-scope", "done", "failed", "blocked")
    assert done["state"]["name"] == "done", explain(server, "cc-scope")
    assert "docs/**" in done["scope"]
    assert (worktree / "docs" / "guide.md").read_text() == "GUIDE"
    assert [g["action"] for g in done["flags"]["guarded"]] == ["deny"]  # only the early try
    told = [t for c in calls_of(api, done) for t in prompts_sent(c)]
    assert any("Your scope now includes docs/**" in t for t in told), told[-3:]


# -- restarts ---------------------------------------------------------------------------------
def test_server_killed_mid_run_restarts_without_starting_anything_twice(
        server: HiveServer, api: FakeAnthropic, repo: Path) -> None:
    add(server, id="cc-survivor", repo=str(repo), agent="claude", scope=["src/**"],
        check=["test", "-f", "src/sv.py"],
        prompt="SCENARIO:steps bash sleep 8 ;; write src/sv.py SV = 1")
    until_state(server, "cc-survivor", "running")
    wait(lambda: any(e["tool"] == "Bash" for e in events(server, "cc-survivor", "PreToolUse")),
         "the sleep to be running")
    server.stop(signal.SIGKILL)
    server.start()
    done = until_state(server, "cc-survivor", "done", "failed")
    assert done["state"]["name"] == "done", explain(server, "cc-survivor")
    assert len(done["attempts"]) == 1  # re-adopted, not started again
    assert len(events(server, "cc-survivor", "SessionCreated")) == 1
    assert len(events(server, "cc-survivor", "SessionStart")) == 1
    assert (Path(done["worktree"]) / "src" / "sv.py").read_text() == "SV = 1"
    sids = {c.headers.get("X-Claude-Code-Session-Id") for c in calls_of(api, done)}
    assert sids == {done["flags"]["agent_session_id"]}
