"""Hooks for agents started outside Hive Lab (`hive-lab install-hooks`).

The hook command is read back from the settings file and run through `sh -c`, exactly as
Claude Code runs it.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support import HiveServer, hook_events


def installed_command(settings: Path, event: str) -> str:
    data = json.loads(settings.read_text())
    commands = [h["command"] for g in data["hooks"][event] for h in g["hooks"]
                if "hive_lab_hook" in h["command"]]
    assert len(commands) == 1
    return commands[0]


def run_as_claude(command: str, payload: dict, env_extra: dict[str, str] | None = None) -> int:
    env = {"PATH": os.environ["PATH"], **(env_extra or {})}
    return subprocess.run(["sh", "-c", command], input=json.dumps(payload).encode(), env=env,
                          capture_output=True, timeout=30).returncode


def test_install_hooks_cli_makes_external_sessions(server: HiveServer, workdir: Path) -> None:
    out = server.cli("install-hooks", str(workdir), "--agent", "claude")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    settings = Path(info["settings"])
    assert settings == workdir / ".claude" / "settings.local.json"
    command = installed_command(settings, "PreToolUse")
    assert f"--install {info['install']}" in command
    assert (server.data_dir / "installs" / f"{info['install']}.secret").stat().st_mode & 0o777 == 0o600

    sid = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"
    base = {"session_id": sid, "cwd": str(workdir), "transcript_path": "/nonexistent/x.jsonl"}
    # the data dir is found without HIVE_LAB_DIR: the command line carries --install only,
    # and the client falls back to the default Jupyter data dir, which the server env sets
    env = {"JUPYTER_DATA_DIR": str(server.base / "data")}
    assert run_as_claude(command, {**base, "hook_event_name": "SessionStart"}, env) == 0
    assert run_as_claude(command, {**base, "hook_event_name": "PreToolUse", "tool_name": "Bash",
                                   "tool_input": {"command": "ls"}}, env) == 0
    name = f"claude-{sid}"
    session = server.get(f"sessions/{name}")
    assert session["external"] is True and session["agent_session_id"] == sid
    assert session["state"]["name"] == "working"
    assert [e["event"] for e in hook_events(server, name)] == ["SessionStart", "PreToolUse"]

    # inside a managed session the hand-installed entry stands down (no double events)
    assert run_as_claude(command, {**base, "hook_event_name": "Stop"},
                         {**env, "HIVE_LAB_SESSION": "someone"}) == 0
    assert [e["event"] for e in hook_events(server, name)] == ["SessionStart", "PreToolUse"]

    removed = server.cli("install-hooks", str(workdir), "--agent", "claude", "--remove")
    assert removed.returncode == 0 and not settings.exists()


def test_install_hooks_bad_input(server: HiveServer, workdir: Path) -> None:
    for body in ({"dir": "relative/path", "agent": "claude"},
                 {"dir": str(workdir / "missing"), "agent": "claude"},
                 {"dir": str(workdir), "agent": "aider"},
                 {"dir": str(workdir), "agent": "claude", "remove": "yes"}):
        status, reply = server.request("POST", "installs", body)
        assert status == 400, (body, reply)
    assert not (workdir / ".claude").exists()
    (workdir / ".claude").mkdir()
    (workdir / ".claude" / "settings.local.json").write_text("{broken")
    status, reply = server.request("POST", "installs", {"dir": str(workdir), "agent": "claude"})
    assert status == 400 and "not valid JSON" in reply["detail"]
    assert (workdir / ".claude" / "settings.local.json").read_text() == "{broken"
    installs = server.data_dir / "installs"
    before = set(installs.iterdir()) if installs.exists() else set()
    server.request("POST", "installs", {"dir": str(workdir), "agent": "claude"})
    assert (set(installs.iterdir()) if installs.exists() else set()) == before  # no orphan secret
