"""The recorder's one-transaction rule and the state machine, without a server."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hive_lab.core import events as ev
from hive_lab.core.bus import Broadcaster
from hive_lab.core.recorder import Recorder
from hive_lab.core.signals import Signals
from hive_lab.core.status import (EXITED, IDLE, STARTING, WAITING, WORKING, ScreenCues, State,
                                  Tracker)
from hive_lab.core.store import Store


def _hook(name: str, payload: dict | None = None, session: str = "s") -> ev.Event:
    return ev.Event(key=ev.new_key(), session=session, agent="claude", event=name,
                    payload={"hook_event_name": name, **(payload or {})}, time=100.0)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(Store(tmp_path / "hive.db"), Broadcaster(), Tracker(), Signals())


def test_a_hook_and_the_state_it_causes_are_stored_and_signalled_together(recorder: Recorder) -> None:
    changes, stored = [], []
    recorder.signals.state_changed.connect(changes.append)
    recorder.signals.stored.connect(lambda e: stored.append(e.event))
    recorder.record_now([_hook("UserPromptSubmit")])
    assert stored == ["UserPromptSubmit", "StateChanged"]
    assert [(c.session, c.state.name, c.previous) for c in changes] == [("s", WORKING, None)]
    assert [t["name"] for t in recorder.store.transitions()] == [WORKING]
    recorder.record_now([_hook("Stop")])
    assert changes[-1].state.name == IDLE and changes[-1].previous.name == WORKING


def test_a_failed_transaction_rolls_the_state_back(recorder: Recorder, monkeypatch) -> None:
    recorder.record_now([_hook("UserPromptSubmit")])
    before = recorder.tracker.get("s")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(recorder.store, "_insert_transition", broken)
    with pytest.raises(RuntimeError):
        recorder.record_now([_hook("Stop")])
    assert recorder.tracker.get("s") == before  # still working, as the store says
    assert recorder.store.count_events() == 2


def test_concurrent_hooks_are_one_group_commit_in_arrival_order(recorder: Recorder) -> None:
    async def run() -> list[tuple[int, bool]]:
        events = [_hook("PreToolUse", {"tool_name": "Bash", "n": i}) for i in range(20)]
        return await asyncio.gather(*(recorder.record(e) for e in events))

    results = asyncio.run(run())
    ids = [i for i, dup in results]
    assert ids == sorted(ids) and not any(dup for _, dup in results)
    replay = asyncio.run(recorder.record(recorder.store.events(limit=1)[0]))
    assert replay[1] is True  # same dedup key: stored once


def test_state_machine_evidence_order() -> None:
    tracker = Tracker()
    assert tracker.on_hook("s", "PermissionRequest", {"tool_name": "Write"}, 1.0) == State(
        WAITING, "hook:PermissionRequest", 1.0, reason="permission", tool="Write")
    # a dead pane beats every hook, and late hooks cannot revive it
    assert tracker.on_pane("s", True, 3, 2.0).name == EXITED
    assert tracker.on_hook("s", "UserPromptSubmit", {}, 3.0) is None
    assert tracker.get("s").exit_status == 3
    # the screen decides for an agent without hooks
    cues = ScreenCues(permission=(r"\(Y\)es/\(N\)o",), idle=(r"^> $",))
    assert tracker.on_screen("a", "Apply edit? (Y)es/(N)o", cues, False, 0.0, 10.0).reason == "permission"
    assert tracker.on_screen("a", "> ", cues, False, 0.0, 20.0).name == IDLE
    # and only corrects hook evidence once it is stale
    tracker.on_hook("h", "UserPromptSubmit", {}, 100.0)
    assert tracker.on_screen("h", "(Y)es/(N)o", cues, True, 0.0, 101.0) is None
    assert tracker.on_screen("h", "(Y)es/(N)o", cues, True, 0.0, 110.0).name == WAITING
    assert tracker.get("new").name == STARTING
