"""The notification policy: transitions in, one stored notification each, delivered off the loop.

Fed by stored events (``Signals.stored``), in id order: a session's ``StateChanged`` into
waiting, a ``TaskChanged`` into failed or blocked, a pending ``ScopeRequested``, and the events
named in :data:`hive_lab.wire.ATTENTION_EVENTS`. Each becomes at most one row, keyed by what it
is about and when that state began, so a replay (catch-up after a crash, a duplicate event)
changes nothing. Nothing before the baseline is notified: the cursor (the last event id looked
at) is set to the newest event the first time, and catch-up after a restart only notifies a
state that still holds.

Delivery state lives in the row (which channels are done, attempts, next try), so a restart
delivers what was pending and nothing twice. The stream channel (a ``Notification`` event) is
written on the loop; apprise URLs and the command run in one worker thread, with retries
scheduled by the loop's tick, so a slow or dead endpoint never blocks the server.
"""
from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core import events as ev
from ..core.errors import BadRequest, NotFound, StoreUnavailable
from ..core.events import Event
from ..core.recorder import Recorder
from ..core.signals import Signals
from ..core.status import Tracker
from ..orchestrate.runtime import SCOPE_REQUESTED, TASK_CHANGED
from ..wire import ATTENTION_EVENTS, NOTIFICATION, NOTIFY_KINDS, WAITING
from . import text
from .channels import AppriseChannel, Channel, CommandChannel, install_filter, remove_filter

log = logging.getLogger("hive_lab.notify")

STREAM = "stream"
ESC = "+esc"
ESCALATING = ("permission", "question", "task_failed", "task_blocked", "scope_request")
URGENT = ("permission", "question", "task_failed", "task_blocked", "budget_paused")
# waiting reasons that block on the API, not on a person (rate limits, the CLI's own retries)
_API_WAITS = ("rate_limit", "overloaded")
_WATCHED = (ev.STATE_CHANGED, TASK_CHANGED, SCOPE_REQUESTED, *ATTENTION_EVENTS)
_COLUMNS = ("id, key, kind, session, task, title, body, since, event_id, created, read, "
            "escalated, resolved, delivered, attempts, next_try, last_error")


@dataclass
class NotifyConfig:
    """``c.HiveLab.notify_*``. URLs and the command may hold secrets: never in a repr."""

    urls: list[str] = field(default_factory=list, repr=False)
    command: list[str] | None = field(default=None, repr=False)
    escalate_after: float = 10.0  # minutes; 0 = never escalate
    on: tuple[str, ...] = NOTIFY_KINDS
    max_attempts: int = 6  # per sending, before giving up on a channel
    retry_base: float = 2.0  # seconds; doubled per attempt, at most retry_cap
    retry_cap: float = 300.0

    def channels(self) -> list[Channel]:
        """Parse (and so validate) every channel; raises ValueError without the secret."""
        unknown = [k for k in self.on if k not in NOTIFY_KINDS]
        if unknown:
            raise ValueError(f"notify_on: unknown kind(s) {unknown}; known: {list(NOTIFY_KINDS)}")
        out: list[Channel] = [AppriseChannel.parse(u, i) for i, u in enumerate(self.urls)]
        if self.command:
            out.append(CommandChannel.parse(self.command))
        return out


def _iso(ts: float | None) -> str | None:
    return ev.iso(ts)


class Notifier:
    """One per control plane; the facade creates it next to the orchestrator."""

    def __init__(self, db_path: Path, signals: Signals, recorder: Recorder, tracker: Tracker,
                 config: NotifyConfig | None = None) -> None:
        self.config = config or NotifyConfig()
        self._filter = install_filter(self.config.urls)  # before apprise sees (and logs) one
        self.channels = self.config.channels()
        self.recorder = recorder
        self.tracker = tracker
        self.conn = sqlite3.connect(str(db_path), timeout=5.0, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self._db = threading.RLock()  # the loop and the delivery thread share the connection
        # Where tasks and scope requests live when that is not this node's SQLite (a shared
        # store, core/sharedstore.py): the facade sets it to the orchestrator's connection.
        self.task_conn: Any = None
        self._inflight: set[int] = set()
        self._jobs: queue.Queue[int | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._cursor = 0
        self._saved_cursor = 0
        signals.stored.connect(self._on_stored)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Baseline or catch up, then go live. Call after adoption, before the spool drain."""
        self._loop = asyncio.get_running_loop()
        self._worker = threading.Thread(target=self._work, name="hive-notify", daemon=True)
        self._worker.start()
        with self._db:
            row = self.conn.execute("SELECT value FROM notify_cursor WHERE name = 'events'"
                                    ).fetchone()
            newest = int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events"
                                           ).fetchone()[0])
        if row is None:  # first start on this data: what is there now is the baseline
            self._cursor = newest
        else:
            self._cursor = int(row[0])
            for event in self._events_after(self._cursor):
                self._handle(event)
                self._cursor = max(self._cursor, event.id or 0)
            self._cursor = max(self._cursor, newest)
        self._save_cursor()
        self._started = True
        self.pump()

    def close(self) -> None:
        self._started = False
        self._jobs.put(None)
        if self._worker is not None:
            self._worker.join(timeout=2.0)
        try:
            self._save_cursor()
        except sqlite3.Error:
            pass
        remove_filter(self._filter)
        with self._db:
            self.conn.close()

    def tick(self) -> None:
        """Every second or so: escalate what is still unanswered, retry what is due."""
        if not self._started:
            return
        self.escalate()
        self.pump()
        self._save_cursor()

    def _save_cursor(self) -> None:
        if self._cursor == self._saved_cursor and self._started:
            return
        with self._db:
            self.conn.execute(
                "INSERT INTO notify_cursor (name, value) VALUES ('events', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (self._cursor,))
        self._saved_cursor = self._cursor

    # -- the policy -------------------------------------------------------------------------
    def _on_stored(self, event: Event) -> None:
        if not self._started or event.agent != ev.HIVE_AGENT:
            return
        if event.event in _WATCHED:
            self._handle(event)
        self._cursor = max(self._cursor, event.id or 0)

    def _handle(self, event: Event) -> None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.event == ev.STATE_CHANGED:
            self._on_state(event, payload)
        elif event.event == TASK_CHANGED:
            self._on_task(event, payload)
        elif event.event == SCOPE_REQUESTED:
            self._on_scope(event, payload)
        elif event.event in ATTENTION_EVENTS:
            title, body = text.attention(event.event, event.session, payload, event.summary)
            raw_key = payload.get("key")
            key = raw_key if isinstance(raw_key, str) else str(event.id)
            kind = _snake(event.event)
            self._create(kind, f"{event.event}:{event.session}:{key[:200]}",
                         _str(payload.get("session")) or None, _str(payload.get("task")) or None,
                         title, body, None, event.id)

    def _on_state(self, event: Event, payload: dict[str, Any]) -> None:
        record = payload.get("record")
        if not isinstance(record, dict) or record.get("name") != WAITING:
            return
        if record.get("reason") in _API_WAITS:
            return  # the API said "not now": no person can answer it; ProviderParked tells
        since = record.get("since")
        if not isinstance(since, (int, float)) or not self._still_waiting(event.session, since):
            return  # answered before we got to it (same batch, or found so at catch-up)
        hooks = self._hooks_before(event.session, event.id or 0)
        kind, title, body = text.waiting(event.session, record, hooks)
        self._create(kind, f"wait:{event.session}:{since:.6f}", event.session, None, title, body,
                     float(since), event.id)

    def _on_task(self, event: Event, payload: dict[str, Any]) -> None:
        task = payload.get("task")
        if not isinstance(task, dict) or not isinstance(task.get("state"), dict):
            return
        state = task["state"].get("name")
        since = task["state"].get("since")
        if state not in ("failed", "blocked") or payload.get("previous") == state:
            return
        if state == "blocked" and str(task["state"].get("reason", "")).startswith("scope"):
            return  # the scope request itself is the notification (with the glob and why)
        if state == "blocked" and str(task["state"].get("reason", "")).startswith("hold:"):
            return  # a pipeline stage between turns: its pipeline says when it needs a person
        if not isinstance(since, (int, float)) or not self._task_in(str(task.get("id")), state,
                                                                     since):
            return
        title, body = text.task(task, state)
        self._create(f"task_{state}", f"task:{task.get('id')}:{state}:{since:.6f}",
                     _str(task.get("session")) or None, str(task.get("id")), title, body,
                     float(since), event.id)

    def _on_scope(self, event: Event, payload: dict[str, Any]) -> None:
        request = payload.get("request")
        if not isinstance(request, dict) or request.get("state") != "pending":
            return
        if not isinstance(request.get("id"), int) or not self._scope_pending(request["id"]):
            return
        title, body = text.scope_request(event.session, request)
        self._create("scope_request", f"scope:{request['id']}", _str(request.get("session")) or None,
                     event.session, title, body, None, event.id)

    # the conditions: does the state that caused a notification still hold?
    def _still_waiting(self, session: str, since: float) -> bool:
        state = self.tracker.states.get(session)
        return state is not None and state.name == WAITING and abs(state.since - since) < 1e-6

    def _task_row(self, sql: str, args: tuple[Any, ...]) -> Any:
        """One row of the task tables; None when absent. A shared store that does not answer
        raises StoreUnavailable (the callers then leave things as they are)."""
        if self.task_conn is not None:
            return self.task_conn.execute(sql, args).fetchone()
        with self._db:
            return self.conn.execute(sql, args).fetchone()

    def _task_in(self, task_id: str, state: str, since: float) -> bool:
        try:
            row = self._task_row("SELECT state, state_since FROM tasks WHERE id = ?", (task_id,))
        except StoreUnavailable:
            return True  # unknown while the store is away: neither drop nor resolve it
        return row is not None and row[0] == state and abs(float(row[1]) - since) < 1e-6

    def _scope_pending(self, request_id: int) -> bool:
        try:
            row = self._task_row("SELECT state FROM scope_requests WHERE id = ?", (request_id,))
        except StoreUnavailable:
            return True
        return row is not None and row[0] == "pending"

    def _holds(self, row: dict[str, Any]) -> bool:
        kind = row["kind"]
        if kind in ("permission", "question"):
            return row["session"] is not None and self._still_waiting(row["session"], row["since"])
        if kind in ("task_failed", "task_blocked"):
            return self._task_in(row["task"], kind[5:], row["since"])
        if kind == "scope_request":
            return self._scope_pending(int(row["key"].split(":", 1)[1]))
        return False

    def _hooks_before(self, session: str, event_id: int) -> list[dict[str, Any]]:
        """The agent's last few hook payloads before ``event_id``, newest first."""
        with self._db:
            rows = self.conn.execute(
                "SELECT payload FROM events WHERE session = ? AND agent != ? AND id < ?"
                " ORDER BY id DESC LIMIT 8", (session, ev.HIVE_AGENT, event_id)).fetchall()
        out = []
        for (raw,) in rows:
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(data)
        return out

    def _events_after(self, cursor: int) -> list[Event]:
        marks = ",".join("?" * len(_WATCHED))
        with self._db:
            rows = self.conn.execute(
                f"SELECT id, key, session, agent, event, payload, fired, summary FROM events"
                f" WHERE id > ? AND agent = ? AND event IN ({marks}) ORDER BY id",
                (cursor, ev.HIVE_AGENT, *_WATCHED)).fetchall()
        return [Event(id=r[0], key=r[1], session=r[2], agent=r[3], event=r[4],
                      payload=json.loads(r[5]), time=r[6], summary=r[7]) for r in rows]

    def _create(self, kind: str, key: str, session: str | None, task: str | None, title: str,
                body: str, since: float | None, event_id: int | None) -> None:
        if kind not in self.config.on:
            return
        now = time.time()
        with self._db:
            cur = self.conn.execute(
                "INSERT INTO notifications (key, kind, session, task, title, body, since,"
                " event_id, created, next_try) VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (key) DO NOTHING",
                (key, kind, session, task, title, body, since, event_id, now, now))
            created = cur.rowcount == 1
        if created:
            log.info("notification %s: %s", kind, title)
            self._soon(self.pump)

    def _soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop, after the current publish pass (the stream stays in order)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    # -- escalation -------------------------------------------------------------------------
    def escalate(self, now: float | None = None) -> int:
        """Send once more what is still unanswered after ``escalate_after`` minutes."""
        minutes = self.config.escalate_after
        if minutes <= 0:
            return 0
        now = time.time() if now is None else now
        marks = ",".join("?" * len(ESCALATING))
        with self._db:
            rows = self._rows(f"escalated IS NULL AND resolved IS NULL AND read IS NULL"
                              f" AND kind IN ({marks}) AND created <= ?",
                              (*ESCALATING, now - minutes * 60))
        sent = 0
        for row in rows:
            holds = self._holds(row)
            with self._db:
                if holds:
                    self.conn.execute("UPDATE notifications SET escalated = ?, attempts = 0,"
                                      " next_try = ? WHERE id = ?", (now, now, row["id"]))
                else:
                    self.conn.execute("UPDATE notifications SET resolved = ? WHERE id = ?",
                                      (now, row["id"]))
            sent += holds
        return sent

    # -- delivery -----------------------------------------------------------------------------
    def _targets(self, row: dict[str, Any]) -> list[str]:
        base = [STREAM, *(c.id for c in self.channels)]
        targets = list(base) + ([t + ESC for t in base] if row["escalated"] else [])
        done = set(row["delivered"])
        return [t for t in targets if t not in done]

    def pump(self) -> None:
        """On the loop: write due stream events, hand the rest to the delivery thread."""
        if not self._started:
            return
        with self._db:
            rows = self._rows("next_try IS NOT NULL AND next_try <= ?", (time.time(),))
        for row in rows:
            if row["id"] in self._inflight:
                continue
            for target in self._targets(row):
                if target in (STREAM, STREAM + ESC):
                    self._stream(row, escalation=target.endswith(ESC))
                    self._mark(row["id"], target)
            row = self._row(row["id"])
            if any(t not in (STREAM, STREAM + ESC) for t in self._targets(row)):
                self._inflight.add(row["id"])
                self._jobs.put(row["id"])
            else:
                self._finish(row, failed=[])

    def _stream(self, row: dict[str, Any], escalation: bool) -> None:
        title, body = self._text(row, escalation)
        data = {**self._json(row), "title": title, "body": body}
        summary = title if len(title) <= 200 else title[:199] + "…"
        self.recorder.record_now([ev.internal(row["session"] or row["task"] or ev.HIVE_AGENT,
                                              NOTIFICATION,
                                              {"notification": data, "escalation": escalation},
                                              summary)])

    def _text(self, row: dict[str, Any], escalation: bool) -> tuple[str, str]:
        if escalation:
            return text.escalation(row["title"], row["body"], self.config.escalate_after)
        return row["title"], row["body"]

    def _work(self) -> None:
        """The delivery thread: one notification at a time, every pending channel."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._deliver(job)
            except Exception:
                log.exception("delivering notification %s failed", job)
            finally:
                self._inflight.discard(job)

    def _deliver(self, notification_id: int) -> None:
        with self._db:
            row = self._row(notification_id)
        failed: list[str] = []
        by_id = {c.id: c for c in self.channels}
        for target in self._targets(row):
            channel = by_id.get(target.removesuffix(ESC))
            if channel is None:
                continue
            escalation = target.endswith(ESC)
            title, body = self._text(row, escalation)
            data = {"id": row["id"], "kind": row["kind"], "session": row["session"],
                    "task": row["task"], "escalation": escalation,
                    "urgent": row["kind"] in URGENT, "created": _iso(row["created"])}
            outcome = channel.send(title, body, data)
            if outcome.ok:
                self._mark(notification_id, target)
            else:
                failed.append(f"{channel.label}: {outcome.error}")
                log.warning("notification %d not delivered to %s (attempt %d): %s",
                            notification_id, channel.label, row["attempts"] + 1, outcome.error)
        self._finish(self._row(notification_id), failed)

    def _finish(self, row: dict[str, Any], failed: list[str]) -> None:
        """Schedule what is left: nothing, a retry with backoff, or give up."""
        now = time.time()
        left = self._targets(row)
        attempts = row["attempts"] + (1 if failed else 0)
        error = "; ".join(failed)[:500] if failed else row["last_error"]
        if not left:
            next_try = None
        elif not failed:
            next_try = now  # new targets appeared meanwhile (an escalation)
        elif attempts >= self.config.max_attempts:
            next_try, error = None, f"gave up after {attempts} attempts: {error}"[:500]
        else:
            next_try = now + min(self.config.retry_cap, self.config.retry_base * 2 ** (attempts - 1))
        with self._db:
            self.conn.execute("UPDATE notifications SET attempts = ?, next_try = ?, last_error = ?"
                              " WHERE id = ?", (attempts, next_try, error, row["id"]))
        if next_try is not None and not failed:
            self._soon(self.pump)

    def _mark(self, notification_id: int, target: str) -> None:
        """Record one channel as done at once: a crash after this never sends it again."""
        with self._db:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                raw = self.conn.execute("SELECT delivered FROM notifications WHERE id = ?",
                                        (notification_id,)).fetchone()[0]
                done = json.loads(raw)
                if target not in done:
                    done.append(target)
                self.conn.execute("UPDATE notifications SET delivered = ? WHERE id = ?",
                                  (json.dumps(done), notification_id))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    # -- rows and the API ---------------------------------------------------------------------
    def _rows(self, where: str, args: tuple[Any, ...], order: str = "id",
              limit: int = 1000) -> list[dict[str, Any]]:
        cols = [c.strip() for c in _COLUMNS.split(",")]
        with self._db:
            rows = self.conn.execute(f"SELECT {_COLUMNS} FROM notifications WHERE {where}"
                                     f" ORDER BY {order} LIMIT ?", (*args, limit)).fetchall()
        out = []
        for r in rows:
            row = dict(zip(cols, r))
            row["delivered"] = json.loads(row["delivered"])
            out.append(row)
        return out

    def _row(self, notification_id: int) -> dict[str, Any]:
        rows = self._rows("id = ?", (notification_id,))
        if not rows:
            raise NotFound(f"no notification {notification_id}")
        return rows[0]

    def _json(self, row: dict[str, Any]) -> dict[str, Any]:
        labels = {STREAM: "stream", **{c.id: c.label for c in self.channels}}
        delivered = []
        for target in row["delivered"]:
            base = target.removesuffix(ESC)
            label = labels.get(base, "(a channel no longer configured)")
            delivered.append(label + (" (escalation)" if target.endswith(ESC) else ""))
        return {"id": row["id"], "key": row["key"], "kind": row["kind"],
                "session": row["session"], "task": row["task"], "title": row["title"],
                "body": row["body"], "created": _iso(row["created"]), "read": _iso(row["read"]),
                "escalated": _iso(row["escalated"]), "resolved": _iso(row["resolved"]),
                "delivered": delivered, "attempts": row["attempts"],
                "pending": row["next_try"] is not None, "last_error": row["last_error"]}

    def recent(self, unread: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """Unread first, newest first within each."""
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise BadRequest("limit must be an integer from 1 to 1000")
        with self._db:
            rows = self._rows("read IS NULL" if unread else "1 = 1", (),
                              order="(read IS NOT NULL), id DESC", limit=limit)
        return [self._json(r) for r in rows]

    def get(self, notification_id: int) -> dict[str, Any]:
        with self._db:
            return self._json(self._row(notification_id))

    def mark_read(self, notification_id: Any) -> dict[str, Any]:
        """Mark as read (idempotent: the first time is kept). A read one is not escalated."""
        if not isinstance(notification_id, int) or isinstance(notification_id, bool):
            raise BadRequest("notification id must be an integer")
        with self._db:
            self._row(notification_id)
            self.conn.execute("UPDATE notifications SET read = COALESCE(read, ?) WHERE id = ?",
                              (time.time(), notification_id))
            return self._json(self._row(notification_id))

    def describe_channels(self) -> dict[str, Any]:
        """The configuration as the API shows it: URLs redacted, the command by its name."""
        return {"channels": [{"id": c.id, "label": c.label,
                              "type": "command" if isinstance(c, CommandChannel) else "apprise"}
                             for c in self.channels],
                "escalate_after": self.config.escalate_after, "on": list(self.config.on)}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out
