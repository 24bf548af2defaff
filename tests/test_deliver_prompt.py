"""A typed prompt is submitted even when the agent swallows the Enter after the paste.

Seen with the real Claude Code 2.1.197 on the loaded 2-core machine (tests/test_tasks_claude.py):
a task's long first prompt was pasted, the Enter 0.15 s later was lost, the prompt sat in the
input box (``[Pasted text #1 +10 lines]``) and the task never started. No real CLI needed here:
a raw-mode stand-in with Claude-style hooks draws Claude's input box before it is ready (as
the CLI does: the box shows ~0.15 s before SessionStart, far more under load), loses the
Enter of a prompt typed then, and becomes ready (SessionStart) only after that.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support import HiveServer, wait_for

STANDIN = r'''
import json, os, subprocess, sys, tty
log = sys.argv[1]
tty.setraw(0)

def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")

def hook(event, **fields):
    client = os.path.join(os.environ["HIVE_LAB_DIR"], "bin", "hive_lab_hook.pyc")
    payload = {"hook_event_name": event, "session_id": "standin", "cwd": os.getcwd(), **fields}
    subprocess.run([sys.executable, "-S", "-E", "-s", client, "--agent", "claude"],
                   input=json.dumps(payload).encode(), capture_output=True, timeout=30)

def box(text):
    rule = "\u2500" * 40
    os.write(1, ("\x1b[2J\x1b[H" + rule + "\r\n\u276f " + text + "\r\n" + rule + "\r\n").encode())

box("")
typed, enters = "", 0
while True:
    data = os.read(0, 4096)
    if not data:
        break
    for ch in data.decode("utf-8", "replace"):
        if ch != "\r":
            typed += ch
            continue
        enters += 1
        if enters == 1:
            note(f"dropped enter with {typed!r} in the box")
            if sys.argv[2:] == ["reset"]:  # the box is set up afresh: the typed text is gone
                typed = ""
                box("")
            hook("SessionStart", source="startup")  # ready only now
            continue
        if typed:
            note(f"submitted {typed!r}")
            hook("UserPromptSubmit", prompt=typed)
            typed = ""
            box("done")
            hook("Stop", stop_hook_active=False)
        else:
            note("enter on an empty box")
        box(typed)
'''


def _prompt_the_standin(tmp_path: Path, name: str, *mode: str) -> tuple[list[str], list[str]]:
    """Start a session of :data:`STANDIN` (``mode``: its extra argv) with the prompt "do the
    thing"; once its turn is over, the prompts its hooks reported taken and its key log."""
    script = tmp_path / "standin.py"
    script.write_text(STANDIN)
    log = tmp_path / "keys.log"
    srv = HiveServer(tmp_path / "hive", extra_config={"profiles": {"standin": {
        "command": [sys.executable, str(script), str(log), *mode], "hooks": "claude",
        "cues": {"idle": ["^─{20,}\\s*\\n❯.*\\n─{20,}"]}}}})
    srv.start()
    try:
        project = srv.root / "project"
        project.mkdir()
        status, body = srv.request("POST", "sessions", {"name": name, "agent": "standin",
                                                        "cwd": str(project),
                                                        "prompt": "do the thing"})
        assert status == 201, body
        submitted = wait_for(lambda: [e for e in srv.get(f"events?session={name}")["events"]
                                      if e["event"] == "UserPromptSubmit"],
                             timeout=60, what="the prompt submitted")
        wait_for(lambda: srv.get(f"sessions/{name}")["state"]["name"] == "idle", timeout=30,
                 what="idle after the turn")
        return [e["payload"]["prompt"] for e in submitted], log.read_text().splitlines()
    finally:
        srv.stop()
        srv.kill_tmux()


def test_a_prompt_whose_enter_was_swallowed_is_submitted(tmp_path: Path) -> None:
    prompts, lines = _prompt_the_standin(tmp_path, "swallow")
    assert prompts == ["do the thing"]
    assert lines[:2] == ["dropped enter with 'do the thing' in the box",
                         "submitted 'do the thing'"], lines
    assert all(line == "enter on an empty box" for line in lines[2:]), lines


def test_a_prompt_that_vanished_with_its_enter_is_typed_again_once(tmp_path: Path) -> None:
    """The agent resets its input box as it becomes ready, taking the typed prompt with it
    (Codex 0.169.0 in CI: the task waited forever at an empty composer). Pressing Enter on an
    empty box does nothing; the prompt is typed once more, and taken once."""
    prompts, lines = _prompt_the_standin(tmp_path, "vanish", "reset")
    assert prompts == ["do the thing"]
    assert lines[0] == "dropped enter with 'do the thing' in the box", lines
    assert [line for line in lines if line.startswith("submitted")] == \
        ["submitted 'do the thing'"], lines
    assert all(line == "enter on an empty box" for line in lines[1:]
               if not line.startswith("submitted")), lines


GEMINI_STANDIN = r'''
import json, os, subprocess, sys, tty
log = sys.argv[1]
tty.setraw(0)

def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")

def hook(event, **fields):
    client = os.path.join(os.environ["HIVE_LAB_DIR"], "bin", "hive_lab_hook.pyc")
    payload = {"hook_event_name": event, "session_id": "standin", "cwd": os.getcwd(), **fields}
    subprocess.run([sys.executable, "-S", "-E", "-s", client, "--agent", "gemini"],
                   input=json.dumps(payload).encode(), capture_output=True, timeout=30)

def box(typed):
    shown = f"[Pasted Text: {typed.count(chr(10)) + 1} lines]" if typed else "  Type your message or @path/to/file"
    if typed and sys.argv[2:] == ["full"]:  # the text itself, no placeholder, no "[Pasted Text]"
        shown = typed.replace("\n", "\r\n   ")
    os.write(1, ("\x1b[2J\x1b[H" + "\u2500" * 40 + "\r\n > " + shown + "\r\n").encode())

hook("SessionStart", source="startup")  # ready: and still the first Enter is lost
box("")
typed, enters = "", 0
while True:
    data = os.read(0, 4096)
    if not data:
        break
    for ch in data.decode("utf-8", "replace"):
        if ch != "\r":
            typed += ch
            continue
        enters += 1
        if enters == 1:
            note(f"dropped enter with {typed!r} in the box")
        elif typed:
            note(f"submitted {typed!r}")
            hook("BeforeAgent", prompt=typed)
            typed = ""
            hook("AfterAgent", prompt="", prompt_response="done", stop_hook_active=False)
        else:
            note("enter on an empty box")
        box(typed)
'''


@pytest.mark.parametrize("shown", ["pasted", "full"])
def test_a_gemini_prompt_left_in_the_box_is_submitted(tmp_path: Path, shown: str) -> None:
    """Gemini CLI 0.61.0 on a loaded machine: a task prompt typed after SessionStart sat in the
    box as ``> [Pasted Text: 12 lines]`` (tests/gemini_support/NOTES.md), or (in CI) as its
    text in full, neither one the idle cue; Enter sends it."""
    script = tmp_path / "standin.py"
    script.write_text(GEMINI_STANDIN)
    log = tmp_path / "keys.log"
    from hive_lab.core.agents import GEMINI_CUES
    srv = HiveServer(tmp_path / "hive", extra_config={"profiles": {"gstandin": {
        "command": [sys.executable, str(script), str(log), shown], "hooks": "gemini",
        "cues": {"idle": list(GEMINI_CUES.idle)}}}})
    srv.start()
    try:
        project = srv.root / "project"
        project.mkdir()
        status, body = srv.request("POST", "sessions", {"name": "gswallow", "agent": "gstandin",
                                                        "cwd": str(project),
                                                        "prompt": "line one\nline two"})
        assert status == 201, body
        submitted = wait_for(lambda: [e for e in srv.get("events?session=gswallow")["events"]
                                      if e["event"] == "BeforeAgent"],
                             timeout=30, what="the prompt submitted")
        assert [e["payload"]["prompt"] for e in submitted] == ["line one\nline two"]
        lines = log.read_text().splitlines()
        assert lines[:2] == ["dropped enter with 'line one\\nline two' in the box",
                             "submitted 'line one\\nline two'"], lines
    finally:
        srv.stop()
        srv.kill_tmux()


CODEX_STANDIN = r'''
import json, os, subprocess, sys, tty
log = sys.argv[1]
tty.setraw(0)

def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")

def hook(event, **fields):
    client = os.path.join(os.environ["HIVE_LAB_DIR"], "bin", "hive_lab_hook.pyc")
    payload = {"hook_event_name": event, "session_id": "standin", "cwd": os.getcwd(), **fields}
    subprocess.run([sys.executable, "-S", "-E", "-s", client, "--agent", "claude"],
                   input=json.dumps(payload).encode(), capture_output=True, timeout=30)

def screen(typed):
    # Codex CLI 0.169.0's composer: a draft hides the placeholder and the footer.
    lines = typed.split("\n")
    box = (["\u203a " + lines[0]] + ["  " + x for x in lines[1:]] if typed
           else ["\u203a Ask Codex to do anything"])
    footer = [] if typed else ["  \u2190 for agents \u00b7 ? for shortcuts"]
    text = ["  >_ OpenAI Codex (v0.169.0)", "", *box, "", "  GPT-5.5 default \u00b7 /repo", *footer]
    os.write(1, ("\x1b[2J\x1b[H" + "\r\n".join(text) + "\r\n").encode())

screen("")  # ready, and no hook yet: Codex fires SessionStart with the first prompt
typed, enters = "", 0
while True:
    data = os.read(0, 4096)
    if not data:
        break
    for ch in data.decode("utf-8", "replace"):
        if ch != "\r":
            typed += ch
            continue
        enters += 1
        if enters == 1:
            note(f"dropped enter with {typed!r} in the box")
        elif typed:
            note(f"submitted {typed!r}")
            hook("SessionStart", source="startup")
            hook("UserPromptSubmit", prompt=typed)
            typed = ""
            hook("Stop", stop_hook_active=False)
        else:
            note("enter on an empty box")
        screen(typed)
'''


def test_a_codex_prompt_left_in_its_composer_is_submitted(tmp_path: Path) -> None:
    """Codex CLI 0.169.0 fires no hook before a prompt is sent, and with a prompt in its
    composer it draws neither the placeholder nor the footer its cues knew: a task prompt
    whose Enter was lost stayed there, the session `starting`, the task running for good
    (tests/codex_support/NOTES.md, "A lost Enter"). The real cues, a stand-in screen."""
    script = tmp_path / "standin.py"
    script.write_text(CODEX_STANDIN)
    log = tmp_path / "keys.log"
    from hive_lab.core.agents import CODEX_CUES
    srv = HiveServer(tmp_path / "hive", extra_config={"profiles": {"cstandin": {
        "command": [sys.executable, str(script), str(log)], "hooks": "claude",
        "cues": {"idle": list(CODEX_CUES.idle), "ready": list(CODEX_CUES.ready)}}}})
    srv.start()
    try:
        project = srv.root / "project"
        project.mkdir()
        status, body = srv.request("POST", "sessions", {"name": "cswallow", "agent": "cstandin",
                                                        "cwd": str(project),
                                                        "prompt": "line one\nline two"})
        assert status == 201, body
        submitted = wait_for(lambda: [e for e in srv.get("events?session=cswallow")["events"]
                                      if e["event"] == "UserPromptSubmit"],
                             timeout=30, what="the prompt submitted")
        assert [e["payload"]["prompt"] for e in submitted] == ["line one\nline two"]
        wait_for(lambda: srv.get("sessions/cswallow")["state"]["name"] == "idle", timeout=30,
                 what="idle after the turn")
        lines = log.read_text().splitlines()
        assert lines[:2] == ["dropped enter with 'line one\\nline two' in the box",
                             "submitted 'line one\\nline two'"], lines
        assert all(line == "enter on an empty box" for line in lines[2:]), lines
    finally:
        srv.stop()
        srv.kill_tmux()
