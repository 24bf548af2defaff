"""Hook events end to end: the real hook client, a real Jupyter server, real restarts.

The "hooked" profile (see conftest) runs `cat` with Claude-style hooks installed, so the
payloads come from ../shared/samples (real Claude Code 2.1.197 output) replayed through the
very command line Claude Code would run.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from hive_lab import hook
from support import SAMPLES, HiveServer, fire_hook, hook_events, spawn, state_of, wait_for

SAMPLE_HOOKS = SAMPLES / "claude-code-2.1.197-hooks.jsonl"


def sample_lines() -> list[bytes]:
    return [line for line in SAMPLE_HOOKS.read_bytes().splitlines() if line.strip()]


def transitions(server: HiveServer, session: str) -> list[tuple[Any, ...]]:
    rows = server.get(f"transitions?session={session}")["transitions"]
    return [(t["name"], t["reason"], t["tool"]) for t in rows]


def test_hooks_installed_in_project_settings_and_removed(server: HiveServer, workdir: Path) -> None:
    settings = workdir / ".claude" / "settings.local.json"
    settings.parent.mkdir()
    mine = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo mine"}]}]},
            "permissions": {"allow": ["Bash(ls)"]}}
    settings.write_text(json.dumps(mine))
    spawn(server, "installer", None, cwd=workdir, agent="hooked")
    data = json.loads(settings.read_text())
    assert data["permissions"] == mine["permissions"]
    stop_cmds = [h["command"] for g in data["hooks"]["Stop"] for h in g["hooks"]]
    assert "echo mine" in stop_cmds and any("/bin/hive_lab_hook" in c for c in stop_cmds)
    for event in ("SessionStart", "PreToolUse", "PermissionRequest", "Notification", "SessionEnd"):
        assert any("/bin/hive_lab_hook" in h["command"] for g in data["hooks"][event]
                   for h in g["hooks"]), event
    status, _ = server.request("DELETE", "sessions/installer")
    assert status == 200
    assert json.loads(settings.read_text()) == mine


def test_sample_replay_gives_events_in_order_and_states(server: HiveServer, workdir: Path) -> None:
    spawn(server, "replay", None, cwd=workdir, agent="hooked")
    lines = sample_lines()
    for line in lines:
        result = fire_hook(server, "replay", line)
        assert result.returncode == 0 and result.stdout == b"", result
    events = hook_events(server, "replay")
    assert [e["event"] for e in events] == [json.loads(l)["hook_event_name"] for l in lines]
    assert [e["payload"] for e in events] == [json.loads(l) for l in lines]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    write = next(e for e in events if e["event"] == "PreToolUse" and e["tool"] == "Write")
    assert write["tool_use_id"] and write["summary"].startswith("Write:")
    assert transitions(server, "replay") == [
        ("starting", None, None),
        ("idle", None, None),                 # SessionStart: ready for a prompt
        ("working", None, None),              # UserPromptSubmit
        ("waiting", "permission", "Write"),   # PermissionRequest (+ Notification)
        ("working", None, None),              # the user answered: UserPromptSubmit
        ("idle", None, None),                 # Stop
        ("exited", "prompt_input_exit", None),  # SessionEnd
    ]
    detail = server.get("sessions/replay")
    assert detail["state"]["source"] == "hook:SessionEnd"
    assert detail["agent_session_id"] == "ff4417c6-5010-4c34-b485-e16fb85e8db2"
    assert detail["transcript_path"].endswith("ff4417c6-5010-4c34-b485-e16fb85e8db2.jsonl")
    # state changes are on the same stream as the hooks
    changes = [e for e in server.get("events?session=replay&event=StateChanged")["events"]]
    assert [c["payload"]["state"]["name"] for c in changes][-1] == "exited"


def test_idle_prompt_notification_is_idle_not_waiting(server: HiveServer, workdir: Path) -> None:
    """B6: an agent that finished its turn is idle, even after Claude Code's 60 s idle_prompt
    notification; it is not listed as waiting beside real permission prompts."""
    spawn(server, "idler", None, cwd=workdir, agent="hooked")
    sid = {"session_id": "idle-sid-1", "cwd": str(workdir)}
    for payload in ({"hook_event_name": "SessionStart", "source": "startup", **sid},
                    {"hook_event_name": "UserPromptSubmit", "prompt": "hi", **sid},
                    {"hook_event_name": "Stop", "stop_hook_active": False, **sid},
                    {"hook_event_name": "Notification", "notification_type": "idle_prompt",
                     "message": "Claude is waiting for your input", **sid}):
        assert fire_hook(server, "idler", payload).returncode == 0
    wait_for(lambda: len(hook_events(server, "idler")) == 4, what="four hooks stored")
    state = server.get("sessions/idler")["state"]
    assert state["name"] == "idle", state
    assert [t[0] for t in transitions(server, "idler")] == ["starting", "idle", "working", "idle"]
    # A real permission dialog is still waiting, and a later idle notice does not hide it.
    for payload in ({"hook_event_name": "PreToolUse", "tool_name": "Write", **sid},
                    {"hook_event_name": "PermissionRequest", "tool_name": "Write", **sid},
                    {"hook_event_name": "Notification", "notification_type": "idle_prompt",
                     "message": "Claude is waiting for your input", **sid}):
        assert fire_hook(server, "idler", payload).returncode == 0
    state = server.get("sessions/idler")["state"]
    assert (state["name"], state.get("reason"), state.get("tool")) == ("waiting", "permission", "Write")
    server.request("DELETE", "sessions/idler")


def test_unknown_event_names_are_stored(server: HiveServer, workdir: Path) -> None:
    spawn(server, "novel", None, cwd=workdir, agent="hooked")
    result = fire_hook(server, "novel", {"hook_event_name": "BrandNewEvent2027", "x": 1})
    assert result.returncode == 0
    assert [e["event"] for e in hook_events(server, "novel")] == ["BrandNewEvent2027"]


def post_hook(server: HiveServer, session: str, body: bytes, secret: str | None = None,
              key: str = "k" * 32) -> tuple[int, Any]:
    headers = {"X-Hive-Session": session, "X-Hive-Key": key, "X-Hive-Fired": str(time.time()),
               "X-Hive-Agent": "claude"}
    if secret is not None:
        headers["X-Hive-Secret"] = secret
    return server.request("POST", "hooks", raw=body, token=None, headers=headers)


def test_bad_hook_input_is_refused_and_changes_nothing(server: HiveServer, workdir: Path) -> None:
    spawn(server, "guard", None, cwd=workdir, agent="hooked")
    spawn(server, "other", None, cwd=workdir, agent="hooked")
    secret = (server.data_dir / "sessions" / "guard" / "secret").read_text()
    other_secret = (server.data_dir / "sessions" / "other" / "secret").read_text()
    count = len(server.get("events?limit=10000")["events"])
    good = json.dumps({"hook_event_name": "Stop", "session_id": "s"}).encode()
    cases = [
        (b'{"hook_event_name": "Stop", "sess', secret, 400),       # truncated JSON
        (b"{" + b" " * (2 * 1024 * 1024) + b"}", secret, 413),      # 2 MiB
        (good, "wrong-secret", 403),
        (good, other_secret, 403),                                   # another session's secret
        (good, None, 403),
        (b"[1, 2, 3]", secret, 400),                                 # not an object
        (b'"just a string"', secret, 400),
        (b'{"hook_event_name": "Stop\xff\xfe"}', secret, 400),       # invalid UTF-8
    ]
    for body, sec, status in cases:
        got, reply = post_hook(server, "guard", body, sec)
        assert got == status, (body[:40], got, reply)
        assert set(reply) >= {"error", "detail"} and "Traceback" not in json.dumps(reply)
    got, reply = post_hook(server, "nobody", good, secret)
    assert got == 403
    got, reply = post_hook(server, "guard", good, secret, key="bad key!")
    assert got == 400
    assert len(server.get("events?limit=10000")["events"]) == count
    assert server.get("status")["version"]
    got, reply = post_hook(server, "guard", good, secret)          # and the good one works
    assert got == 200 and reply["id"] > 0 and reply["duplicate"] is False
    got, again = post_hook(server, "guard", good, secret)          # same key: stored once
    assert got == 200 and again == {**reply, "duplicate": True}


def _fire_series(server: HiveServer, session: str, count: int, errors: list[str],
                 pause: float = 0.0) -> None:
    for seq in range(count):
        result = fire_hook(server, session, {"hook_event_name": "PostToolUse", "tool_name": "Bash",
                                             "session_id": f"agent-{session}", "seq": seq})
        if result.returncode != 0:
            errors.append(f"{session}#{seq}: exit {result.returncode} {result.stderr!r}")
        if pause:
            time.sleep(pause)


def _seqs(server: HiveServer, session: str) -> list[int]:
    return [e["payload"]["seq"] for e in hook_events(server, session)]


@pytest.mark.slow
def test_server_killed_while_agents_fire_hooks(tmp_path: Path) -> None:
    srv = HiveServer(tmp_path).start()
    try:
        names = [f"busy{i}" for i in range(5)]
        for name in names:
            spawn(srv, name, None, cwd=srv.root, agent="hooked")
        errors: list[str] = []
        threads = [threading.Thread(target=_fire_series, args=(srv, n, 60, errors, 0.02))
                   for n in names]
        for t in threads:
            t.start()
        wait_for(lambda: sum(len(_seqs(srv, n)) for n in names) >= 60, what="first events")
        srv.stop(signal.SIGKILL)  # no clean shutdown: in-flight requests die mid-way
        time.sleep(1.0)           # hooks fire into the void and spool meanwhile
        srv.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors[:5]
        for name in names:
            wait_for(lambda n=name: len(_seqs(srv, n)) >= 60, timeout=30,
                     what=f"all events of {name} after the restart")
            seqs = _seqs(srv, name)
            assert Counter(seqs) == Counter(range(60)), name   # each exactly once
        assert not list((srv.data_dir / "spool").glob("*.jsonl")) or \
            all(p.stat().st_size == 0 for p in (srv.data_dir / "spool").glob("*.jsonl"))
    finally:
        srv.stop()
        srv.kill_tmux()


@pytest.mark.slow
def test_twenty_sessions_times_two_hundred_hooks(server: HiveServer) -> None:
    names = [f"load{i:02d}" for i in range(20)]
    for name in names:
        spawn(server, name, None, cwd=server.root, agent="hooked")
    errors: list[str] = []
    threads = [threading.Thread(target=_fire_series, args=(server, n, 200, errors)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:5]
    total = 0
    for name in names:
        events = hook_events(server, name)
        seqs = [e["payload"]["seq"] for e in events]
        assert seqs == list(range(200)), name          # none lost, none twice, order kept
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        total += len(events)
    assert total == 4000
    for name in names:
        server.request("DELETE", f"sessions/{name}")


async def _read_stream(server: HiveServer, after: int, stop_after: int | None,
                       query: str = "") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    url = server.url.replace("http", "ws") + f"hive_lab/api/events/stream?after={after}{query}"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {server.token}"}))
    events: list[dict[str, Any]] = []
    control: list[dict[str, Any]] = []
    try:
        while stop_after is None or len(events) < stop_after:
            try:
                message = await asyncio.wait_for(conn.read_message(), timeout=2)
            except asyncio.TimeoutError:
                break  # quiet: nothing more to read right now
            if message is None:
                break
            data = json.loads(message)
            (control if "type" in data else events).append(data)
            if data.get("type") in ("live", "resync") and stop_after is None:
                break
    finally:
        conn.close()
    return events, control


def test_websocket_reconnect_misses_nothing(server: HiveServer, workdir: Path) -> None:
    spawn(server, "streamer", None, cwd=workdir, agent="hooked")
    start = server.get("status")["last_event_id"]
    errors: list[str] = []
    firing = threading.Thread(target=_fire_series, args=(server, "streamer", 80, errors, 0.01))
    firing.start()
    received: list[dict[str, Any]] = []
    last = start
    while firing.is_alive() or len(received) < 3:
        batch, _ = asyncio.run(_read_stream(server, last, stop_after=7))  # disconnect mid-stream
        received += batch
        last = batch[-1]["id"] if batch else last
    firing.join()
    tail, control = asyncio.run(_read_stream(server, last, stop_after=None))
    received += tail
    assert control[0]["type"] == "hello" and control[-1]["type"] == "live"
    ids = [e["id"] for e in received]
    assert len(ids) == len(set(ids)), "duplicate events across reconnects"
    stored = [e["id"] for e in server.get(f"events?after={start}&limit=10000")["events"]]
    assert ids == stored, "gap or reordering across reconnects"
    assert sorted(e["payload"]["seq"] for e in received
                  if e["session"] == "streamer" and e["agent"] != "hive") == list(range(80))


def test_websocket_live_events_and_lagging_client_resync(server: HiveServer, workdir: Path) -> None:
    spawn(server, "lagger", None, cwd=workdir, agent="hooked")
    start = server.get("status")["last_event_id"]

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        url = (server.url.replace("http", "ws")
               + f"hive_lab/api/events/stream?after={start}&queue=2")
        conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {server.token}"}))
        assert json.loads(await conn.read_message())["type"] == "hello"
        assert json.loads(await conn.read_message())["type"] == "live"
        # A burst: spooled events are drained in one group commit and published at once.
        from hive_lab import hook

        spool_dir = server.data_dir / "spool"
        spool_dir.mkdir(exist_ok=True)
        lines = b"".join(hook.spool_line("lagger", None, "claude", f"{i:032x}", time.time(),
                                         json.dumps({"hook_event_name": "PostToolUse",
                                                     "seq": i}).encode()) for i in range(12))
        tmp = spool_dir / "burst.tmp"
        tmp.write_bytes(lines)
        tmp.rename(spool_dir / hook.spool_file_name("lagger", None))
        got: list[dict[str, Any]] = []
        while True:
            message = await asyncio.wait_for(conn.read_message(), timeout=10)
            if message is None:
                raise AssertionError("closed without resync")
            data = json.loads(message)
            if data.get("type") == "resync":
                return got, data
            if "type" not in data:
                got.append(data)

    got, resync = asyncio.run(scenario())
    if resync is None:
        pytest.fail("no resync")
    assert resync["after"] == (got[-1]["id"] if got else start)
    rest, _ = asyncio.run(_read_stream(server, resync["after"], stop_after=None))
    seqs = sorted(e["payload"]["seq"] for e in got + rest if e["agent"] != "hive" and e["session"] == "lagger")
    assert seqs == list(range(12))


def test_stream_filters_by_session(server: HiveServer, workdir: Path) -> None:
    spawn(server, "filt-a", None, cwd=workdir, agent="hooked")
    spawn(server, "filt-b", None, cwd=workdir, agent="hooked")
    start = server.get("status")["last_event_id"]
    fire_hook(server, "filt-a", {"hook_event_name": "Stop"})
    fire_hook(server, "filt-b", {"hook_event_name": "Stop"})
    events, _ = asyncio.run(_read_stream(server, start, stop_after=None, query="&session=filt-b"))
    assert events and {e["session"] for e in events} == {"filt-b"}


# -- stale hook evidence ----------------------------------------------------------------------
def _stale_payload(event: str, **extra: str) -> dict[str, str]:
    return {"hook_event_name": event, "session_id": "s-stale", "cwd": "/tmp", **extra}


def _spool(server: HiveServer, session: str, payload: dict[str, str], fired: float) -> str:
    """Spool an event exactly as the hook client does when the server does not answer."""
    key = secrets.token_hex(16)
    line = hook.spool_line(session, None, "hooked", key, fired, json.dumps(payload).encode())
    assert hook.spool(str(server.data_dir), hook.spool_file_name(session, None), line)
    return key


def test_a_prompt_submit_drained_after_the_turns_stop_leaves_the_session_idle(
        server: HiveServer, workdir: Path) -> None:
    name = "stale-ups"
    spawn(server, name, ["cat"], cwd=workdir, agent="hooked")
    assert fire_hook(server, name, _stale_payload("SessionStart", source="startup")).returncode == 0
    wait_for(lambda: state_of(server, name)["name"] == "idle", what="idle after SessionStart")

    submitted = time.time()  # UserPromptSubmit fires now, but its hook client cannot deliver
    for event in ("PreToolUse", "Stop"):
        extra = {"tool_name": "Bash"} if event == "PreToolUse" else {}
        assert fire_hook(server, name, _stale_payload(event, **extra)).returncode == 0
    wait_for(lambda: state_of(server, name)["name"] == "idle", what="idle after Stop")
    _spool(server, name, _stale_payload("UserPromptSubmit", prompt="hi"), submitted)

    stored = wait_for(lambda: server.get(
        f"events?session={name}&event=UserPromptSubmit")["events"], what="the drained event")
    assert len(stored) == 1, stored  # stored all the same: the record stays complete
    state = state_of(server, name)
    assert state["name"] == "idle" and state["source"] == "hook:Stop", state
    names = [t["name"] for t in server.get(f"transitions?session={name}")["transitions"]]
    assert names[-1] == "idle", names

    # A hook fired after the state in force still counts: the next turn is seen.
    assert fire_hook(server, name, _stale_payload("UserPromptSubmit", prompt="next")).returncode == 0
    wait_for(lambda: state_of(server, name)["name"] == "working", what="the next turn")
    status, _ = server.request("DELETE", f"sessions/{name}")
    assert status == 200
