"""Budgets at run time: count spend as usage arrives, and enforce every limit for real.

The keeper subscribes to ``signals.usage`` (a session has new rows; the rows themselves are in
``UsageMonitor.fresh`` during the emit) and counts each row once into three meters (its
session, its profile, the fleet), taking a replaced copy back out, so replays and re-reads
never count twice. Every tick (the facade's loop, and at once after a limit changes) it
evaluates the limits of every live session and acts, level-triggered:

- warn_at reached (or a price unknown): one ``BudgetWarning`` per limit and window;
- 100%: the session is *paused*: its decider denies PreToolUse and UserPromptSubmit with the
  reason, its task goes to ``paused`` (reason ``budget``), and if it still works after the
  grace it is interrupted (the profile's ``interrupt`` keys; at once for agents without hooks);
- the ceiling (150%): the session is ended, its worktree and branch kept;
- back under 100% (a limit raised, a window rolled over): resumed, the agent told to go on.

Pauses and warnings are marked in the store, so a restart keeps them. So are the lives of
sessions (start, end, and a heartbeat while alive; ``budget_marks`` rows of kind ``life``):
wall-clock minutes of the fleet and of each profile count sessions from before a restart,
a re-adopted session (same name, same start) is the same life, and one that died while the
server was down ends at its last heartbeat, not at the restart.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..core import events as ev
from ..core.decisions import Deciders, HookContext, Verdict
from ..core.errors import HiveError
from ..core.recorder import Recorder
from ..core.sessions import SessionManager
from ..core.signals import Signals
from ..core.status import EXITED, WORKING
from ..core.usagemonitor import UsageMonitor
from ..usage.parse import UsageRow
from ..wire import BUDGET_CEILING, BUDGET_PAUSED, BUDGET_RESUMED, BUDGET_WARNING
from .budgets import (FLEET_KEY, LEVEL_RANK, BudgetConfig, BudgetStatus, BudgetUpdate, Limit,
                      Mark, Meter, evaluate, limit_from_json, overlap_minutes)
from .runtime import Orchestrator
from .tasks import RUNNING, WAITING

log = logging.getLogger("hive_lab.budgets")

HEARTBEAT = 10.0  # s between stored "still alive" marks of a live session (its minutes'
# overcount bound when it dies while the server is down)

TOOL_USE_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")
DENIED_EVENTS = frozenset({"PreToolUse", "UserPromptSubmit", "BeforeTool", "BeforeAgent"})
RESUME_TEXT = ("Hive Lab: your budget was raised. Continue the task where you stopped.")


@dataclass
class Pause:
    """A session held at its budget: what stopped it, and what the keeper did since."""

    since: float
    reason: str
    limits: list[str]
    agent: str
    task: str | None = None
    rows_at: int = 0  # the session's row count when paused (or last interrupted)
    interrupted: float | None = None
    ended: bool = False
    grace_rows: int | None = None  # the row count when the grace ran out

    def to_json(self) -> dict[str, Any]:
        return {"reason": "budget", "detail": self.reason, "limits": self.limits,
                "since": ev.iso(self.since), "task": self.task, "ended": self.ended,
                "interrupted": ev.iso(self.interrupted) if self.interrupted else None}


@dataclass
class Subject:
    """Whom limits apply to in one tick: a live session, or a paused task whose session ended."""

    name: str
    agent: str
    task: str | None
    live: bool
    hooks: bool = True


class BudgetKeeper:
    def __init__(self, db_path: Path, sessions: SessionManager, usage: UsageMonitor,
                 recorder: Recorder, signals: Signals, deciders: Deciders, tasks: Orchestrator,
                 config: BudgetConfig, grace: float = 20.0,
                 clock: Callable[[], float] = time.time, transcript_wait: float = 0.5) -> None:
        self.conn = sqlite3.connect(str(db_path), timeout=5.0, check_same_thread=False,
                                    isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.sessions = sessions
        self.usage = usage
        self.recorder = recorder
        self.tasks = tasks
        self.config = config
        self.grace = grace
        self.transcript_wait = transcript_wait  # s a PreToolUse near a limit waits for its line
        self._biggest: dict[str, tuple[float, int]] = {}  # session -> its largest row (the
        # next response is assumed no bigger: "near" a limit is within one such response)
        self.clock = clock
        self.meters: dict[tuple[str, str], Meter] = {}
        self._counted: dict[tuple[str, ...], list[tuple[Meter, Mark]]] = {}
        self._agent_of: dict[str, str] = {}
        self._lives: dict[str, list[Any]] = {}  # session -> [start, end | None, agent]
        self._ended: list[list[Any]] = []  # earlier lives of reused names: [start, end, agent]
        self._seen: dict[str, float] = {}  # session -> its life's last stored heartbeat
        self._unsure: set[str] = set()  # lives loaded open: alive, or died while we were down
        self.fleet: tuple[Limit, ...] | None = None  # live override (PUT budgets)
        self.profiles: dict[str, tuple[Limit, ...]] = {}
        self.paused: dict[str, Pause] = {}
        self._warned: set[tuple[str, str, str]] = set()
        self.statuses: dict[str, BudgetStatus] = {}
        self._primed = False
        self._subjects_seen: dict[str, Subject] = {}
        self._lives_by: dict[str, list[tuple[float, float | None]]] = {}
        self._load()
        signals.usage.connect(self._on_usage)
        deciders.register(self._decide)
        deciders.register_preparer(self._prepare)

    def close(self) -> None:
        self.conn.close()

    # -- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        for scope, key, limits in self.conn.execute("SELECT scope, key, limits FROM budgets"):
            parsed = tuple(limit_from_json(d) for d in json.loads(limits))
            if scope == "fleet":
                self.fleet = parsed
            elif scope == "profile":
                self.profiles[key] = parsed
        lives: dict[str, list[list[Any]]] = {}
        for kind, subject, period, detail in self.conn.execute(
                "SELECT kind, subject, period, detail FROM budget_marks"):
            if kind == "life":
                self._load_life(lives, subject, period, detail)
            elif kind == "paused":
                self.paused[subject] = Pause(**json.loads(detail))
            else:
                self._warned.add((kind, subject, period))

    def _load_life(self, lives: dict[str, list[list[Any]]], name: str, period: str,
                   detail: str) -> None:
        try:
            data = json.loads(detail)
            start, end, seen = float(period), data.get("end"), data.get("seen")
            life: list[Any] = [start, float(end) if end is not None else None, str(data["agent"])]
        except (ValueError, KeyError, TypeError):
            return
        newest = self._lives.get(name)
        if newest is None or newest[0] < start:
            if newest is not None:
                self._ended.append(self._closed(newest, self._seen.get(name)))
            self._lives[name] = life
            self._agent_of[name] = str(life[2])
            if seen is not None:
                self._seen[name] = float(seen)
            if life[1] is None:
                self._unsure.add(name)
            else:
                self._unsure.discard(name)
        else:
            self._ended.append(self._closed(life, seen))

    @staticmethod
    def _closed(life: list[Any], seen: float | None) -> list[Any]:
        if life[1] is None:  # an older life left open: it ended by its last heartbeat
            life[1] = max(life[0], seen if seen is not None else life[0])
        return life

    def _save_life(self, name: str, life: list[Any], seen: float | None = None) -> None:
        detail: dict[str, Any] = {"agent": life[2], "end": life[1]}
        if seen is not None:
            detail["seen"] = seen
            self._seen[name] = seen
        self._mark("life", name, repr(float(life[0])), detail)

    def _mark(self, kind: str, subject: str, period: str, detail: dict[str, Any]) -> None:
        self.conn.execute("INSERT OR REPLACE INTO budget_marks (kind, subject, period, at, detail)"
                          " VALUES (?, ?, ?, ?, ?)",
                          (kind, subject, period, self.clock(), json.dumps(detail)))

    def _unmark(self, kind: str, subject: str) -> None:
        self.conn.execute("DELETE FROM budget_marks WHERE kind = ? AND subject = ?", (kind, subject))

    # -- counting ----------------------------------------------------------------------------
    def meter(self, scope: str, key: str) -> Meter:
        m = self.meters.get((scope, key))
        if m is None:
            m = self.meters[(scope, key)] = Meter()
        return m

    def _on_usage(self, session: str) -> None:
        rows = self.usage.fresh.get(session) or []
        agent = self._agent(session)
        for row in rows:
            self.ingest(session, agent, row)

    def _agent(self, session: str) -> str:
        s = self.sessions.sessions.get(session)
        if s is not None:
            self._agent_of[session] = s.agent
        return self._agent_of.get(session, "unknown")

    def ingest(self, session: str, agent: str, row: UsageRow) -> None:
        """Count one row (new, or a fuller copy of one already counted) into its meters."""
        key = row.key
        full = (session, *key) if key is not None else None
        if full is not None:
            for meter, mark in self._counted.pop(full, ()):
                meter.remove(mark)
        t = row.time.timestamp()
        big = self._biggest.get(session, (0.0, 0))
        self._biggest[session] = (max(big[0], row.cost or 0.0), max(big[1], row.total_tokens))
        marks = [(m, m.add(t, row.cost, row.total_tokens)) for m in (
            self.meter("session", session), self.meter("profile", agent),
            self.meter("fleet", FLEET_KEY))]
        if full is not None:
            self._counted[full] = marks

    def ingest_remote(self, node: str, session: str, agent: str, key: str, t: float,
                      dollars: float | None, tokens: int) -> None:
        """Count a row another control server published (fleetusage.py) into the profile and
        fleet meters only (its sessions are not ours); a copy replaces the one counted before."""
        full = ("@remote", node, session, key)
        for meter, mark in self._counted.pop(full, ()):
            meter.remove(mark)
        self._counted[full] = [(m, m.add(t, dollars, tokens)) for m in (
            self.meter("profile", agent), self.meter("fleet", FLEET_KEY))]

    # -- the limits in force -----------------------------------------------------------------
    def fleet_limits(self) -> tuple[Limit, ...]:
        return self.fleet if self.fleet is not None else self.config.fleet

    def profile_limits(self, profile: str) -> tuple[Limit, ...]:
        if profile in self.profiles:
            return self.profiles[profile]
        return tuple(self.config.profiles.get(profile, ()))

    def limits_for(self, subject: Subject) -> list[Limit]:
        out: list[Limit] = []
        if self.config.session is not None:
            out.append(replace(self.config.session, key=subject.name))
        if subject.task:
            task = self.tasks.task_record(subject.task)
            limit = self.config.task_limit(subject.task, task.budget if task else None)
            if limit is not None:
                out.append(limit)
        out.extend(self.profile_limits(subject.agent))
        out.extend(self.fleet_limits())
        return out

    def measure(self, limit: Limit, now: float) -> BudgetStatus:
        if limit.scope in ("session", "task"):
            meter = self.meter("session", limit.key)
            spend, start, end = meter.window("none", now)
            if limit.scope == "task":
                task = self.tasks.task_record(limit.key)
                lives = [(a.started, a.ended) for a in (task.attempts if task else [])
                         if a.started is not None]
            else:
                life = self._lives.get(limit.key)
                lives = [(life[0], life[1])] if life else []
            minutes = overlap_minutes(lives, None, now)
            live = sum(1 for _, e in lives if e is None)
        else:
            key = FLEET_KEY if limit.scope == "fleet" else limit.key
            meter = self.meter(limit.scope, key)
            spend, start, end = meter.window(limit.window, now)
            if limit.window == "5h" and start is None:
                start, end = now, None  # no active block: the next row starts one
            lives = self._lives_by.get(key) or []
            lo = start if limit.window != "none" else None
            minutes = overlap_minutes(lives, lo, now)
            live = sum(1 for _, e in lives if e is None)
        return evaluate(limit, spend, minutes, now, meter.rate(now), live / 60.0, start, end)

    # -- the tick ----------------------------------------------------------------------------
    def _subjects(self, now: float) -> list[Subject]:
        out: dict[str, Subject] = {}
        beat: list[str] = []
        for name, s in self.sessions.sessions.items():
            state = self.sessions.tracker.get(name)
            exited = state.name == EXITED
            life = self._lives.get(name)
            if life is None or life[0] != s.created:
                if life is not None:  # the name's earlier life (a task's previous attempt)
                    self._ended.append(self._closed(life, self._seen.get(name)))
                life = self._lives[name] = [s.created, None, s.agent]
                self._unsure.discard(name)
                self._save_life(name, life, now)
            if exited and life[1] is None:
                self._end_life(name, life, state.since if state.since else now, now)
            elif not exited and now - self._seen.get(name, 0.0) >= HEARTBEAT:
                beat.append(name)
            self._unsure.discard(name)
            self._agent_of[name] = s.agent
            if not exited:
                profile = self.sessions.profiles.get(s.agent)
                hooked = bool(profile and profile.hooks) or s.external
                out[name] = Subject(name, s.agent, s.task, True, hooked)
        for name, life in self._lives.items():
            if name not in self.sessions.sessions and life[1] is None:
                self._end_life(name, life, now, now)
        if beat:
            self.conn.execute("BEGIN")
            try:
                for name in beat:
                    self._save_life(name, self._lives[name], now)
            finally:
                self.conn.execute("COMMIT")
        for name, pause in list(self.paused.items()):
            if name in out:
                continue
            if pause.task is None:  # a plain session removed while paused: nothing to resume
                del self.paused[name]
                self._unmark("paused", name)
                continue
            out[name] = Subject(name, pause.agent, pause.task, False)
        return list(out.values())

    def _end_life(self, name: str, life: list[Any], end: float, now: float) -> None:
        """End a life; one loaded open from the store that is not alive now died while the
        server was down: it ended at its last heartbeat (the exit seen at restart is later)."""
        if name in self._unsure:
            self._unsure.discard(name)
            seen = self._seen.get(name)
            if seen is not None:
                end = min(end, seen)
        life[1] = max(life[0], min(end, now))
        self._save_life(name, life)

    def evaluate_all(self, now: float) -> tuple[dict[str, BudgetStatus], dict[str, list[str]]]:
        """Every limit in force, measured once; and which limits apply to which subject."""
        statuses: dict[str, BudgetStatus] = {}
        applies: dict[str, list[str]] = {}
        subjects = self._subjects(now)
        self._lives_by = {FLEET_KEY: []}
        for life in [*self._ended, *self._lives.values()]:
            pair = (life[0], life[1])
            self._lives_by[FLEET_KEY].append(pair)
            self._lives_by.setdefault(life[2], []).append(pair)
        for subject in subjects:
            ids = []
            for limit in self.limits_for(subject):
                if limit.id not in statuses:
                    statuses[limit.id] = self.measure(limit, now)
                ids.append(limit.id)
            applies[subject.name] = ids
        for limit in [*self.fleet_limits(), *[lim for p in self._all_profiles()
                                             for lim in self.profile_limits(p)]]:
            if limit.id not in statuses:
                statuses[limit.id] = self.measure(limit, now)
        self.statuses = statuses
        self._subjects_seen = {s.name: s for s in subjects}
        return statuses, applies

    def _all_profiles(self) -> list[str]:
        return sorted(set(self.config.profiles) | set(self.profiles))

    async def tick(self) -> None:
        if not self._primed:  # after a (re)start: count what the transcripts hold first
            self._primed = True
            await self.usage.poll()
        now = self.clock()
        statuses, applies = self.evaluate_all(now)
        for status in statuses.values():
            self._warn(status)
        for name, ids in applies.items():
            subject = self._subjects_seen[name]
            mine = [statuses[i] for i in ids]
            over = [s for s in mine if LEVEL_RANK[s.level] >= LEVEL_RANK["paused"]]
            try:
                if over:
                    await self._hold(subject, over, now)
                elif name in self.paused:
                    await self._resume(subject, now)
            except HiveError as exc:
                log.warning("budget action on %s: %s", name, exc.detail)

    def _warn(self, status: BudgetStatus) -> None:
        period = "" if status.start is None or status.limit.window == "none" \
            else str(int(status.start))
        lim = status.limit
        subject = "fleet" if lim.scope == "fleet" else lim.key
        if status.unknown_cost and ("unknown", lim.id, period) not in self._warned:
            self._warned.add(("unknown", lim.id, period))
            self._mark("unknown", lim.id, period, {})
            self._event(subject, BUDGET_WARNING, {"budget": status.to_json(), "why": "unknown_price"},
                        f"budget {lim.describe()}: dollars unknown (a model without a known "
                        f"price); the dollar limit counts only known prices")
        if LEVEL_RANK[status.level] >= LEVEL_RANK["warn"] and ("warn", lim.id, period) \
                not in self._warned:
            self._warned.add(("warn", lim.id, period))
            self._mark("warn", lim.id, period, {})
            self._event(subject, BUDGET_WARNING, {"budget": status.to_json(), "why": "warn_at"},
                        f"budget at {status.fraction:.0%}: {status.summary()}"[:200])

    async def _hold(self, subject: Subject, over: list[BudgetStatus], now: float) -> None:
        name = subject.name
        pause = self.paused.get(name) or self._enter_pause(subject, over, now)
        if subject.task:
            task = self.tasks.task_record(subject.task)
            if task is not None and task.state in (RUNNING, WAITING):
                await self.tasks.pause_task(subject.task, f"budget: {pause.reason}"[:500])
        if not subject.live:
            return
        ceiling = [s for s in over if s.level == "ceiling"]
        if ceiling and not pause.ended:
            await self._end(subject, pause, ceiling)
            return
        self._maybe_interrupt(subject, pause, now)

    def _enter_pause(self, subject: Subject, over: list[BudgetStatus], now: float) -> Pause:
        """Hold a session (sync: the hook-time check calls it too); the tick does the rest."""
        name = subject.name
        reason = "; ".join(s.summary() for s in over)
        pause = self.paused[name] = Pause(
            since=now, reason=reason, limits=[s.limit.id for s in over], agent=subject.agent,
            task=subject.task, rows_at=self.meter("session", name).total.rows)
        self._mark("paused", name, "", asdict(pause))
        self._event(name, BUDGET_PAUSED, {"budget": [s.to_json() for s in over],
                                          "task": subject.task, "reason": reason},
                    f"paused at its budget: {reason}"[:200])
        return pause

    def _maybe_interrupt(self, subject: Subject, pause: Pause, now: float) -> None:
        """A paused session that still works after the grace (or has no hooks) is interrupted."""
        rows = self.meter("session", subject.name).total.rows
        working = self.sessions.tracker.get(subject.name).name == WORKING
        if subject.hooks:  # its hooks are denied: only a turn that goes on past the grace
            if now - (pause.interrupted or pause.since) < self.grace:
                return
            if pause.grace_rows is None:
                pause.grace_rows = rows  # a response in flight at the pause may still land
                if not working:
                    return
            elif rows <= pause.grace_rows and not working:
                return
        elif pause.interrupted is not None and rows <= pause.rows_at:
            return  # no hooks: interrupted at once, again only if it spends again
        session = self.sessions.sessions.get(subject.name)
        profile = self.sessions.profiles.get(subject.agent)
        if session is None or session.pane_id is None:
            return
        keys = list((profile.answers.get("interrupt") if profile else None) or ("C-c",))
        self.sessions.send_keys(subject.name, keys)
        pause.interrupted, pause.rows_at, pause.grace_rows = now, rows, None
        self._mark("paused", subject.name, "", asdict(pause))
        log.info("session %s: interrupted at its budget with %s", subject.name, keys)

    async def _end(self, subject: Subject, pause: Pause, ceiling: list[BudgetStatus]) -> None:
        reason = "; ".join(s.summary() for s in ceiling)
        pause.ended = True
        pause.reason = f"ceiling: {reason}"
        self._mark("paused", subject.name, "", asdict(pause))
        result = await self.sessions.kill(subject.name, keep_worktree=True)
        if subject.task:
            await self.tasks.end_attempt(subject.task, "budget_ceiling", pause.reason)
        self._event(subject.name, BUDGET_CEILING, {"budget": [s.to_json() for s in ceiling],
                                                   "task": subject.task, "reason": reason,
                                                   "kill": result},
                    f"ended at the budget ceiling (worktree kept): {reason}"[:200])

    async def _resume(self, subject: Subject, now: float) -> None:
        pause = self.paused.pop(subject.name)
        self._unmark("paused", subject.name)
        self._event(subject.name, BUDGET_RESUMED, {"task": subject.task, "was": pause.to_json()},
                    "budget raised: resumed" + (" (session was ended; the task starts again)"
                                               if pause.ended else ""))
        if subject.task:
            await self.tasks.resume_task(subject.task, "budget raised: resumed", RESUME_TEXT,
                                         alive=subject.live and not pause.ended)
        elif subject.live:
            await self.sessions.deliver_when_ready(subject.name, RESUME_TEXT)

    # -- the decider -------------------------------------------------------------------------
    def _decide(self, ctx: HookContext) -> Verdict | None:
        if ctx.event not in DENIED_EVENTS:
            return None
        pause = self.paused.get(ctx.session) or self.check_now(ctx.session)
        if pause is None:
            return None
        if pause.task:
            how = f'PATCH tasks/{pause.task} with a larger "budget"'
        elif any(i.startswith(("fleet:", "profile:")) for i in pause.limits):
            how = "PUT budgets with a larger limit"
        else:
            how = "raise c.HiveLab.budgets"
        return Verdict("deny", f"Hive Lab paused this agent at its budget ({pause.reason}). "
                               f"Stop here; it resumes when a person raises it ({how}).", "budget")

    async def _prepare(self, ctx: HookContext) -> None:
        """A Claude Code PreToolUse near a limit waits (up to ``transcript_wait``) until the
        line of the response that asks for the tool is in the transcript, so the decision
        counts that response: its tool call is denied if it crossed the limit. Far from
        every limit (or already paused) it does not wait."""
        tool_use = ctx.payload.get("tool_use_id")
        if ctx.event != "PreToolUse" or ctx.kind != "claude" or ctx.session in self.paused \
                or not isinstance(tool_use, str) or not TOOL_USE_ID.fullmatch(tool_use):
            return
        needle = f'"{tool_use}"'.encode()
        if not self._near(ctx.session) or self.usage.mentions(ctx.session, needle):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.transcript_wait
        while loop.time() < deadline:
            await asyncio.sleep(0.02)
            if self.usage.mentions(ctx.session, needle):
                return
        log.info("session %s: the line of tool call %s was not written in %.1f s", ctx.session,
                 tool_use, self.transcript_wait)

    def _near(self, name: str) -> bool:
        """Could one more response of this session (as big as its biggest) cross a limit?"""
        session = self.sessions.sessions.get(name)
        if session is None:
            return False
        limits = self.limits_for(Subject(name, session.agent, session.task, True))
        if not limits:
            return False
        self.usage.catch_up(name)
        dollars, tokens = self._biggest.get(name, (0.0, 0))
        now = self.clock()
        for limit in limits:
            status = self.measure(limit, now)
            if LEVEL_RANK[status.level] >= LEVEL_RANK["paused"]:
                return True
            if limit.dollars is not None and \
                    float(status.used["dollars"]) + dollars >= limit.dollars:
                return True
            if limit.tokens is not None and int(status.used["tokens"]) + tokens >= limit.tokens:
                return True
        return False

    def check_now(self, name: str) -> Pause | None:
        """Before a blocking hook is answered: read the session's transcript up to now and
        measure its limits, pausing on the spot if one is crossed. Agents write a response's
        transcript line before they ask to run its tool, so the tool call of the response
        that crossed the limit is the first one denied (the periodic read lags by up to
        ``usage_interval``; several calls ran in that lag before)."""
        session = self.sessions.sessions.get(name)
        if session is None:
            return None
        subject = Subject(name, session.agent, session.task, True)
        limits = self.limits_for(subject)
        if not limits:
            return None
        self.usage.catch_up(name)
        now = self.clock()
        over = [st for st in (self.measure(limit, now) for limit in limits)
                if LEVEL_RANK[st.level] >= LEVEL_RANK["paused"]]
        if not over:
            return None
        return self.paused.get(name) or self._enter_pause(subject, over, now)

    # -- the API -----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        statuses, _ = self.evaluate_all(self.clock())
        return {"budgets": [s.to_json() for s in statuses.values()],
                "paused": {name: p.to_json() for name, p in self.paused.items()},
                "windows": {"day": "UTC calendar day", "5h": "rolling 5-hour billing block"}}

    def paused_json(self, name: str) -> dict[str, Any] | None:
        pause = self.paused.get(name)
        return pause.to_json() if pause else None

    async def update(self, body: Any) -> dict[str, Any]:
        """``PUT budgets``: everything is validated before anything is stored."""
        update = BudgetUpdate.parse(body, self.config)
        now = self.clock()
        if update.fleet is not None or update.fleet_cleared:
            self.fleet = update.fleet
            self._store("fleet", FLEET_KEY, update.fleet, now)
        for name, limits in update.profiles.items():
            if limits:
                self.profiles[name] = limits
                self._store("profile", name, limits, now)
            else:
                self.profiles.pop(name, None)
                self._store("profile", name, None, now)
        await self.tick()
        return self.report()

    def _store(self, scope: str, key: str, limits: tuple[Limit, ...] | None, now: float) -> None:
        if limits is None:
            self.conn.execute("DELETE FROM budgets WHERE scope = ? AND key = ?", (scope, key))
        else:
            self.conn.execute("INSERT OR REPLACE INTO budgets (scope, key, limits, updated) "
                              "VALUES (?, ?, ?, ?)",
                              (scope, key, json.dumps([lim.to_json() for lim in limits]), now))

    def _event(self, session: str, name: str, payload: dict[str, Any], summary: str) -> None:
        self.recorder.record_now([ev.internal(session, name, payload, summary)])
