"""Codex CLI 0.169.0's profile, hooks and answers, as read off the real CLI.

Screens and payloads are the ones tests/test_codex_e2e.py met (tests/codex_support/NOTES.md).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from hive_lab.core import installers
from hive_lab.core.agents import BUILTIN, CODEX_CUES
from hive_lab.core.decisions import Verdict, hook_answer
from hive_lab.core.status import STARTING, HookMemory, State, decide_from_hook, decide_from_screen

# The TUI's first frame ("loading"), drawn just before the folder-trust screen replaces it.
FLASH = """  >_ OpenAI Codex (v0.169.0)
     loading

› Ask Codex to do anything

  ? for shortcuts
"""
READY = """  >_ OpenAI Codex (v0.169.0)
     /repo

› Ask Codex to do anything

  GPT-5.5 default · /repo
  ← for agents · ? for shortcuts                                      ⚠ 1 warning · f2 to view
"""
TRUST = """  Folder access
  /repo

  Trust this folder? Codex can read, edit, and run files here, subject to your permission
  settings.

› 1. Trust and continue
  2. Back to Agent Command Center

  enter continue · esc back
"""
APPROVAL = """› SCENARIO:ask echo hi > asked.txt

• Running echo hi > asked.txt

  Would you like to run the following command?

  Environment: local

  Reason: Scripted test: may I run echo hi > asked.txt?

  $ echo hi > asked.txt

› 1. Yes, proceed (y)
  2. Yes, and don't ask again for commands that start with `echo hi > asked.txt` (p)
  3. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel
"""
EDIT = """• Added /var/tmp/cx-outside.txt (+1 -0)
    1 +hi

  Would you like to make the following edits?

  Description: Apply proposed file edits

  Destination: /var/tmp/cx-outside.txt

› 1. Yes, proceed (y)
  2. Yes, and don't ask again for these files (a)
  3. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel
"""
# A task prompt pasted, its Enter lost (Codex 0.169.0, tmux 120 columns): no placeholder, no
# "← for agents" footer; the status line stays.
DRAFT = """  >_ OpenAI Codex (v0.169.0)
     /repo

› Note it.
  SCENARIO:steps shell echo x > docs/y.md

  --- Hive Lab task cx-ask (branch hive/cx-ask) ---

  You may change only these files (paths relative to the repository root):
  - any file under src/ (src/**)
  Writes anywhere else are refused.

  When you are finished: commit your work on this branch and stop (end your turn).

  GPT-5.5 default · /repo
                                                                                               ⚠ 1 warning · f2 to view
"""
# The turn that Enter then started, ended: the prompt is history, the composer empty.
AFTER = r"""  >_ OpenAI Codex (v0.169.0)
     /repo

› Note it.
  SCENARIO:steps shell echo x > docs/y.md

  --- Hive Lab task cx-ask (branch hive/cx-ask) ---

  You may change only these files (paths relative to the repository root):

  • any file under src/ (src/**)
    Writes anywhere else are refused.

  When you are finished: commit your work on this branch and stop (end your turn).

• Exited (status 1) echo x > docs/y.md
  └ /bin/bash: line 1: docs/y.md: No such file or directory

• All 1 steps done. Last result: ["Chunk ID: c77104\nWall time: 0.0000 seconds\nProcess exited with code 1\nOriginal
  token count: 14\nOutput:\n/bin/bash: line 1: docs/y.md: No such file or directory\n"]

  Worked for <1s • 06:05

› Ask Codex to do anything

  GPT-5.5 default · /repo
  ← for agents · ? for shortcuts                                                               ⚠ 1 warning · f2 to view
"""
# A one-line prompt typed under that history, not sent.
DRAFT1 = r"""  >_ OpenAI Codex (v0.169.0)
     /repo

› Note it.
  SCENARIO:steps shell echo x > docs/y.md

  --- Hive Lab task cx-ask (branch hive/cx-ask) ---

  You may change only these files (paths relative to the repository root):

  • any file under src/ (src/**)
    Writes anywhere else are refused.

  When you are finished: commit your work on this branch and stop (end your turn).

• Exited (status 1) echo x > docs/y.md
  └ /bin/bash: line 1: docs/y.md: No such file or directory

• All 1 steps done. Last result: ["Chunk ID: c77104\nWall time: 0.0000 seconds\nProcess exited with code 1\nOriginal
  token count: 14\nOutput:\n/bin/bash: line 1: docs/y.md: No such file or directory\n"]

  Worked for <1s • 06:05

› SCENARIO:text hello there

  GPT-5.5 default · /repo
                                                                                               ⚠ 1 warning · f2 to view
"""
WORKING = """• Working (0s • esc to interrupt)

› Ask Codex to do anything
"""


def test_codex_hooks_are_toml_overrides_for_every_event_with_the_trust_flag(tmp_path: Path) -> None:
    script = tmp_path / "odd dir \"q\" é 🐝\\ \t\x7f" / installers.BINARY_NAME
    args = installers.codex_args(script=script)
    assert args[0] == "--dangerously-bypass-hook-trust"
    pairs = args[1:]
    assert pairs[::2] == ["-c"] * len(installers.CODEX_EVENTS)
    merged: dict = {}
    for value in pairs[1::2]:
        key, _, _ = value.partition("=")
        merged.update(tomllib.loads(value)["hooks"])  # what Codex parses: TOML
        assert key.startswith("hooks.")
    assert tuple(merged) == installers.CODEX_EVENTS
    want = installers.hook_command("codex", script=script)
    for event, groups in merged.items():
        timeout = 3 if event in ("SessionEnd", "Interrupt") else 30  # Codex clamps to 3 s
        assert groups == [{"hooks": [{"type": "command", "command": want, "timeout": timeout}]}], event
    assert "notify" not in " ".join(args)  # turn ends come once, from Stop
    assert "PreModelRequest" not in installers.CODEX_EVENTS  # one hook run per model call


def test_codex_understands_only_a_deny_in_pre_tool_use() -> None:
    deny = hook_answer("codex", "PreToolUse", Verdict("deny", "src/** only", "scope"))
    assert (deny.exit_code, deny.output) == (0, {"hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "deny",
        "permissionDecisionReason": "src/** only"}})
    # 0.169.0: "unsupported permissionDecision:allow" / ":ask" make a failed hook (and the
    # tool runs): an allow is silence, an ask a deny saying that a person decides.
    allow = hook_answer("codex", "PreToolUse", Verdict("allow", "inside", "scope"))
    assert (allow.output, allow.exit_code, allow.stderr) == (None, 0, "")
    ask = hook_answer("codex", "PreToolUse", Verdict("ask", "echo > docs/y.md writes docs/",
                                                     "scope")).output["hookSpecificOutput"]
    assert ask["permissionDecision"] == "deny"
    assert ask["permissionDecisionReason"].startswith("echo > docs/y.md writes docs/ ")
    assert "ask the user" in ask["permissionDecisionReason"]
    assert hook_answer("codex", "UserPromptSubmit", Verdict("deny", "budget", "b")).output == {
        "decision": "block", "reason": "budget"}


def test_codex_cues_match_its_real_screens() -> None:
    assert CODEX_CUES.find("permission", APPROVAL) and CODEX_CUES.find("permission", EDIT)
    assert not CODEX_CUES.find("permission", READY) and not CODEX_CUES.find("permission", WORKING)
    assert CODEX_CUES.find("working", WORKING) and not CODEX_CUES.find("working", READY)
    assert CODEX_CUES.find("idle", READY)
    assert [keys for pattern, keys in CODEX_CUES.first_run
            if re.search(pattern, TRUST)] == [("Enter",)]
    answers = BUILTIN["codex"].answers
    assert answers["approve"] == ("y",) and answers["deny"] == ("Escape",)


def test_codex_leaves_starting_by_its_ready_screen_not_by_the_loading_flash() -> None:
    starting = State(STARTING, "spawn", 0.0)
    mem = HookMemory()
    assert decide_from_screen(FLASH, CODEX_CUES, True, starting, mem, 0.0, 100.0) is None
    assert decide_from_screen(TRUST, CODEX_CUES, True, starting, mem, 0.0, 100.0) is None
    ready = decide_from_screen(READY, CODEX_CUES, True, starting, mem, 0.0, 100.0)
    assert ready is not None and (ready.name, ready.source) == ("idle", "screen")
    # Claude Code's profile has no ready cue: it still waits for its SessionStart hook.
    claude = BUILTIN["claude"].cues
    assert decide_from_screen("─" * 30 + "\n❯ \n" + "─" * 30, claude, True, starting, mem,
                              0.0, 100.0) is None


def test_an_interrupted_codex_turn_is_idle() -> None:
    """Escape at Codex's approval question interrupts the turn: Interrupt, and no Stop."""
    waiting = State("waiting", "hook:PermissionRequest", 0.0, reason="permission", tool="Bash")
    state = decide_from_hook("Interrupt", {"hook_event_name": "Interrupt"}, waiting,
                             HookMemory(), 1.0)
    assert state is not None and (state.name, state.source) == ("idle", "hook:Interrupt")


def test_a_codex_prompt_typed_and_not_sent_is_its_input_box_and_says_ready() -> None:
    """Seen: with a prompt in the composer Codex draws neither the placeholder nor the footer,
    so the typed-prompt check found "no input box" and never pressed Enter again, and a session
    whose first prompt lost its Enter stayed `starting` (its hooks fire only once a prompt is
    sent): the task waited forever (tests/codex_support/NOTES.md, "A lost Enter")."""
    for draft in (DRAFT, DRAFT1):
        assert CODEX_CUES.find("idle", draft) and CODEX_CUES.find("ready", draft), draft
        assert not CODEX_CUES.find("permission", draft) and not CODEX_CUES.find("working", draft)
    starting = State(STARTING, "spawn", 0.0)
    ready = decide_from_screen(DRAFT, CODEX_CUES, True, starting, HookMemory(), 0.0, 100.0)
    assert ready is not None and (ready.name, ready.source) == ("idle", "screen")
    # Not a draft: an empty composer under history, the loading flash, menus, a question.
    from hive_lab.core.agents import CODEX_DRAFT
    for screen in (AFTER, READY, FLASH, TRUST, APPROVAL, EDIT, WORKING):
        assert not re.search(CODEX_DRAFT, screen, re.MULTILINE), screen
    assert not CODEX_CUES.find("ready", FLASH) and not CODEX_CUES.find("ready", TRUST)
