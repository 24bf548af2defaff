"""The usage poll and the hook-time catch-up read the same transcripts: every row once.

Real files, a real :class:`UsageMonitor` (real store, real signals); only the recorder is a
list. ``signals.usage`` subscribers (the budget keeper) see each response exactly once, whoever
read it (the poll in its worker thread, or a hook's catch-up on the loop), replays included.
"""
from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from hive_lab.core.signals import Signals
from hive_lab.core.store import Store
from hive_lab.core.usagemonitor import UsageMonitor
from hive_lab.usage.parse import Pricing


def line(mid: str, tokens: int = 1000, output: int = 0) -> str:
    return json.dumps({
        "type": "assistant", "isSidechain": False, "requestId": "req_" + mid, "sessionId": "s",
        "cwd": "/tmp", "timestamp": "2026-12-02T06:00:00.000Z",
        "message": {"id": "msg_" + mid, "type": "message", "role": "assistant",
                    "model": "claude-opus-4-8", "content": [{"type": "text", "text": "."}],
                    "usage": {"input_tokens": tokens, "output_tokens": output,
                              "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0}}}) + "\n"


class Recorded(list):  # type: ignore[type-arg]
    def record_now(self, events: list[Any]) -> None:
        self.extend(events)


def monitor(tmp_path: Path) -> tuple[UsageMonitor, Path, Counter[str], Recorded]:
    signals = Signals()
    recorded = Recorded()
    mon = UsageMonitor(None, recorded, Store(tmp_path / "hive.db"), Pricing.default(),  # type: ignore[arg-type]
                       signals)
    seen: Counter[str] = Counter()
    signals.usage.connect(lambda s: seen.update(r.message_id or "?" for r in mon.fresh[s]))
    path = tmp_path / "t.jsonl"
    path.write_text("")
    assert mon.register("s1", str(path))
    return mon, path, seen, recorded


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as f:
        f.write("".join(lines))


def test_catch_up_and_poll_publish_each_response_once_and_replays_not_again(tmp_path: Path) -> None:
    mon, path, seen, recorded = monitor(tmp_path)
    append(path, line("a"), line("b"))
    assert mon.catch_up("s1")
    assert seen == {"msg_a": 1, "msg_b": 1}
    assert recorded == []  # the total (a sum over every row) is left to the poll
    assert asyncio.run(mon.poll()) == {"s1"}  # it records the total, publishes nothing again
    assert seen == {"msg_a": 1, "msg_b": 1} and len(recorded) == 1
    assert asyncio.run(mon.poll()) == set()
    append(path, line("a"), line("c"))  # a replayed copy of a, and a new response
    assert asyncio.run(mon.poll()) == {"s1"}
    assert seen == {"msg_a": 1, "msg_b": 1, "msg_c": 1}
    assert mon.catch_up("s1") and seen["msg_c"] == 1
    append(path, line("c", output=50))  # a fuller copy replaces c: published as its update
    mon.catch_up("s1")
    assert seen["msg_c"] == 2 and len(mon.ledgers["s1"]) == 3


def test_rows_a_poll_read_but_did_not_publish_yet_are_published_by_the_catch_up(
        tmp_path: Path) -> None:
    mon, path, seen, _ = monitor(tmp_path)
    append(path, line("a"))
    follower = mon.followers[("s1", str(path))]
    mon._read_locked("s1", follower)  # what the poll's worker thread does before it publishes
    assert seen == {}
    append(path, line("b"))
    mon.catch_up("s1")
    assert seen == {"msg_a": 1, "msg_b": 1}
    asyncio.run(mon.poll())
    assert seen == {"msg_a": 1, "msg_b": 1}


def test_a_reader_thread_and_catch_ups_racing_count_every_response_once(tmp_path: Path) -> None:
    mon, path, seen, _ = monitor(tmp_path)
    follower = mon.followers[("s1", str(path))]
    stop = threading.Event()

    def poller() -> None:  # the poll's worker thread, as fast as it can
        while not stop.is_set():
            mon._read_locked("s1", follower)

    thread = threading.Thread(target=poller)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch all the time: an unlocked reader would show
    thread.start()
    try:
        for i in range(300):
            append(path, line(f"m{i}"), line(f"m{i}"))  # every response written twice
            mon.catch_up("s1")
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(switch)
    asyncio.run(mon.poll())
    assert len(seen) == 300 and set(seen.values()) == {1}
