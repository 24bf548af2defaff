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


# -- API refusals (StopFailure): a rate limit waits, other failures are errors --------------
def test_stop_failure_rate_limit_is_waiting_not_error() -> None:
    """Claude Code 2.1.197 fires StopFailure(error=rate_limit) on a 429 it does not retry."""
    payload = {"error": "rate_limit", "session_id": "a",
               "last_assistant_message": "API Error: Request rejected (429) · rate_limit_error"}
    state = decide_from_hook("StopFailure", payload, State(WORKING, "hook", 1.0), HookMemory(), 2.0)
    assert state is not None and (state.name, state.reason) == (WAITING, "rate_limit")
    assert state.resume_at is None  # nothing says when: the orchestrator probes
    assert "resume_at" not in state.to_json()


def test_stop_failure_rate_limit_with_a_reset_time_carries_resume_at() -> None:
    payload = {"error": "rate_limit", "last_assistant_message": "Limit reached · resets in 5 min"}
    state = decide_from_hook("StopFailure", payload, State(WORKING, "hook", 1.0), HookMemory(), 100.0)
    assert state is not None and state.resume_at == 400.0
    assert State.from_record(state.to_record()) == state  # survives the store
    assert "resume_at" in state.to_json()


def test_stop_failure_overloaded_waits_and_others_are_errors() -> None:
    prev = State(WORKING, "hook", 1.0)
    over = decide_from_hook("StopFailure", {"error": "overloaded"}, prev, HookMemory(), 2.0)
    assert over is not None and (over.name, over.reason) == (WAITING, "overloaded")
    for error in ("authentication_failed", "server_error", "unknown", "billing_error"):
        state = decide_from_hook("StopFailure", {"error": error}, prev, HookMemory(), 2.0)
        assert state is not None and (state.name, state.reason) == ("error", error)
    state = decide_from_hook("StopFailure", {}, prev, HookMemory(), 2.0)
    assert state is not None and (state.name, state.reason) == ("error", "failure")


def test_a_prompt_after_a_rate_limit_is_working_again() -> None:
    tracker = Tracker()
    tracker.on_hook("s", "StopFailure", {"error": "rate_limit"}, 1.0)
    assert tracker.get("s").name == WAITING
    tracker.on_hook("s", "UserPromptSubmit", {}, 2.0)
    assert tracker.get("s").name == WORKING
