"""Claude Code's own retry countdown on screen: parsed strictly, read as waiting(rate_limit).

The screens are Claude Code 2.1.197's (tests/claude_support/NOTES.md, "API errors"; the line
is cli.js's retry status: "✻ <label> · Retrying in <Xi duration>[ (resets …)] · attempt K/M").
"""
from __future__ import annotations

import pytest

from hive_lab.core.agents import CLAUDE_CUES, profile_from_config
from hive_lab.core.errors import BadRequest
from hive_lab.core.retrycue import MAX_WAIT, attempt_in, find_self_retry, parse_duration
from hive_lab.core.status import (IDLE, SELF_RETRY_GRACE, SELF_RETRY_SOURCE, WAITING, WORKING,
                                  Tracker)

BOX = "─" * 40 + "\n❯ \n" + "─" * 40 + "\n  ? for shortcuts\n"
CUES = CLAUDE_CUES.retrying


def screen(line: str, footer: str = "  esc to interrupt\n") -> str:
    return f"❯ Run the burn steps.\n\n● Bash(true)\n  ⎿  (No output)\n\n{line}\n{footer}{BOX}"


@pytest.mark.parametrize("text, seconds", [
    ("0s", 0), ("4s", 4), ("59s", 59), ("1m 30s", 90), ("5m", 300), ("2h", 7200),
    ("1h 2m 3s", 3723), ("1d 3h 4m", 86400 + 3 * 3600 + 240)])
def test_the_clis_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "4", "s", "4 s", "4S", "-4s", "4.5s", "٤s", "4s 1m",
                                  "1m 1m", "1m  3s", "12345s", "1d 1h 1m 1s 1s", "4s\n"])
def test_anything_else_is_no_duration(text: str) -> None:
    assert parse_duration(text) is None


def test_the_spinner_line_is_a_self_retry() -> None:
    retry = find_self_retry(screen("✻ API error · Retrying in 4s · attempt 1/10"), CUES)
    assert retry is not None and (retry.wait, retry.attempt, retry.of) == (4.0, 1, 10)
    assert retry.label == "API error"
    assert attempt_in(retry.detail()) == "1/10" and "retries by itself" in retry.detail()
    limit = find_self_retry(screen("✻ Usage limit reached · Retrying in 1h 2m 3s (resets 3pm) "
                                   "· attempt 2/10   "), CUES)
    assert limit is not None and (limit.wait, limit.attempt) == (3723.0, 2)


@pytest.mark.parametrize("line", [
    "  ⎿  ✻ API error · Retrying in 4s · attempt 1/10",      # tool output, indented
    "● ✻ API error · Retrying in 4s · attempt 1/10",          # the agent's own text
    "✻ API error · Retrying in 4s · attempt 1/10 and more",   # not the end of the line
    "✻ API error · Retrying in 4s · attempt 0/10",
    "✻ API error · Retrying in 4s · attempt 11/10",
    "✻ API error · Retrying in 4s · attempt 1/1000",
    "✻ API error · Retrying in 4x · attempt 1/10",
    "✻ API error · Retrying in ٤s · attempt ١/١٠",            # non-ASCII digits
    "✻ API error · Retrying in 4s · attempt 1/10".replace("·", "-"),
])
def test_hostile_or_broken_lines_are_no_retry(line: str) -> None:
    assert find_self_retry(screen(line), CUES) is None


def test_waits_are_clamped_and_the_lowest_line_wins() -> None:
    huge = find_self_retry(screen("✻ API error · Retrying in 9999d · attempt 1/10"), CUES)
    assert huge is not None and huge.wait == MAX_WAIT == 6 * 3600
    # A label forging a countdown of its own: the real one ends the line.
    forged = find_self_retry(screen("✻ x · Retrying in 9h · attempt 1/10 · Retrying in 2s · "
                                    "attempt 3/10"), CUES)
    assert forged is not None and (forged.wait, forged.attempt) == (2.0, 3)
    assert attempt_in(forged.detail()) == "3/10"
    two = "✻ API error · Retrying in 30s · attempt 1/10\n" + screen(
        "✻ API error · Retrying in 3s · attempt 2/10")
    low = find_self_retry(two, CUES)
    assert low is not None and (low.wait, low.attempt) == (3.0, 2)
    control = find_self_retry(screen("✻ API\x1b[31m\x07error · Retrying in 3s · attempt 2/10"), CUES)
    assert control is not None and control.label.isprintable()


def retrying(t: Tracker, text: str, now: float) -> object:
    return t.on_screen("s", screen(text), CLAUDE_CUES, True, now, now)


def test_the_countdown_is_waiting_rate_limit_until_the_spinner_returns() -> None:
    t = Tracker()
    t.on_hook("s", "SessionStart", {"session_id": "a"}, 1.0)
    t.on_hook("s", "UserPromptSubmit", {"session_id": "a"}, 10.0)
    # Newer than the prompt's hook (the CLI fires none while it retries), so read at once.
    state = retrying(t, "✻ API error · Retrying in 4s · attempt 1/10", 10.5)
    assert state is not None and (state.name, state.reason) == (WAITING, "rate_limit")  # type: ignore[attr-defined]
    assert t.get("s").source == SELF_RETRY_SOURCE and t.get("s").resume_at == 14.5
    assert "resume_at" in t.get("s").to_json()
    # Counting down: the same wait, no new transition, the first sighting's resume_at.
    assert retrying(t, "✻ API error · Retrying in 3s · attempt 1/10", 11.5) is None
    assert t.get("s").resume_at == 14.5
    # The next attempt refused: a new transition with its own resume_at.
    again = retrying(t, "✻ API error · Retrying in 2s · attempt 2/10", 15.0)
    assert again is not None and t.get("s").resume_at == 17.0 and t.get("s").since == 15.0
    # The spinner back (the request went out): working.
    back = t.on_screen("s", screen("✻ Thinking… (3s)"), CLAUDE_CUES, True, 17.5, 17.5)
    assert back is not None and t.get("s").name == WORKING
    t.on_hook("s", "Stop", {"session_id": "a"}, 18.0)
    assert t.get("s").name == IDLE


def test_the_retry_gone_without_a_hook_waits_for_the_hook_then_goes_idle() -> None:
    t = Tracker()
    t.on_hook("s", "UserPromptSubmit", {"session_id": "a"}, 10.0)
    retrying(t, "✻ API error · Retrying in 4s · attempt 10/10", 10.5)
    idle = screen("● API Error: Request rejected (429)", footer="")
    # The StopFailure of a CLI that gave up is on its way: the input box alone decides nothing.
    assert t.on_screen("s", idle, CLAUDE_CUES, True, 15.0, 15.0) is None
    assert t.get("s").name == WAITING
    t2 = Tracker()
    t2.states, t2.memory = dict(t.states), dict(t.memory)
    t.on_hook("s", "StopFailure", {"error": "rate_limit"}, 15.2)
    assert (t.get("s").name, t.get("s").source) == (WAITING, "hook:StopFailure")
    # No hook at all (Escape during the countdown): idle once the grace is over.
    late = 14.5 + SELF_RETRY_GRACE + 1
    assert t2.on_screen("s", idle, CLAUDE_CUES, True, late, late) is not None
    assert t2.get("s").name == IDLE


def test_a_dialog_wins_over_a_countdown_and_profiles_check_the_cue() -> None:
    t = Tracker()
    t.on_hook("s", "UserPromptSubmit", {"session_id": "a"}, 10.0)
    dialog = screen("✻ API error · Retrying in 4s · attempt 1/10") + \
        "Do you want to proceed?\n❯ 1. Yes\n"
    retrying_state = t.on_screen("s", dialog, CLAUDE_CUES, True, 20.0, 20.0)
    assert retrying_state is None or t.get("s").reason == "permission"
    with pytest.raises(BadRequest):
        profile_from_config("c", {"cues": {"retrying": ["Retrying in (\\d+)s"]}})
    with pytest.raises(BadRequest):
        profile_from_config("c", {"cues": {"retrying": ["(?P<wait>"]}})
    ok = profile_from_config("c", {"cues": {"retrying": [
        r"^wait (?P<wait>.+?) try (?P<attempt>\d+) of (?P<of>\d+)$"]}})
    got = find_self_retry("wait 1m 5s try 2 of 3", ok.cues.retrying)
    assert got is not None and (got.wait, got.attempt, got.of) == (65.0, 2, 3)


def test_a_fresh_stop_is_newer_than_a_countdown_still_drawn() -> None:
    t = Tracker()
    t.on_hook("s", "UserPromptSubmit", {"session_id": "a"}, 10.0)
    t.on_hook("s", "Stop", {"session_id": "a"}, 12.0)
    assert retrying(t, "✻ API error · Retrying in 1s · attempt 1/10", 12.5) is None
    assert t.get("s").name == IDLE
    t.on_hook("s", "UserPromptSubmit", {"session_id": "a"}, 20.0)  # the next turn refused
    assert retrying(t, "✻ API error · Retrying in 1s · attempt 1/10", 20.5) is not None
    assert t.get("s").name == WAITING


def test_the_countdown_counts_without_esc_to_interrupt_under_it() -> None:
    """Seen with the real CLI: right after a pasted prompt the footer says "paste again to
    expand", not "esc to interrupt", while the 529 countdown runs (the working cue absent)."""
    t = Tracker()
    t.on_hook("s", "UserPromptSubmit", {"session_id": "a"}, 10.0)
    text = screen("✻ API error · Retrying in 1s · attempt 2/10", footer="") + \
        "  paste again to expand                                  ● high · /effort\n"
    assert not CLAUDE_CUES.find("working", text)
    assert t.on_screen("s", text, CLAUDE_CUES, True, 10.5, 10.5) is not None
    assert (t.get("s").name, t.get("s").reason) == (WAITING, "rate_limit")


def test_a_screen_without_the_patterns_literal_is_not_searched_and_flags_are_kept() -> None:
    from hive_lab.core.retrycue import _needle

    assert _needle(CUES[0]) == " · Retrying in "
    assert _needle(r"(?i)^retrying in (?P<wait>\S+) (?P<attempt>\d+)/(?P<of>\d+)") == ""
    loose = (r"(?i)^retrying in (?P<wait>[0-9]+s) (?P<attempt>[0-9]+)/(?P<of>[0-9]+)$",)
    got = find_self_retry("RETRYING IN 3s 1/4", loose)
    assert got is not None and (got.wait, got.attempt, got.of) == (3.0, 1, 4)
    assert find_self_retry(screen("✻ API error · Retrying in"), CUES) is None
