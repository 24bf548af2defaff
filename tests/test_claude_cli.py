"""The real Claude Code CLI against the scripted API (tests/claude_support), without Hive Lab.

These prove the e2e setup itself: the CLI installs, talks to FakeAnthropic, runs the
scripted tools, reports the usage and cost the fake API sent, writes its transcript
where FACTS.md says, and, interactively in tmux, shows the screens and fires the hooks
that Hive Lab relies on. Screens seen are written to ``<tmp_path>/screens.txt``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

try:  # with or without tests/__init__.py
    from tests.claude_support import cli as _cli
    from tests.claude_support.fake_api import ApiCall, FakeAnthropic
except ImportError:  # pragma: no cover - tests/ itself on sys.path (pytest's prepend mode)
    from claude_support import cli as _cli  # type: ignore[no-redef]
    from claude_support.fake_api import ApiCall, FakeAnthropic  # type: ignore[no-redef]

HOOK_EVENTS = _cli.HOOK_EVENTS
TmuxCLI = _cli.TmuxCLI
cli_env = _cli.cli_env
find_or_install_claude = _cli.find_or_install_claude
hook_logger_command = _cli.hook_logger_command
hook_settings = _cli.hook_settings
input_box = _cli.input_box
private_home = _cli.private_home
project_slug = _cli.project_slug
read_hook_log = _cli.read_hook_log
screen_state = _cli.screen_state
skip_reason = _cli.skip_reason
wait_until = _cli.wait_until
write_project_settings = _cli.write_project_settings

e2e = pytest.mark.e2e

# Independent of tests.claude_support.cli.cost_usd on purpose: FACTS.md's rates.
RATES = {"claude-opus-4-8": (5.0, 25.0), "claude-haiku-4-5": (1.0, 5.0), "claude-sonnet-4-5": (3.0, 15.0)}
STARTUP = 120.0  # seconds; ~0.7 s when idle, 20 s seen at load 60 on the shared 2-core machine
STEP = 60.0  # any single step (dialog, hook, file) -- normally well under a second
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@pytest.fixture(scope="session")
def claude() -> Path:
    path = find_or_install_claude()
    if path is None:
        pytest.skip(f"real Claude Code CLI unavailable: {skip_reason()}")
    return path


def expected_cost(calls: list[ApiCall]) -> float:
    total = 0.0
    for c in calls:
        assert c.usage is not None and c.model is not None
        base = c.model.split("[")[0]
        p, q = next(v for k, v in RATES.items() if base == k or base.startswith(k + "-"))
        u, cc = c.usage, c.usage["cache_creation"]
        total += (u["input_tokens"] * p + u["output_tokens"] * q
                  + cc["ephemeral_5m_input_tokens"] * 1.25 * p + cc["ephemeral_1h_input_tokens"] * 2 * p
                  + u["cache_read_input_tokens"] * 0.1 * p) / 1e6
    return total


def transcript_usage(path: Path) -> dict[str, dict[str, Any]]:
    """requestId -> usage of the fullest line (dedup per FACTS.md)."""
    by_req: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        d = json.loads(line)
        if d.get("type") != "assistant" or d.get("isSidechain"):
            continue
        u = d["message"]["usage"]
        prev = by_req.get(d["requestId"])
        if prev is None or u["output_tokens"] >= prev["output_tokens"]:
            by_req[d["requestId"]] = u
    return by_req


def run_print(claude: Path, prompt: str, tmp_path: Path, seed: int) -> tuple[dict[str, Any], FakeAnthropic, Path, Path]:
    project = tmp_path / "project"
    project.mkdir()
    with FakeAnthropic(seed=seed) as api:
        env = private_home(tmp_path, [project], base_url=api.base_url)
        proc = subprocess.run([str(claude), "-p", prompt, "--output-format", "json"], cwd=project,
                              env=cli_env(env), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout), api, Path(env["HOME"]), project


@e2e
def test_print_mode_runs_tool_and_reports_exact_usage_and_cost(claude: Path, tmp_path: Path) -> None:
    out, api, home, project = run_print(claude, "SCENARIO:bash echo hi", tmp_path, seed=11)

    # The scripted model called Bash, the CLI ran it and sent the output back.
    calls = api.usage_calls()
    assert [(c.kind, c.scenario, c.step) for c in calls] == [("messages", "bash", 0), ("messages", "bash", 1)]
    assert calls[0].content[0]["input"]["command"] == "echo hi"
    results = [b for b in calls[1].body["messages"][-1]["content"] if b.get("type") == "tool_result"]
    assert results and "hi" in json.dumps(results[0]["content"]) and not results[0].get("is_error")
    assert out["result"] == "The command printed: hi"
    assert out["is_error"] is False and out["num_turns"] == 2

    # Usage: the CLI's totals are the sums of what the fake API sent.
    for f in TOKEN_FIELDS:
        assert out["usage"][f] == sum(c.usage[f] for c in calls), f
    for f in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
        assert out["usage"]["cache_creation"][f] == sum(c.usage["cache_creation"][f] for c in calls), f
    assert out["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] > 0  # the 2x rate is exercised

    # Cost: FACTS.md's formula on what was sent equals the CLI's own total_cost_usd.
    assert out["total_cost_usd"] == pytest.approx(expected_cost(calls), abs=1e-9)

    # Transcript: where FACTS.md says, one usage per request id, equal to what was sent.
    session_id = out["session_id"]
    transcript = home / ".claude" / "projects" / project_slug(project) / f"{session_id}.jsonl"
    assert transcript.is_file(), sorted(str(p) for p in (home / ".claude").rglob("*.jsonl"))
    logged = transcript_usage(transcript)
    assert set(logged) == {c.request_id for c in calls}
    for c in calls:
        u = logged[c.request_id]
        assert {f: u[f] for f in TOKEN_FIELDS} == {f: c.usage[f] for f in TOKEN_FIELDS}
        assert u["cache_creation"] == c.usage["cache_creation"]


@e2e
def test_print_mode_several_tool_calls_in_one_message(claude: Path, tmp_path: Path) -> None:
    out, api, home, project = run_print(claude, "SCENARIO:multi", tmp_path, seed=12)
    calls = api.usage_calls()
    assert calls[0].tool_names == ["Bash", "Bash"]
    # Both tools ran: the next request carries two tool results, one being pwd's output.
    results = [b for b in calls[1].body["messages"][-1]["content"] if b.get("type") == "tool_result"]
    assert len(results) == 2 and str(project) in json.dumps(results)
    assert out["total_cost_usd"] == pytest.approx(expected_cost(calls), abs=1e-9)

    # One response (text + 2 tool_use blocks) is written as several transcript lines
    # sharing message.id and requestId: counting each once gives the true usage.
    transcript = home / ".claude" / "projects" / project_slug(project) / f"{out['session_id']}.jsonl"
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    first = [d for d in lines if d.get("type") == "assistant" and d["requestId"] == calls[0].request_id]
    assert len(first) == 3 and {d["message"]["id"] for d in first} == {calls[0].message_id}
    logged = transcript_usage(transcript)
    for f in TOKEN_FIELDS:
        assert sum(u[f] for u in logged.values()) == out["usage"][f]


def _post(api: FakeAnthropic, body: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    req = urllib.request.Request(api.base_url + "/v1/messages?beta=true", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(r.headers.items()), r.read()


def test_fake_api_speaks_the_streaming_protocol() -> None:
    """Without the CLI: the SSE event order, tool input via input_json_delta, usage, request-id."""
    tools = [{"name": "Write", "input_schema": {"type": "object"}}]
    body = {"model": "claude-opus-4-8", "stream": True, "tools": tools,
            "system": [{"type": "text", "text": "x\n - Primary working directory: /w/p\n"}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "SCENARIO:write a/b.txt hi there"}]}]}
    with FakeAnthropic(seed=3) as api:
        headers, raw = _post(api, body)
        side_headers, side_raw = _post(api, {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [
            {"role": "user", "content": "title please"}]})
        calls = api.calls
    events = []
    for chunk in raw.decode().split("\n\n"):
        if chunk.strip():
            name, data = chunk.split("\n", 1)
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    assert [n for n, _ in events] == ["message_start", "ping",
                                      "content_block_start", "content_block_delta", "content_block_delta",
                                      "content_block_delta", "content_block_stop",
                                      "content_block_start", "content_block_delta", "content_block_delta",
                                      "content_block_delta", "content_block_stop",
                                      "message_delta", "message_stop"]
    assert all(d["type"] == n for n, d in events)
    assert headers["request-id"] == calls[0].request_id and headers["content-type"].startswith("text/event-stream")
    start = events[0][1]["message"]
    assert start["content"] == [] and start["id"] == calls[0].message_id and start["model"] == "claude-opus-4-8"
    tool_start = events[7][1]["content_block"]
    assert tool_start["type"] == "tool_use" and tool_start["name"] == "Write" and tool_start["input"] == {}
    partial = "".join(d["delta"]["partial_json"] for n, d in events[8:11])
    assert json.loads(partial) == {"file_path": "/w/p/a/b.txt", "content": "hi there"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == calls[0].usage["output_tokens"] > 1
    u = calls[0].usage
    assert u["cache_creation_input_tokens"] == sum(u["cache_creation"].values())
    assert (calls[0].kind, calls[0].scenario, calls[0].step, calls[0].tool_names) == ("messages", "write", 0, ["Write"])
    # A side call (no tools, no stream) gets a plain JSON message.
    side = json.loads(side_raw)
    assert side["type"] == "message" and side["content"][0]["type"] == "text" and side["stop_reason"] == "end_turn"
    assert side_headers["request-id"] == calls[1].request_id and calls[1].kind == "side"
    assert calls[0].usage != calls[1].usage


# --------------------------------------------------------------------------- interactive


def _events(log: Path) -> list[dict[str, Any]]:
    return read_hook_log(log)


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [e["hook_event_name"] + (f"({e['tool_name']})" if e.get("tool_name") else "") for e in events]


def _core(events: list[dict[str, Any]]) -> list[str]:
    """Hook sequence without the events whose timing varies (MessageDisplay, Notification)."""
    return _names([e for e in events if e["hook_event_name"] not in ("MessageDisplay", "Notification")])


def _has(log: Path, name: str, tool: str | None = None, **fields: Any):
    def check() -> dict[str, Any] | None:
        for e in _events(log):
            if e.get("hook_event_name") == name and (tool is None or e.get("tool_name") == tool) \
                    and all(e.get(k) == v for k, v in fields.items()):
                return e
        return None
    return check


@e2e
def test_interactive_session_in_tmux(claude: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    hook_log = tmp_path / "hooks.jsonl"
    write_project_settings(project, hook_settings(hook_logger_command(hook_log, tmp_path / "bin"), HOOK_EVENTS))

    term = TmuxCLI(width=120, height=40)
    with FakeAnthropic(seed=21) as api:
        env = private_home(tmp_path, [project], base_url=api.base_url)
        try:
            # Through sh: tmux 3.3a gives no status for a pane ended by a signal, sh gives 128+N.
            term.start(["sh", "-c", '"$@"; exit $?', "sh", str(claude), "--permission-mode", "default"],
                       cwd=project, env=env)

            # -- startup. FACTS.md's list names DirectoryAdded, which 2.1.197 does not know:
            # it shows a blocking "Settings Warning" first; "1. Continue" gets past it.
            screen = term.wait_for(lambda s: screen_state(s) in ("idle", "first-run:settings-warning"), STARTUP)
            if screen_state(screen) == "first-run:settings-warning":
                assert 'Unknown hook event "DirectoryAdded"' in screen
                term.keys("1")
            screen = term.wait_for(lambda s: screen_state(s) == "idle", STARTUP)
            assert input_box(screen) == ""
            assert "? for shortcuts" in screen
            start = wait_until(_has(hook_log, "SessionStart", source="startup"), STEP, what="SessionStart")
            session_id = start["session_id"]
            assert start["cwd"] == str(project)

            # -- 1. Write needs permission: the dialog, PermissionRequest, then (later) Notification.
            term.paste("SCENARIO:write notes.txt hello")
            screen = term.wait_for("Do you want to create notes.txt?", STEP)
            assert screen_state(screen) == "permission"
            for cue in ("❯ 1. Yes", "3. No", "Esc to cancel"):
                assert cue in screen
            req = wait_until(_has(hook_log, "PermissionRequest", "Write"), STEP, what="PermissionRequest")
            assert req["tool_input"]["file_path"] == str(project / "notes.txt")
            # 2.1.197 sends Notification(permission_prompt) only ~6 s after the dialog opened.
            note = wait_until(_has(hook_log, "Notification", notification_type="permission_prompt"), STEP,
                              what="Notification(permission_prompt)")
            assert note["_ts"] >= req["_ts"]
            assert not (project / "notes.txt").exists()
            term.keys("1")
            wait_until(lambda: (project / "notes.txt").exists() and (project / "notes.txt").read_text() == "hello",
                       STEP, what="notes.txt")
            post = wait_until(_has(hook_log, "PostToolUse", "Write"), STEP, what="PostToolUse(Write)")
            assert post["tool_input"]["file_path"] == str(project / "notes.txt")
            wait_until(_has(hook_log, "Stop"), STEP, what="Stop")
            screen = term.wait_for(lambda s: screen_state(s) == "idle" and "Created notes.txt." in s, STEP)

            # -- 2. Denied with "3": no file, back to the idle prompt; the CLI fires no hook for it.
            n_before = len(_events(hook_log))
            term.paste("SCENARIO:write denied.txt nope")
            term.wait_for("Do you want to create denied.txt?", STEP)
            wait_until(_has(hook_log, "PermissionRequest", "Write", tool_input={
                "file_path": str(project / "denied.txt"), "content": "nope"}), STEP, what="PermissionRequest 2")
            term.keys("3")
            screen = term.wait_for(lambda s: screen_state(s) == "idle" and "User rejected write to denied.txt" in s, STEP)
            # -- 2b. Denied with Escape.
            term.paste("SCENARIO:write escaped.txt nope")
            term.wait_for("Do you want to create escaped.txt?", STEP)
            term.keys("Escape")
            term.wait_for(lambda s: screen_state(s) == "idle" and "User rejected write to escaped.txt" in s, STEP)
            assert not (project / "denied.txt").exists() and not (project / "escaped.txt").exists()
            assert not any(e.get("hook_event_name") == "PostToolUse" for e in _events(hook_log)[n_before:])

            # -- 3. A slow tool: the working screen while `sleep 3` runs.
            term.paste("SCENARIO:slow 3")
            screen = term.wait_for(lambda s: "Bash(sleep 3)" in s and screen_state(s) == "working", STEP)
            assert "esc to interrupt" in screen and ("Running…" in screen or "Waiting…" in screen)
            assert input_box(screen) == ""  # the (empty) box stays visible while working
            post = wait_until(_has(hook_log, "PostToolUse", "Bash"), STEP, what="PostToolUse(Bash)")
            assert post["tool_input"]["command"] == "sleep 3" and post["duration_ms"] >= 2500
            term.wait_for(lambda s: screen_state(s) == "idle" and "Slept 3 seconds." in s, STEP)
            wait_until(lambda: _core(_events(hook_log))[-1] == "Stop", STEP, what="second Stop")

            # -- 4. /exit: SessionEnd and a clean exit status.
            term.paste("/exit")
            wait_until(_has(hook_log, "SessionEnd"), STEP, what="SessionEnd")
            # The pane dies soon after SessionEnd, one of two ways with 2.1.197 (the second in 5
            # of ~60 runs, more often under load): exit status 0, or ended by a signal that also
            # ends the sh wrapper (so it reached the whole process group); tmux 3.3a records no
            # status for a pane ended by a signal (claude_support/NOTES.md, "Exit").
            wait_until(lambda: term.pane_dead()[0], STEP, what=lambda: f"pane death; pane:\n{term.processes()}")
            try:
                _, status = wait_until(lambda: (lambda d: d if d[1] is not None else None)(term.pane_dead()),
                                       3.0, what="the exit status")
            except TimeoutError:
                status = None
                print("claude ended by a signal after /exit (no exit status)")
            assert status in (0, None), f"exit status {status}"
        finally:
            try:
                term.capture("final")
                term.dump_screens(tmp_path / "screens.txt")
            finally:
                term.kill()

    events = _events(hook_log)
    assert {e["session_id"] for e in events} == {session_id}
    assert _core(events) == [
        "SessionStart",
        "UserPromptSubmit", "PreToolUse(Write)", "PermissionRequest(Write)", "PostToolUse(Write)",
        "PostToolBatch", "Stop",
        "UserPromptSubmit", "PreToolUse(Write)", "PermissionRequest(Write)",  # denied with 3: nothing more
        "UserPromptSubmit", "PreToolUse(Write)", "PermissionRequest(Write)",  # denied with Escape
        "UserPromptSubmit", "PreToolUse(Bash)", "PostToolUse(Bash)", "PostToolBatch", "Stop",
        "SessionEnd",
    ], _names(events)
    assert [e["reason"] for e in events if e["hook_event_name"] == "SessionEnd"] == ["prompt_input_exit"]

    # Every hook names the transcript, which holds one usage per main-loop request sent.
    paths = {e["transcript_path"] for e in events}
    assert len(paths) == 1
    transcript = Path(paths.pop())
    assert transcript == Path(env["HOME"]) / ".claude" / "projects" / project_slug(project) / f"{session_id}.jsonl"
    logged = transcript_usage(transcript)
    main = [c for c in api.usage_calls() if c.kind == "messages"]
    assert {c.request_id for c in main} <= set(logged)
    for c in main:
        assert {f: logged[c.request_id][f] for f in TOKEN_FIELDS} == {f: c.usage[f] for f in TOKEN_FIELDS}
