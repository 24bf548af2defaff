"""Hive Lab with the real Claude Code CLI, end to end, through the REST API only.

The CLI is the unmodified binary from the npm registry (``tests/claude_support``), run by Hive
Lab's built-in ``claude`` profile in Hive Lab's own tmux server, found on the Jupyter server's
PATH like a user's install. It talks to :class:`FakeAnthropic`, a scripted Messages API: a
prompt ``SCENARIO:write notes.txt hello`` makes the "model" call Write, and so on. The test
is a client like any other: it spawns, types, presses keys, reads screens, states,
transitions and events over HTTP, and checks the files the agent wrote.

Next to Hive Lab's hooks, each project gets a second, independent hook (a tiny logging
script, installed in ``.claude/settings.local.json`` *before* the spawn: Hive Lab must merge
with it). Its log is the ground truth of which hook events the CLI fired.

What was seen running these (CLI 2.1.197) is in ``tests/claude_support/NOTES.md``.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from support import HiveServer, wait_for

try:  # with or without tests/__init__.py
    from tests.claude_support import cli as _cli
    from tests.claude_support.fake_api import FakeAnthropic
except ImportError:  # pragma: no cover - tests/ itself on sys.path (pytest's prepend mode)
    from claude_support import cli as _cli  # type: ignore[no-redef]
    from claude_support.fake_api import FakeAnthropic  # type: ignore[no-redef]


STARTUP = 120.0  # ~1 s on an idle machine; 20 s seen at load 60 on the shared 2 cores
STEP = 60.0      # any single step (dialog, hook, file): normally well under a second
# Events the CLI fires "on the side", without waiting for their hooks before it goes on.
UNSEQUENCED = ("MessageDisplay", "Notification")
CONCURRENT = 1.0  # s: two hooks fired closer than this may be seen in either order


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def claude() -> Path:
    path = _cli.find_or_install_claude()
    if path is None:
        pytest.skip(f"real Claude Code CLI unavailable: {_cli.skip_reason()}")
    return path


@pytest.fixture(scope="module")
def api() -> Any:
    with FakeAnthropic(seed=41) as fake:
        yield fake


@pytest.fixture(scope="module")
def hive(claude: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Jupyter server with Hive Lab whose PATH has the ``claude`` binary's directory.

    Inherited ``ANTHROPIC_*`` / ``CLAUDE*`` variables (an outer Claude Code sets some) are
    dropped: the tmux server, and so every agent, inherits the Jupyter server's environment.
    """
    srv = HiveServer(tmp_path_factory.mktemp("hive-claude"), extra_path=[str(claude.parent)],
                     drop_env_prefixes=("ANTHROPIC_", "CLAUDE", "OTEL_"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill_tmux()


# -- REST helpers (everything the test learns about Hive Lab goes through these) ------------
def rest_events(srv: HiveServer, session: str, agent_only: bool = True) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = srv.get(f"events?session={session}&after={after}&limit=10000")["events"]
        out += page
        if len(page) < 10000:
            break
        after = page[-1]["id"]
    return [e for e in out if not agent_only or e["agent"] != "hive"]


def rest_state(srv: HiveServer, session: str) -> dict[str, Any]:
    return srv.get(f"sessions/{session}")["state"]


def rest_screen(srv: HiveServer, session: str) -> str:
    return srv.get(f"sessions/{session}/screen")["text"]


def rest_transitions(srv: HiveServer, session: str) -> list[dict[str, Any]]:
    return srv.get(f"transitions?session={session}")["transitions"]


def keys(srv: HiveServer, session: str, *names: str) -> None:
    status, body = srv.request("POST", f"sessions/{session}/keys", {"keys": list(names)})
    assert status == 200, body


def type_prompt(srv: HiveServer, session: str, text: str) -> None:
    status, body = srv.request("POST", f"sessions/{session}/input", {"text": text, "enter": True})
    assert status == 200, body


def wait(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    return wait_for(pred, timeout=timeout, interval=interval, what=what)  # the shared poller


def wait_state(srv: HiveServer, session: str, name: str, timeout: float = STEP,
               **fields: Any) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        state = rest_state(srv, session)
        ok = state["name"] == name and all(state.get(k) == v for k, v in fields.items())
        return state if ok else None
    try:
        return wait(check, timeout, f"state {name} {fields or ''} of {session}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstate: {rest_state(srv, session)}\n"
                             f"screen:\n{rest_screen(srv, session)}") from None


def stored(srv: HiveServer, session: str, event: str, tool: str | None = None,
           after: int = 0) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        for e in rest_events(srv, session):
            if e["id"] > after and e["event"] == event and (tool is None or e["tool"] == tool):
                return e
        return None
    return check


def last_event_id(srv: HiveServer) -> int:
    return srv.get("status")["last_event_id"]


def spans(rows: list[dict[str, Any]], after: int) -> list[tuple[Any, ...]]:
    """(name, reason, tool) of the transitions recorded after event id ``after``."""
    return [(t["name"], t["reason"], t["tool"]) for t in rows if t["event_id"] > after]


# -- the project a session runs in ----------------------------------------------------------
def make_project(tmp_path: Path, api: FakeAnthropic, trusted: bool = True,
                 key_approved: bool = True, events: tuple[str, ...] = _cli.HOOK_EVENTS_2_1_197,
                 ) -> tuple[Path, dict[str, str], Path, dict[str, Any]]:
    """A project dir with the logging hook installed, a private HOME, the session env."""
    project = tmp_path / "project"
    project.mkdir()
    hook_log = tmp_path / "independent-hooks.jsonl"
    settings = _cli.hook_settings(_cli.hook_logger_command(hook_log, tmp_path / "bin"), events)
    settings["permissions"] = {"allow": ["Bash(echo:*)"]}  # user content Hive Lab must keep
    _cli.write_project_settings(project, settings)
    extra = {} if key_approved else {"customApiKeyResponses": {"approved": [], "rejected": []}}
    env = _cli.private_home(tmp_path, [project] if trusted else [], base_url=api.base_url,
                            extra_config=extra)
    return project, env, hook_log, settings


def spawn_claude(srv: HiveServer, name: str, project: Path, env: dict[str, str],
                 **extra: Any) -> dict[str, Any]:
    status, body = srv.request("POST", "sessions", {"name": name, "agent": "claude",
                                                    "cwd": str(project), "env": env, **extra})
    assert status == 201, body
    return body


def logged(hook_log: Path) -> list[dict[str, Any]]:
    return _cli.read_hook_log(hook_log)


def without_ts(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "_ts"}


def canon(payload: dict[str, Any]) -> str:
    return json.dumps(without_ts(payload), sort_keys=True)


def key_of(payload: dict[str, Any]) -> tuple[Any, ...]:
    return (payload.get("hook_event_name"), payload.get("session_id"), payload.get("tool_use_id"))


# -- the tests --------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_claude_session_through_the_api(hive: HiveServer, api: FakeAnthropic,
                                        tmp_path: Path) -> None:
    """Steps 1-6 of the issue on one real Claude Code session."""
    name = "cc-main"
    project, env, hook_log, user_settings = make_project(tmp_path, api)
    settings_file = project / ".claude" / "settings.local.json"
    created = spawn_claude(hive, name, project, env)
    assert created["agent"] == "claude" and created["command"][0] == "claude"

    # Hive Lab merged its hooks into the settings file, next to the user's hook and settings.
    merged = json.loads(settings_file.read_text())
    assert merged["permissions"] == user_settings["permissions"]
    for event in _cli.HOOK_EVENTS_2_1_197:
        commands = [h["command"] for g in merged["hooks"][event] for h in g["hooks"]]
        assert any("hook_logger.py" in c for c in commands), event
        # Every event but WorktreeCreate (see test_claude_worktree_flag_works_with_our_hooks)
        assert any("hive_lab_hook" in c for c in commands) == (event != "WorktreeCreate"), event

    # -- start: SessionStart makes the session idle; the hook tells Hive Lab who it is.
    wait_state(hive, name, "idle", STARTUP)
    start = wait(stored(hive, name, "SessionStart"), STEP, "SessionStart stored")
    assert start["payload"]["source"] == "startup" and start["payload"]["cwd"] == str(project)
    agent_sid = start["agent_session_id"]
    detail = hive.get(f"sessions/{name}")
    assert detail["agent_session_id"] == agent_sid
    assert detail["transcript_path"] == start["payload"]["transcript_path"]
    assert detail["transcript_path"] == str(_cli.transcript_path(env["HOME"], project, agent_sid))

    # -- 1. Write needs permission: waiting(permission, Write), and the dialog on screen.
    mark = last_event_id(hive)
    type_prompt(hive, name, "SCENARIO:write notes.txt hello")
    state = wait_state(hive, name, "waiting", reason="permission", tool="Write")
    assert state["source"] == "hook:PermissionRequest"
    screen = wait(lambda: (lambda s: s if "Do you want to create notes.txt?" in s else None)(
        rest_screen(hive, name)), STEP, "the permission dialog on screen")
    for cue in ("Create file", "❯ 1. Yes", "3. No", "Esc to cancel"):
        assert cue in screen, (cue, screen)
    assert not (project / "notes.txt").exists()
    # The user takes a while: 2.1.197 adds Notification(permission_prompt) ~6 s after the
    # dialog opened (FACTS.md says "together"). Then, with every hook older than Hive Lab
    # trusts on its own, the screen cross-check runs: it must agree, the dialog is open.
    request = stored(hive, name, "PermissionRequest", "Write", after=mark)()
    note = wait(stored(hive, name, "Notification", after=mark), STEP, "Notification")
    assert note["payload"]["notification_type"] == "permission_prompt"
    assert _epoch(note["time"]) - _epoch(request["time"]) > 4
    time.sleep(4.0)
    assert rest_state(hive, name) == state  # unchanged, incl. its source and since

    # -- 2. Approve through the API: the file, PostToolUse and Stop, then idle.
    keys(hive, name, "1")
    wait(lambda: (project / "notes.txt").is_file() and (project / "notes.txt").read_text() == "hello",
         STEP, "notes.txt written")
    post = wait(stored(hive, name, "PostToolUse", "Write", after=mark), STEP, "PostToolUse(Write)")
    pre = stored(hive, name, "PreToolUse", "Write", after=mark)()
    assert pre and post["tool_use_id"] == pre["tool_use_id"] and post["tool_use_id"]
    assert post["payload"]["tool_input"]["file_path"] == str(project / "notes.txt")
    wait(stored(hive, name, "Stop", after=post["id"]), STEP, "Stop after the Write")
    state = wait_state(hive, name, "idle")
    assert state["source"] == "hook:Stop"
    assert spans(rest_transitions(hive, name), mark) == [
        ("working", None, None),              # UserPromptSubmit
        ("waiting", "permission", "Write"),   # PermissionRequest
        ("working", None, None),              # PostToolUse (approved)
        ("idle", None, None),                 # Stop
    ]

    # -- 3. Deny through the API, with "3" and with Escape. Claude Code fires no hook for a
    # denial: the dialog goes, the input box comes back. Hive Lab's screen fallback decides.
    for prompt_file, deny_key in (("denied.txt", "3"), ("escaped.txt", "Escape")):
        mark = last_event_id(hive)
        type_prompt(hive, name, f"SCENARIO:write {prompt_file} nope")
        wait_state(hive, name, "waiting", reason="permission", tool="Write")
        wait(lambda f=prompt_file: f"Do you want to create {f}?" in rest_screen(hive, name),
             STEP, f"dialog for {prompt_file}")
        keys(hive, name, deny_key)
        state = wait_state(hive, name, "idle", source="screen")
        assert "denied" in state.get("detail", ""), state
        assert f"User rejected write to {prompt_file}" in rest_screen(hive, name)
        assert not (project / prompt_file).exists()
        names = [e["event"] for e in rest_events(hive, name) if e["id"] > mark]
        assert "PostToolUse" not in names and "Stop" not in names, names
        assert spans(rest_transitions(hive, name), mark) == [
            ("working", None, None),
            ("waiting", "permission", "Write"),
            ("idle", None, None),             # screen: the dialog closed without a hook
        ]

    # -- 4. A slow tool: `working` the whole time it runs. 5 s, longer than Hive Lab trusts a
    # hook without a screen cross-check (HOOK_TRUST_SECONDS = 3), so that check runs too.
    mark = last_event_id(hive)
    type_prompt(hive, name, "SCENARIO:slow 5")
    pre = wait(stored(hive, name, "PreToolUse", "Bash", after=mark), STEP, "PreToolUse(Bash)")
    assert pre["payload"]["tool_input"]["command"] == "sleep 5"
    samples: list[tuple[float, str]] = []
    while not stored(hive, name, "PostToolUse", "Bash", after=mark)():
        samples.append((time.monotonic(), rest_state(hive, name)["name"]))
        assert len(samples) < 2000, "the slow tool never finished"
        time.sleep(0.25)
    assert samples and {s for _, s in samples} == {"working"}, samples
    assert samples[-1][0] - samples[0][0] >= 3.5, "sampled less than the tool's run time"
    wait_state(hive, name, "idle")
    assert spans(rest_transitions(hive, name), mark) == [("working", None, None), ("idle", None, None)]

    # -- 5. Kill through the API: exited, SessionEnd (if the CLI fired it) in the store.
    status, killed = hive.request("DELETE", f"sessions/{name}")
    assert status == 200, killed
    assert name not in [s["name"] for s in hive.get("sessions")["sessions"]]
    assert hive.request("GET", f"sessions/{name}")[0] == 404
    # Hive Lab's hooks are gone from the settings file; the user's are untouched.
    assert json.loads(settings_file.read_text()) == user_settings
    removed = [e for e in rest_events(hive, name, agent_only=False) if e["event"] == "SessionRemoved"]
    assert len(removed) == 1 and removed[0]["payload"]["killed"], removed
    # 2.1.197 runs its SessionEnd hooks when tmux hangs up on it (reason "other"), while Hive
    # Lab waits for the process to end: the event is stored, after the `exited` the kill
    # decided -- once, whatever came first (the poller seeing the tmux session gone, the hook).
    ended = wait(lambda: [p for p in logged(hook_log) if p["hook_event_name"] == "SessionEnd"],
                 STEP, "SessionEnd in the independent log")
    assert [p["reason"] for p in ended] == ["other"]
    session_end = wait(stored(hive, name, "SessionEnd"), STEP, "SessionEnd stored")
    time.sleep(1.0)  # a few polls after the kill: nothing may follow the exit
    rows = rest_transitions(hive, name)
    assert [(t["name"], t["reason"], t["source"]) for t in rows if t["name"] == "exited"] == [
        ("exited", None, "kill")], rows
    assert rows[-1]["name"] == "exited" and rows[-1]["event_id"] < session_end["id"]

    # -- 6. Every hook event the CLI fired is stored exactly once, in order.
    compare_with_independent_log(hive, name, hook_log, agent_sid)
    sequence = [e["event"] + (f"({e['tool']})" if e["tool"] else "")
                for e in rest_events(hive, name) if e["event"] not in UNSEQUENCED]
    assert sequence == [
        "SessionStart",
        "UserPromptSubmit", "PreToolUse(Write)", "PermissionRequest(Write)",   # approved
        "PostToolUse(Write)", "PostToolBatch", "Stop",
        "UserPromptSubmit", "PreToolUse(Write)", "PermissionRequest(Write)",   # denied: "3"
        "UserPromptSubmit", "PreToolUse(Write)", "PermissionRequest(Write)",   # denied: Escape
        "UserPromptSubmit", "PreToolUse(Bash)", "PostToolUse(Bash)", "PostToolBatch", "Stop",
        "SessionEnd",
    ], sequence

    # Usage: the transcript Hive Lab reported holds one usage per main-loop API request.
    transcript = Path(detail["transcript_path"])
    assert transcript.is_file()
    usage_by_request = {}
    for line in transcript.read_text().splitlines():
        d = json.loads(line)
        if d.get("type") == "assistant" and d.get("requestId"):
            usage_by_request[d["requestId"]] = d["message"]["usage"]
    mine = [c for c in api.usage_calls() if c.kind == "messages" and
            {k.lower(): v for k, v in c.headers.items()}.get("x-claude-code-session-id") == agent_sid]
    assert len(mine) == 6, [(c.scenario, c.step) for c in mine]  # 2 + 1 + 1 + 2 round trips
    for c in mine:
        assert c.request_id in usage_by_request, c.request_id
        for f in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                  "cache_read_input_tokens"):
            assert usage_by_request[c.request_id][f] == c.usage[f], f


def compare_with_independent_log(srv: HiveServer, name: str, hook_log: Path,
                                 agent_sid: str) -> None:
    """What "every event once, in order" can honestly mean.

    Claude Code starts every hook registered for an event at once (ours and the logger run
    side by side) and, for most events, waits for them before it goes on. It does not wait
    for the ones it fires on the side: ``MessageDisplay`` (while text streams) and
    ``Notification``. The store orders events by arrival (ids); the log by when the logger
    appended. So:

    1. Once: stored and logged payloads are the same multiset, compared whole (so their
       (hook_event_name, session_id, tool_use_id) are too). Nothing lost, nothing twice.
    2. The sequenced events (all but MessageDisplay/Notification) are in exactly the same
       order: the CLI waited for both hooks of one before it fired the next, so no honest
       observer can see them otherwise.
    3. Overall, the two orders may differ only for a pair with one side event in it, fired
       within ``CONCURRENT`` seconds of the other by both clocks (our client's ``time``, the
       logger's ``_ts``). Measured: 5-60 ms apart on an idle machine; the bound leaves room
       for a loaded one.
    """
    def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        ours, theirs = rest_events(srv, name), logged(hook_log)
        return (ours, theirs) if len(ours) == len(theirs) and theirs else None

    try:
        ours, theirs = wait(settled, 30, "the store to hold as many events as the log", 0.5)
    except AssertionError:
        ours, theirs = rest_events(srv, name), logged(hook_log)  # 1. says what differs
    stored_payloads = [e["payload"] for e in ours]
    logged_payloads = [without_ts(p) for p in theirs]
    assert {p.get("session_id") for p in logged_payloads} == {agent_sid}

    # 1. once
    missing = Counter(map(canon, logged_payloads)) - Counter(map(canon, stored_payloads))
    extra = Counter(map(canon, stored_payloads)) - Counter(map(canon, logged_payloads))
    # A side event's hooks are not waited for: when the session ends, the CLI may drop a slow
    # hook process of one. The logger (a Python script) is slower than our C client, so the
    # store can hold a side event the log lacks; it can never hold one twice.
    for key in [k for k in extra if json.loads(k)["hook_event_name"] in UNSEQUENCED]:
        assert Counter(map(canon, stored_payloads))[key] == 1, "a side event stored twice"
        del extra[key]
    stored_payloads = [p for p in stored_payloads if canon(p) not in
                       {k for k, n in (Counter(map(canon, stored_payloads))
                                       - Counter(map(canon, logged_payloads))).items()}]
    ours = [e for e in ours if canon(e["payload"]) in {canon(p) for p in stored_payloads}]
    assert not missing and not extra, {
        "missing": [json.loads(m)["hook_event_name"] for m in missing],
        "extra": [json.loads(x)["hook_event_name"] for x in extra]}
    assert len({e["id"] for e in ours}) == len(ours)

    # 2. the sequenced events in the same order
    def sequenced(payloads: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [key_of(p) for p in payloads if p.get("hook_event_name") not in UNSEQUENCED]

    assert sequenced(stored_payloads) == sequenced(logged_payloads)

    # 3. every other difference of order is between side events and their neighbours in time
    pools: dict[str, list[int]] = {}
    for i, p in enumerate(stored_payloads):
        pools.setdefault(canon(p), []).append(i)
    store_pos = [pools[canon(p)].pop(0) for p in logged_payloads]  # log index -> store index
    inversions = []
    for a, b in itertools.combinations(range(len(store_pos)), 2):  # a logged before b ...
        sa, sb = store_pos[a], store_pos[b]
        if sa > sb:  # ... but stored after it
            ours_apart = abs(_epoch(ours[sa]["time"]) - _epoch(ours[sb]["time"]))
            log_apart = abs(theirs[a]["_ts"] - theirs[b]["_ts"])
            inversions.append({"events": (theirs[a]["hook_event_name"], theirs[b]["hook_event_name"]),
                               "ms_apart": (round(ours_apart * 1000), round(log_apart * 1000))})
    for inv in inversions:
        assert set(inv["events"]) & set(UNSEQUENCED), inversions
        assert max(inv["ms_apart"]) < CONCURRENT * 1000, inversions


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_first_run_screens_are_answered(hive: HiveServer, api: FakeAnthropic,
                                        tmp_path: Path) -> None:
    """A project never trusted, a key never approved, settings naming an event 2.1.197 does
    not know: the CLI stops on three first-run screens, Hive Lab's ``first_run`` cues answer
    them, the session reaches SessionStart / idle, and the spawn's ``prompt`` is typed then."""
    name = "cc-first"
    project, env, hook_log, _ = make_project(tmp_path, api, trusted=False, key_approved=False,
                                             events=_cli.HOOK_EVENTS)  # incl. DirectoryAdded
    spawn_claude(hive, name, project, env, prompt="SCENARIO:text all good")
    try:
        start = wait(stored(hive, name, "SessionStart"), STARTUP, "SessionStart stored")
        # The initial prompt was typed once the CLI was ready, and its turn ran.
        prompt = wait(stored(hive, name, "UserPromptSubmit"), STEP, "the initial prompt")
        assert prompt["payload"]["prompt"] == "SCENARIO:text all good"
        wait(stored(hive, name, "Stop"), STEP, "Stop")
        state = wait_state(hive, name, "idle")
        assert state["source"] == "hook:Stop"
        assert "all good" in rest_screen(hive, name)
        assert _cli.input_box(rest_screen(hive, name)) == ""
        assert [(t["name"], t["source"]) for t in rest_transitions(hive, name)] == [
            ("starting", "spawn"), ("idle", "hook:SessionStart"),
            ("working", "hook:UserPromptSubmit"), ("idle", "hook:Stop")]
        # The CLI recorded the answers: the folder is trusted, the key accepted (not refused).
        config = json.loads((Path(env["HOME"]) / ".claude.json").read_text())
        assert config["projects"][str(project)]["hasTrustDialogAccepted"] is True
        assert env["ANTHROPIC_API_KEY"][-20:] in config["customApiKeyResponses"]["approved"]
        assert not config["customApiKeyResponses"].get("rejected")
        # What Hive Lab pressed for the user is on the event stream, once per screen, in
        # the order 2.1.197 shows them: trust, API key, then the settings warning (project
        # settings are read only once the folder is trusted).
        answered = [(e["payload"]["cue"], e["payload"]["keys"])
                    for e in rest_events(hive, name, agent_only=False) if e["event"] == "ScreenAnswered"]
        kinds = {"you trust": "trust", "custom API key": "api-key", "Settings Warning": "settings"}
        assert [(next((v for k, v in kinds.items() if k in cue), cue), keys)
                for cue, keys in answered] == [
            ("trust", ["Enter"]), ("api-key", ["1"]), ("settings", ["1"])], answered
        detail = hive.get(f"sessions/{name}")
        assert detail["agent_session_id"] == start["agent_session_id"]
        assert Path(detail["transcript_path"]).is_file()
    finally:
        hive.request("DELETE", f"sessions/{name}")


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_approve_and_deny_only_answer_an_open_dialog(hive: HiveServer, api: FakeAnthropic,
                                                     tmp_path: Path) -> None:
    """B2 on the real CLI: approve/deny on an idle Claude Code are refused (409) and type
    nothing into its prompt; on an open permission dialog they press 1 / Escape."""
    name = "cc-answers"
    project, env, _, _ = make_project(tmp_path, api)
    spawn_claude(hive, name, project, env)
    try:
        wait_state(hive, name, "idle", STARTUP)
        for kind in ("approve", "deny"):
            status, body = hive.request("POST", f"sessions/{name}/{kind}", {})
            assert status == 409, body
            assert "not waiting for permission" in body["detail"] and body["state"]["name"] == "idle"
        # Nothing was typed: the next prompt reaches the model exactly as written (a stray
        # "1" would have been its first character).
        mark = last_event_id(hive)
        prompt = "SCENARIO:write approved.txt yes"
        type_prompt(hive, name, prompt)
        submitted = wait(stored(hive, name, "UserPromptSubmit", after=mark), STEP, "prompt")
        assert submitted["payload"]["prompt"] == prompt
        wait_state(hive, name, "waiting", reason="permission", tool="Write")
        wait(lambda: "Do you want to create approved.txt?" in rest_screen(hive, name), STEP,
             "the dialog on screen")
        status, body = hive.request("POST", f"sessions/{name}/approve", {})
        assert status == 200, body
        assert body == {"name": name, "answer": "approve", "keys": ["1"], "tool": "Write"}
        wait(lambda: (project / "approved.txt").is_file(), STEP, "approved.txt written")
        assert (project / "approved.txt").read_text() == "yes"
        wait_state(hive, name, "idle")

        type_prompt(hive, name, "SCENARIO:write denied.txt no")
        wait_state(hive, name, "waiting", reason="permission", tool="Write")
        wait(lambda: "Do you want to create denied.txt?" in rest_screen(hive, name), STEP,
             "the second dialog on screen")
        assert hive.client().deny(name)["keys"] == ["Escape"]
        wait_state(hive, name, "idle", source="screen")
        assert "User rejected write to denied.txt" in rest_screen(hive, name)
        assert not (project / "denied.txt").exists()
    finally:
        hive.request("DELETE", f"sessions/{name}")


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_claude_worktree_flag_works_with_our_hooks(hive: HiveServer, api: FakeAnthropic,
                                                   tmp_path: Path) -> None:
    """``claude --worktree NAME`` in a Hive Lab session. A command hook registered for
    WorktreeCreate *replaces* Claude Code's own ``git worktree add`` and must print the new
    path; one that prints nothing (a logger, Hive Lab's client) makes 2.1.197 exit 1 with
    "WorktreeCreate hook failed: hook succeeded but returned no worktree path"."""
    name = "cc-worktree"
    events = tuple(e for e in _cli.HOOK_EVENTS_2_1_197 if e != "WorktreeCreate")
    project, env, hook_log, settings = make_project(tmp_path, api, events=events)
    # As an older Hive Lab that stopped without cleaning up left it: our client on
    # WorktreeCreate. The install must drop it, not just stop adding it.
    from hive_lab.core.installers import COMPILED_NAME, hook_command

    ours = hook_command("claude", script=hive.data_dir / "bin" / COMPILED_NAME)
    settings["hooks"]["WorktreeCreate"] = [{"hooks": [{"type": "command", "command": ours}]}]
    _cli.write_project_settings(project, settings)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=project, check=True)
    status, body = hive.request("POST", "sessions", {
        "name": name, "agent": "claude", "cwd": str(project), "env": env, "worktree": False,
        "command": ["claude", "--worktree", "wt1"]})
    assert status == 201, body
    try:
        merged = json.loads((project / ".claude" / "settings.local.json").read_text())
        assert "WorktreeCreate" not in merged["hooks"]
        wait(lambda: rest_state(hive, name)["name"] in ("idle", "exited"), STARTUP, "start")
        state = rest_state(hive, name)
        assert state["name"] == "idle", (state, rest_screen(hive, name))
        worktree = project / ".claude" / "worktrees" / "wt1"
        start = wait(stored(hive, name, "SessionStart"), STEP, "SessionStart stored")
        assert start["payload"]["cwd"] == str(worktree)
        listed = subprocess.run(["git", "worktree", "list"], cwd=project, capture_output=True,
                                text=True).stdout
        assert str(worktree) in listed
    finally:
        hive.request("DELETE", f"sessions/{name}")


# A stand-in for the CLI on a loaded machine: it shows Claude Code 2.1.197's trust screen
# (exact text), reads its answer only 3 s later, then shows the API-key screen, whose
# default is "2. No". Every key it reads is logged.
SLOW_FIRST_RUN = r"""
import os, sys, time, tty
log = sys.argv[1]
tty.setraw(0)

def show(text):
    os.write(1, b"\x1b[2J\x1b[H" + text.replace("\n", "\r\n").encode())

def key(screen):
    k = os.read(0, 1)
    with open(log, "a") as f:
        f.write(f"{screen} {k!r}\n")

show("Accessing workspace:\n\n Quick safety check: Is this a project you created or one you trust?\n\n"
     " \u276f 1. Yes, I trust this folder\n   2. No, exit\n")
time.sleep(3)
key("trust")
show(" Detected a custom API key in your environment\n\n Do you want to use this API key?\n\n"
     "   1. Yes\n \u276f 2. No (recommended)\n")
key("api-key")
show("ready\n")
time.sleep(600)
"""


def test_first_run_screen_answered_once_while_the_agent_is_slow(tmp_path: Path) -> None:
    """No real CLI needed: the ``claude`` profile (its real cues) runs a slow stand-in.

    Each start-up screen must get its keys exactly once, even while the agent has not yet
    redrawn: pressing Enter again would land on the next screen (here: refuse the API key).
    Every answer is on the event stream, so a user can see what Hive Lab pressed for them.
    """
    script = tmp_path / "slow_first_run.py"
    script.write_text(SLOW_FIRST_RUN)
    keys_log = tmp_path / "keys.log"
    srv = HiveServer(tmp_path / "hive", extra_config={"profiles": {"claude": {
        "command": [sys.executable, str(script), str(keys_log)]}}})
    srv.start()
    try:
        project = srv.root / "project"
        project.mkdir()
        status, body = srv.request("POST", "sessions", {"name": "slowpoke", "agent": "claude",
                                                        "cwd": str(project)})
        assert status == 201, body
        wait(lambda: "ready" in rest_screen(srv, "slowpoke"), 30, "the stand-in to get past both")
        time.sleep(1.0)  # any extra key would be read by now
        assert keys_log.read_text().splitlines() == ["trust b'\\r'", "api-key b'1'"]
        answered = [e for e in rest_events(srv, "slowpoke", agent_only=False)
                    if e["event"] == "ScreenAnswered"]
        assert [(e["agent"], e["payload"]["keys"]) for e in answered] == [("hive", ["Enter"]),
                                                                          ("hive", ["1"])]
        assert "trust" in answered[0]["payload"]["cue"] and "API key" in answered[1]["payload"]["cue"]
    finally:
        srv.stop()
        srv.kill_tmux()
