"""Live token usage and cost of every session, from the transcripts its agent writes.

Each hook payload names the agent's ``transcript_path``; a :class:`TranscriptFollower` per file
reads only what was appended since the last look. Rows are deduplicated per session (one
ledger per Hive Lab session, across all its transcript files) and a changed total becomes a
``UsageUpdated`` event on the stream.

Two readers, one owner per session: the periodic :meth:`poll` (in a worker thread) and
:meth:`catch_up` (on the event loop, from a blocking hook's budget check, so a limit crossed
by the response that asked for a tool denies that very tool call). Both read a session's
followers under that session's thread lock and put what they read in the session's pending
list; only :meth:`_publish` (always on the event loop) takes the pending rows out and emits
them, so every row read is published exactly once, whoever read it.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import events as ev
from .events import Event
from .recorder import Recorder
from .sessions import SessionManager
from .signals import Signals
from .store import Store
from ..usage.parse import Pricing, TranscriptFollower, UsageLedger, UsageRow, totals
from ..usage.report import usage_report

log = logging.getLogger("hive_lab.usage")


class UsageMonitor:
    def __init__(self, sessions: SessionManager, recorder: Recorder, store: Store,
                 pricing: Pricing, signals: Signals) -> None:
        self.sessions = sessions
        self.signals = signals
        self.recorder = recorder
        self.pricing = pricing
        self.followers: dict[tuple[str, str], TranscriptFollower] = {}
        self.ledgers: dict[str, UsageLedger] = {}
        self._last: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._reports: dict[str, dict[str, Any]] = {}  # unfiltered reports, by grouping
        # The rows a poll just read, per session, while ``signals.usage`` is emitted for it:
        # subscribers that count incrementally (budgets) read them instead of every row.
        self.fresh: dict[str, list[UsageRow]] = {}
        self._by_session: dict[str, list[TranscriptFollower]] = {}
        self._read_locks: dict[str, threading.Lock] = {}  # per session: its ledger's one reader
        self._pending: dict[str, list[UsageRow]] = {}  # read, not yet published (under the lock)
        self._untotalled: set[str] = set()  # published by a catch-up; the poll records totals
        signals.stored.connect(self._on_event)
        for session, path in store.transcript_paths():
            self.register(session, path)

    def _on_event(self, event: Event) -> None:
        path = event.payload.get("transcript_path") if event.agent != "hive" else None
        if event.agent == "hive" and event.event == ev.SESSION_CREATED:
            # A hook-less agent's own usage log (Aider), chosen by Hive Lab at spawn.
            described = event.payload.get("session")
            path = described.get("transcript_path") if isinstance(described, dict) else None
        if isinstance(path, str):
            self.register(event.session, path)

    def register(self, session: str, path: str) -> bool:
        """Follow ``path`` for ``session``. Agent-supplied: only absolute ``*.jsonl`` paths."""
        if (session, path) in self.followers:
            return True
        p = Path(path)
        if not p.is_absolute() or p.suffix != ".jsonl" or "\0" in path or len(path) > 4096:
            log.warning("session %s: ignoring transcript path %r", session, path[:200])
            return False
        ledger = self.ledgers.setdefault(session, UsageLedger())
        follower = TranscriptFollower(p, self.pricing, ledger=ledger)
        self._read_locks.setdefault(session, threading.Lock())
        self.followers[(session, path)] = follower
        self._by_session.setdefault(session, []).append(follower)
        return True

    def _read(self, session: str, follower: TranscriptFollower) -> None:
        """Read what one follower appended into the session's pending rows (any thread; the
        caller holds the session's lock, so a ledger and its followers have one reader)."""
        if not follower.path.is_file():
            return
        try:
            rows = follower.poll()
        except Exception:
            log.exception("reading transcript %s", follower.path)
            return
        if rows:
            self._pending.setdefault(session, []).extend(rows)

    def _read_locked(self, session: str, follower: TranscriptFollower) -> None:
        with self._read_locks[session]:
            self._read(session, follower)

    def catch_up(self, session: str, wait: float = 0.5) -> bool:
        """Read the session's transcripts up to now and publish new rows, before a hook's
        decision. Waits up to ``wait`` s for a poll reading them in a worker thread (a few
        lines take well under a millisecond); False if it could not read."""
        followers = self._by_session.get(session)
        if not followers:
            return True
        lock = self._read_locks[session]
        if not lock.acquire(timeout=wait):
            log.warning("session %s: transcript busy; budget check uses the last read", session)
            self._publish(session, record=False)
            return False
        try:
            for follower in followers:
                self._read(session, follower)
        finally:
            lock.release()
        self._publish(session, record=False)
        return True

    def mentions(self, session: str, needle: bytes, tail: int = 256 * 1024) -> bool:
        """Does the end of one of the session's transcripts hold ``needle`` (a tool_use id)?

        Claude Code queues transcript lines and flushes them on a timer: the line of the
        response that asks for a tool is sometimes written only after that tool's PreToolUse
        has fired. The budget check waits for it when the response may cross a limit.
        """
        for follower in self._by_session.get(session, ()):
            try:
                with open(follower.path, "rb") as f:
                    size = f.seek(0, 2)
                    f.seek(max(0, size - tail))
                    if needle in f.read():
                        return True
            except OSError:
                continue
        return False

    def _publish(self, session: str, record: bool = True) -> bool:
        """Emit the session's pending rows once (event loop only); record a changed total
        (or, from a hook's catch-up, leave that to the next poll: summing every row of the
        session is the one part of this that grows with its history)."""
        lock = self._read_locks.get(session)
        if lock is None:
            return False
        with lock:
            rows = self._pending.pop(session, None)
        if not rows:
            return False
        self._reports.clear()
        self.fresh[session] = rows
        try:
            self.signals.usage.emit(session)
        finally:
            self.fresh.pop(session, None)
        if record:
            self._record_total(session)
        else:
            self._untotalled.add(session)
        return True

    def _record_total(self, session: str) -> None:
        self._untotalled.discard(session)
        total = totals(self.ledgers[session].rows())
        if total != self._last.get(session):
            self._last[session] = total
            cost = total.get("cost")
            summary = (f"${cost:.4f}" if isinstance(cost, (int, float)) else "cost unknown") \
                + f", {total.get('total_tokens', 0)} tokens"
            self.recorder.record_now([ev.internal(session, ev.USAGE_UPDATED,
                                                  {"usage": total}, summary)])

    async def poll(self) -> set[str]:
        """Read what every followed transcript appended; publish it, record changed totals."""
        async with self._lock:
            for (session, path), follower in list(self.followers.items()):
                if not Path(path).is_file():
                    continue
                await asyncio.to_thread(self._read_locked, session, follower)
            changed = set(self._untotalled)
            for session in sorted(self._pending):
                if self._publish(session):
                    changed.add(session)
            for session in sorted(self._untotalled):
                self._record_total(session)
            return changed

    def rows(self, session: str | None = None, since: float | None = None,
             until: float | None = None) -> list[tuple[str, UsageRow]]:
        """Deduplicated ``(session name, row)`` pairs, oldest first.

        A row belongs to the session whose ledger holds it: two sessions can follow the same
        agent session id (a resumed conversation), so ids cannot be mapped back to names.
        """
        out: list[tuple[str, UsageRow]] = []
        lo = datetime.fromtimestamp(since, timezone.utc) if since is not None else None
        hi = datetime.fromtimestamp(until, timezone.utc) if until is not None else None
        for name, ledger in self.ledgers.items():
            if session is not None and name != session:
                continue
            for row in ledger.rows():
                if (lo and row.time < lo) or (hi and row.time >= hi):
                    continue
                out.append((name, row))
        return sorted(out, key=lambda pair: pair[1].time)

    def rows_json(self, **filters: Any) -> list[dict[str, Any]]:
        return [{**row.to_json(), "session": name, "agent_session_id": row.session_id}
                for name, row in self.rows(**filters)]

    def report(self, by: str, **filters: Any) -> dict[str, Any]:
        """``hive-lab usage --json`` shape, grouped by Hive Lab session (not agent id).

        Unfiltered reports are kept until a poll reads new rows: the panel asks for one on
        every redraw, and recomputing it from every row each time grows with the history.
        The dict returned is shared: callers must not change it.
        """
        if not any(v is not None for v in filters.values()):
            cached = self._reports.get(by)
            if cached is None:
                cached = self._reports[by] = self._report(by)
            return cached
        return self._report(by, **filters)

    def _report(self, by: str, **filters: Any) -> dict[str, Any]:
        rows = [replace(row, session_id=name) for name, row in self.rows(**filters)]
        return usage_report(rows, by, self.pricing)  # type: ignore[arg-type]
