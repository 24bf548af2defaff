"""The status machine on its own: hook, pane and screen evidence to states (no I/O)."""
from __future__ import annotations

from hive_lab.core.agents import CLAUDE_CUES
from hive_lab.core.status import IDLE, WAITING, WORKING, HookMemory, State, Tracker, \
    decide_from_hook

IDLE_PROMPT = {"hook_event_name": "Notification", "message": "Claude is waiting for your input",
               "notification_type": "idle_prompt", "session_id": "s1"}


def test_idle_prompt_is_idle_not_waiting() -> None:
    """B6: Claude Code's idle_prompt (60 s at its prompt) means its turn is over."""
    prev = State(IDLE, "hook:Stop", 100.0)
    state = decide_from_hook("Notification", IDLE_PROMPT, prev, HookMemory(), 160.0)
    assert state is not None and state.name == IDLE and state.reason is None
    assert state.detail and "idle_prompt" in state.detail
    assert state.same_as(prev)  # idle after Stop: no new transition to record


def test_idle_prompt_after_stop_records_no_transition() -> None:
    tracker = Tracker()
    tracker.on_hook("s", "SessionStart", {"session_id": "a"}, 1.0)
    tracker.on_hook("s", "UserPromptSubmit", {"session_id": "a"}, 2.0)
    tracker.on_hook("s", "Stop", {"session_id": "a"}, 3.0)
    assert tracker.on_hook("s", "Notification", IDLE_PROMPT, 63.0) is None
    assert tracker.get("s").name == IDLE


def test_idle_prompt_does_not_close_an_open_dialog() -> None:
    """Only what blocks the agent is waiting; an idle notice must not hide a real dialog."""
    tracker = Tracker()
    tracker.on_hook("s", "PreToolUse", {"tool_name": "Write"}, 1.0)
    tracker.on_hook("s", "PermissionRequest", {"tool_name": "Write"}, 1.1)
    assert tracker.on_hook("s", "Notification", IDLE_PROMPT, 61.0) is None
    state = tracker.get("s")
    assert (state.name, state.reason, state.tool) == (WAITING, "permission", "Write")


def test_idle_prompt_while_working_means_idle() -> None:
    tracker = Tracker()
    tracker.on_hook("s", "UserPromptSubmit", {}, 1.0)
    assert tracker.get("s").name == WORKING
    state = tracker.on_hook("s", "Notification", IDLE_PROMPT, 70.0)
    assert state is not None and state.name == IDLE


def test_permission_prompt_and_questions_still_wait() -> None:
    memory = HookMemory(last_tool="Bash")
    prev = State(WORKING, "hook:PreToolUse", 1.0)
    perm = decide_from_hook("Notification", {"notification_type": "permission_prompt"}, prev,
                            memory, 2.0)
    assert perm is not None and (perm.name, perm.reason, perm.tool) == (WAITING, "permission", "Bash")
    ask = decide_from_hook("Notification", {"notification_type": "elicitation_dialog"}, prev,
                           memory, 2.0)
    assert ask is not None and (ask.name, ask.reason) == (WAITING, "question")


def test_claude_permission_cue_matches_its_dialog_only() -> None:
    dialog = ("Create file\n notes.txt\nDo you want to create notes.txt?\n❯ 1. Yes\n"
              "  2. Yes, allow all edits during this session\n  3. No\nEsc to cancel\n")
    idle = "─" * 40 + "\n❯ \n" + "─" * 40 + "\n"
    assert CLAUDE_CUES.find("permission", dialog)
    assert not CLAUDE_CUES.find("permission", idle)
