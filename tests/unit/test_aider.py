"""Aider without hooks: its real screens (0.86.2, tests/fixtures/aider) read by the profile's
cues, and its analytics log read as usage. No server, no aider process."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from hive_lab.core.agents import BUILTIN
from hive_lab.core.status import (IDLE, STARTING, WAITING, WORKING, HookMemory, State,
                                  decide_from_screen)
from hive_lab.usage.parse import Pricing, TranscriptFollower, load_usage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aider"
CUES = BUILTIN["aider"].cues
NOW = 1000.0
QUIET = NOW - 60  # the pane's last activity: long ago


def screen(name: str) -> str:
    return (FIXTURES / name).read_text()


def decide(text: str, prev: str, activity: float = QUIET, **state: str) -> State | None:
    return decide_from_screen(text, CUES, False, State(prev, "screen", NOW - 30, **state),
                              HookMemory(), activity, NOW)


def test_an_unanswered_confirmation_is_waiting_with_its_question_and_subject() -> None:
    got = decide(screen("screen-edit-question.txt"), WORKING)
    assert got is not None and got.name == WAITING and got.reason == "permission"
    assert (got.tool, got.detail) == ("Create new file?", "other.txt")
    got = decide(screen("screen-shell-question.txt"), WORKING)
    assert got is not None and (got.tool, got.detail) == ("Run shell command?",
                                                          "echo hi > shell.txt")


def test_an_answered_confirmation_is_no_longer_waiting() -> None:
    after = screen("screen-after-deny.txt")
    assert "[Yes]: n" in after  # the answered question stays on screen
    got = decide(after, WAITING, reason="permission")
    assert got is not None and got.name == IDLE


def test_the_prompt_just_sent_is_not_idle_however_quiet() -> None:
    """Aider prints nothing for seconds after a prompt; that was taken for the turn's end."""
    sent = screen("screen-after-deny.txt").rstrip().rsplit("\n", 1)[0] + "\n> SCENARIO:text hi\n"
    assert decide(sent, WORKING) is None  # stays working
    assert decide(sent, WAITING, reason="permission").name == WORKING  # answered, works on


def test_the_spinner_is_working_and_startup_is_not_idle_until_the_prompt() -> None:
    assert decide(screen("screen-working.txt"), WORKING).name == WORKING
    assert decide("─" * 40 + "\n", STARTING) is None
    assert decide("─" * 40 + "\n", STARTING, activity=NOW) is None
    ready = "Aider v0.86.2\nModel: openai/gpt-4.1-mini with diff edit format\n" + "─" * 40 + "\n>\n"
    assert decide(ready, STARTING).name == IDLE
    assert decide(ready.replace("\n>\n", "\nnotes.txt\nask> \n"), WORKING).name == IDLE


def test_the_unknown_model_question_at_start_up_is_answered_no() -> None:
    text = screen("screen-unknown-model.txt")
    [(pattern, keys)] = CUES.first_run
    assert re.search(pattern, text) and keys == ("n", "Enter")


def test_a_search_replace_block_at_the_bottom_is_not_the_prompt() -> None:
    assert CUES.find("idle", "notes.txt\n<<<<<<< SEARCH\n=======\nhi\n>>>>>>> REPLACE\n") is None


# -- usage ----------------------------------------------------------------------------------
LOG = FIXTURES / "0.86.2.aider-analytics.jsonl"


def _sends() -> list[dict]:
    return [json.loads(x)["properties"] for x in LOG.read_text().splitlines()
            if json.loads(x)["event"] == "message_send"]


def test_the_analytics_log_gives_one_row_per_reply_with_aiders_own_figures(tmp_path: Path) -> None:
    path = tmp_path / "s-1.aider-analytics.jsonl"
    shutil.copyfile(LOG, path)
    rows = load_usage([path])
    sends = _sends()
    assert len(rows) == len(sends) >= 5
    assert [(r.input, r.output) for r in rows] == [(s["prompt_tokens"], s["completion_tokens"])
                                                   for s in sends]
    assert [r.cost for r in rows] == pytest.approx([s["cost"] for s in sends])
    assert {r.agent for r in rows} == {"aider"} and {r.session_id for r in rows} == {"s-1"}
    assert {r.model for r in rows} == {"openai/gpt-4.1-mini"}
    assert sum(r.cost or 0 for r in rows) == pytest.approx(sends[-1]["total_cost"])


def test_following_the_log_reads_each_reply_once_and_keeps_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "s-2.aider-analytics.jsonl"
    lines = LOG.read_bytes().splitlines(keepends=True)
    follower = TranscriptFollower(path, Pricing.default())
    assert follower.poll() == []  # not there yet
    half = len(lines) // 2
    path.write_bytes(b"".join(lines[:half]) + lines[half][:10])  # a line being written
    first = follower.poll()
    with path.open("ab") as f:
        f.write(lines[half][10:] + b"".join(lines[half + 1:]) + b"not json\n")
    second = follower.poll()
    assert len(first) + len(second) == len(_sends())
    assert follower.poll() == []
    path.write_bytes(LOG.read_bytes())  # rewritten from the start: nothing counted twice
    follower.poll()
    assert len(follower.rows()) == len(_sends())


def test_an_unknown_model_falls_back_to_the_pricing_table(tmp_path: Path) -> None:
    path = tmp_path / "aider-analytics.jsonl"
    base = {"event": "message_send", "user_id": "u", "time": 1796178012}
    path.write_text("\n".join(json.dumps({**base, "properties": p}) for p in [
        {"main_model": "openai/REDACTED", "prompt_tokens": 100, "completion_tokens": 5, "cost": 0},
        {"main_model": "gpt-4.1", "prompt_tokens": 1_000_000, "completion_tokens": 0, "cost": 0},
        {"main_model": "x", "prompt_tokens": True, "completion_tokens": -3, "cost": float("nan")},
    ]) + "\n" + json.dumps({**base, "event": "launched", "properties": {}}) + "\n")
    rows = load_usage([path])
    assert len(rows) == 3
    assert rows[0].cost is None  # aider knew no price; neither do we
    assert rows[1].cost == pytest.approx(2.0)  # gpt-4.1 input: $2 per million (pricing.json)
    assert (rows[2].input, rows[2].output) == (0, 0) and not rows[2].cost  # nonsense: nothing


def test_the_log_hive_lab_chose_at_spawn_is_followed_again_after_a_restart(tmp_path: Path) -> None:
    """No hook ever names aider's log: the path comes from the SessionCreated event."""
    from hive_lab.core import events as ev
    from hive_lab.core.bus import Broadcaster
    from hive_lab.core.recorder import Recorder
    from hive_lab.core.signals import Signals
    from hive_lab.core.status import Tracker
    from hive_lab.core.store import Store

    log = str(tmp_path / "ad-x-1.aider-analytics.jsonl")
    recorder = Recorder(Store(tmp_path / "hive.db"), Broadcaster(), Tracker(), Signals())
    recorder.record_now([
        ev.internal("ad-x", ev.SESSION_CREATED, {"session": {"transcript_path": log}}),
        ev.internal("sh", ev.SESSION_CREATED, {"session": {"transcript_path": None}}),
    ])
    assert recorder.store.transcript_paths() == [("ad-x", log)]
