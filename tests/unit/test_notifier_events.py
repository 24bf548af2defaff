"""The notifier on a real store and recorder (no server): attention events and the baseline."""
from __future__ import annotations

import asyncio
from pathlib import Path

from hive_lab.core import events as ev
from hive_lab.core.bus import Broadcaster
from hive_lab.core.recorder import Recorder
from hive_lab.core.signals import Signals
from hive_lab.core.status import Tracker
from hive_lab.core.store import Store
from hive_lab.notify.notifier import Notifier, NotifyConfig
from hive_lab.wire import BUDGET_WARNING, NOTIFICATION


def _plane(db: Path, **config: object) -> tuple[Store, Recorder, Notifier]:
    store, signals, tracker = Store(db), Signals(), Tracker()
    recorder = Recorder(store, Broadcaster(), tracker, signals)
    return store, recorder, Notifier(db, signals, recorder, tracker, NotifyConfig(**config))


def test_attention_events_notify_once_per_key_and_not_before_the_baseline(tmp_path: Path) -> None:
    db = tmp_path / "hive.db"

    async def run() -> None:
        store, recorder, notifier = _plane(db)
        old = ev.internal("t1", BUDGET_WARNING, {"message": "old news", "key": "k0"})
        recorder.record_now([old])  # before the first start: the baseline
        notifier.start()
        for _ in range(2):  # the same key twice: one notification
            recorder.record_now([ev.internal("t1", BUDGET_WARNING, {
                "message": "task t1 spent 80% of $5.00", "key": "t1-80", "task": "t1"})])
        notifier.pump()  # what the loop runs next (scheduled by the creation)
        rows = notifier.recent()
        assert [(r["kind"], r["task"]) for r in rows] == [("budget_warning", "t1")]
        assert rows[0]["body"] == "task t1 spent 80% of $5.00" and not rows[0]["pending"]
        sent = [e for e in store.events(agent="hive", event=NOTIFICATION)]
        assert len(sent) == 1 and sent[0].payload["notification"]["kind"] == "budget_warning"
        notifier.close()
        store.close()

    asyncio.run(run())


def test_notify_on_filters_kinds(tmp_path: Path) -> None:
    async def run() -> None:
        store, recorder, notifier = _plane(tmp_path / "hive.db", on=("task_failed",))
        notifier.start()
        recorder.record_now([ev.internal("t1", BUDGET_WARNING, {"message": "m"})])
        assert notifier.recent() == []
        notifier.close()
        store.close()

    asyncio.run(run())


def test_waiting_on_the_api_is_no_permission_notification(tmp_path: Path) -> None:
    """waiting(rate_limit / overloaded) blocks on the API, not on a person: ProviderParked is
    its notification. Claude Code's own retries make one such state per refused attempt."""
    from hive_lab.core.status import SELF_RETRY_SOURCE, WAITING, WORKING, State

    async def run() -> None:
        store, recorder, notifier = _plane(tmp_path / "hive.db")
        notifier.start()
        working = State(WORKING, "hook:UserPromptSubmit", 1.0)
        recorder.tracker.set("s1", working)
        for i, (source, reason) in enumerate([(SELF_RETRY_SOURCE, "rate_limit"),
                                              ("hook:StopFailure", "overloaded")]):
            state = State(WAITING, source, 2.0 + i, reason=reason, resume_at=9.0)
            recorder.tracker.states["s1"] = state
            recorder.transition("s1", state, working)
        asking = State(WAITING, "hook:PermissionRequest", 5.0, reason="permission", tool="Bash")
        recorder.tracker.states["s1"] = asking
        recorder.transition("s1", asking, working)
        notifier.pump()
        assert [r["kind"] for r in notifier.recent()] == ["permission"]
        notifier.close()
        store.close()

    asyncio.run(run())
