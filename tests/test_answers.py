"""Approve / Deny (B2): keys are pressed only when the session waits for permission *and* its
dialog is on screen; otherwise 409 and nothing is typed.

A cheap stand-in for an agent: the ``asker`` profile has Claude-style hooks (its state comes
from the real hook client) and a permission cue ``Proceed? (y/n)`` that a small shell script
prints. The real Claude Code version of this is in test_claude_e2e.py.
"""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from support import HiveServer, fire_hook, spawn, state_of, wait_for
from hive_lab.client import HiveAPIError

ASKER = {"command": ["cat"], "hooks": "claude",
         "cues": {"permission": [r"Proceed\? \(y/n\)"]},
         "answers": {"approve": ["y", "Enter"], "deny": ["n", "Enter"]}}
ASK_SCRIPT = 'printf "Proceed? (y/n) "; read a; echo "answer:[$a]"; exec cat'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("hive-answers"),
                     extra_config={"profiles": {"asker": ASKER}}).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def workdir(server: HiveServer) -> Path:
    d = server.root / f"w-{secrets.token_hex(4)}"
    d.mkdir()
    return d


def screen(server: HiveServer, name: str) -> str:
    return server.get(f"sessions/{name}/screen")["text"]


def hooks(server: HiveServer, name: str, *events: dict[str, Any]) -> None:
    for payload in events:
        assert fire_hook(server, name, {"session_id": f"sid-{name}", **payload}).returncode == 0


def only_marker_typed(server: HiveServer, name: str) -> list[str]:
    """Type a marker into ``cat`` and return the screen's lines once its echo is back: any key
    pressed before would show up in front of it."""
    marker = f"M{secrets.token_hex(3)}"
    assert server.request("POST", f"sessions/{name}/input", {"text": marker})[0] == 200
    wait_for(lambda: screen(server, name).count(marker) == 2, what="marker echoed")
    return [line for line in screen(server, name).splitlines() if line.strip()]


def test_approve_refused_when_idle_and_nothing_typed(server: HiveServer, workdir: Path) -> None:
    spawn(server, "idle-one", None, cwd=workdir, agent="asker")
    hooks(server, "idle-one", {"hook_event_name": "SessionStart", "source": "startup"},
          {"hook_event_name": "UserPromptSubmit", "prompt": "x"},
          {"hook_event_name": "Stop"},
          {"hook_event_name": "Notification", "notification_type": "idle_prompt"})
    assert state_of(server, "idle-one")["name"] == "idle"
    for kind in ("approve", "deny"):
        status, body = server.request("POST", f"sessions/idle-one/{kind}", {})
        assert status == 409, body
        assert body["error"] == "conflict" and "not waiting for permission" in body["detail"]
        assert body["state"]["name"] == "idle"
    with pytest.raises(HiveAPIError) as info:  # the notebook client goes the same way
        server.client().approve("idle-one")
    assert info.value.status == 409
    lines = only_marker_typed(server, "idle-one")
    assert len(lines) == 2 and lines[0] == lines[1], lines  # no "y", no "1": only the marker
    server.request("DELETE", "sessions/idle-one")


def test_approve_refused_when_screen_shows_no_dialog(server: HiveServer, workdir: Path) -> None:
    """The hooks say "permission", but the dialog is gone (answered in the terminal)."""
    spawn(server, "stale", None, cwd=workdir, agent="asker")
    hooks(server, "stale", {"hook_event_name": "PreToolUse", "tool_name": "Write"},
          {"hook_event_name": "PermissionRequest", "tool_name": "Write"})
    state = state_of(server, "stale")
    assert (state["name"], state["reason"]) == ("waiting", "permission")
    status, body = server.request("POST", "sessions/stale/approve", {})
    assert status == 409 and "no permission dialog on screen" in body["detail"], body
    lines = only_marker_typed(server, "stale")
    assert len(lines) == 2 and lines[0] == lines[1], lines
    server.request("DELETE", "sessions/stale")


@pytest.mark.parametrize("kind,typed", [("approve", "y"), ("deny", "n")])
def test_answer_pressed_when_state_and_screen_agree(server: HiveServer, workdir: Path,
                                                    kind: str, typed: str) -> None:
    name = f"ask-{kind}"
    spawn(server, name, ["sh", "-c", ASK_SCRIPT], cwd=workdir, agent="asker")
    wait_for(lambda: "Proceed? (y/n)" in screen(server, name), what="the dialog")
    hooks(server, name, {"hook_event_name": "PreToolUse", "tool_name": "Bash"},
          {"hook_event_name": "PermissionRequest", "tool_name": "Bash"})
    answer = getattr(server.client(), kind)(name)
    assert answer == {"name": name, "answer": kind, "keys": [typed, "Enter"], "tool": "Bash"}
    wait_for(lambda: f"answer:[{typed}]" in screen(server, name), what=f"{kind} reached it")
    server.request("DELETE", f"sessions/{name}")


def test_answers_need_a_profile_with_keys(server: HiveServer, workdir: Path) -> None:
    spawn(server, "plain", ["cat"], cwd=workdir)  # the shell profile: no answers, no cue
    status, body = server.request("POST", "sessions/plain/approve", {})
    assert status == 400 and "no approve keys" in body["detail"], body
    assert server.request("POST", "sessions/nobody/deny", {})[0] == 404
    server.request("DELETE", "sessions/plain")
