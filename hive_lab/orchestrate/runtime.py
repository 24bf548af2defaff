"""The orchestrator at run time: tasks become sessions, turns become checks, writes meet scopes.

Level-triggered: every :meth:`Orchestrator.tick` re-reads the tasks from the store and the
sessions from the core, reconciles the two, asks the pure planner what to start, and starts
it. Nothing depends on catching an edge, so a restart loses nothing: a running task finds its
re-adopted session again, a task whose session is gone is retried, a check that was running is
run again. A task's session is named after the task, so tmux itself refuses a second one, and
the claim (one conditional UPDATE with a generation) decides who starts it.

It plugs into the core the two documented ways: it subscribes to :class:`~hive_lab.core.
signals.Signals` (git refreshes for the backstop audit, scope requests, unguarded hooks) and
registers a decider for blocking hooks (the pre-tool guard). Every change of a task is a
``TaskChanged`` event on the same stream as everything else, with its reason.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..core import events as ev
from ..core.decisions import Deciders, HookContext, Verdict
from ..core.errors import BadRequest, Conflict, Forbidden, HiveError
from ..core.names import validate_name
from ..core.events import Event
from ..core.gitmonitor import GitMonitor
from ..core.recorder import Recorder
from ..core.sessions import Session, SessionManager, SpawnRequest
from ..core.signals import Signals
from ..core.status import (ERROR as S_ERROR, EXITED, IDLE, PROMPT_TAKEN_HOOKS, STARTING,
                           WAITING as S_WAITING, WORKING)
from ..core.store import Store
from ..core.errors import StoreUnavailable
from ..core.sharedstore import connect_store
from . import claims, guard, prompts, scopes, taskstore
from .errors import StaleGeneration
from .audit import audit
from .checks import CheckResult, run_check
from .planner import Limits, ProfileInfo, RunningInfo, plan
from .recovering import RATE_REASONS, Recovery
from .recovery import AUTH, CRASH, RecoveryConfig, decide_retry
from .tasks import (ACTIVE, BLOCKED, CANCELED, CHECKING, DONE, FAILED, PAUSED, PENDING, READY,
                    RUNNING, TERMINAL, WAITING, Attempt, Task, TaskPatch, TaskSpec, check_dependencies,
                    transition)

log = logging.getLogger("hive_lab.orchestrate")

TASK_CHANGED = "TaskChanged"
SCOPE_VIOLATION = "ScopeViolation"
SCOPE_REQUESTED = "ScopeRequested"
CHECK_RAN = "CheckRan"
STORE_UNREACHABLE = "StoreUnreachable"  # the shared store went away (payload: store, since)
STORE_REACHABLE = "StoreReachable"  # ... and answers again (payload: store, down_since)
SCOPE_REQUEST_HOOK = "ScopeRequest"  # the hook event `hive-lab task request-scope` sends
FILE_HOOKS = ("PreToolUse", "BeforeTool")
HOLD_REASON = "hold:"  # a pipeline stage's task waits for its pipeline (state blocked)
DEGRADED_GAP = 60.0  # unguarded hooks closer than this join one interval
MAX_GUARDED = 50  # guard decisions kept on a task (the newest; the count goes on)
MAX_PENDING_REQUESTS = 10  # per task: an agent asking in a loop does not flood the person
GUARD_RECORD_DELAY = 0.02  # seconds: after the hook's reply, the task notes what was decided


@dataclass
class OrchestratorConfig:
    max_agents: int | None = None  # the whole fleet's cap (c.HiveLab.max_agents)
    max_rounds: int = 3  # check rounds within one attempt before the task fails
    check_timeout: float = 600.0
    lease_seconds: float = 60.0
    owner: str = ""
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    # c.HiveLab.store_url: "" keeps the tasks in the node's SQLite; "postgresql://..." shares
    # them with every control server on that store (then ``owner`` must be stable: node_id).
    store_url: str = field(default="", repr=False)

    @property
    def shared(self) -> bool:
        return bool(self.store_url)

    def __post_init__(self) -> None:
        if not self.owner:
            self.owner = f"{socket.gethostname()}:{os.getpid()}"


class Orchestrator:
    """Tasks, their sessions and their scopes; the facade calls these methods."""

    def __init__(self, db_path: Path, store: Store, sessions: SessionManager, recorder: Recorder,
                 git: GitMonitor, signals: Signals, deciders: Deciders,
                 config: OrchestratorConfig | None = None,
                 find_repo: Callable[[str], str | None] | None = None) -> None:
        # Its own connection, in Python's transaction mode: the task store's multi-statement
        # writes (approve a scope request and widen the scope) are then one transaction. With
        # a store_url, the same calls go to the shared PostgreSQL store (core/sharedstore.py).
        self.config = config or OrchestratorConfig()
        self.conn: Any = connect_store(db_path, self.config.store_url)
        self.store_down: dict[str, Any] | None = None  # set while the shared store is away
        self.store = store
        self.sessions = sessions
        self.recorder = recorder
        self.git = git
        self.find_repo = find_repo or _find_repo
        self.why: dict[str, str] = {}
        self._cache: dict[str, Task] = {}
        try:
            self._cache = {t.id: t for t in taskstore.list_tasks(self.conn)}
        except StoreUnavailable as exc:
            self._store_away(exc)
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._delivering: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self.recovery = Recovery(self, self.config.recovery)
        # Guard answers waiting for their hook event to be stored: (session, tool_use_id) ->
        # what the task will show. The decider only notes; the task is written off the hot path.
        self._guarded: dict[tuple[str, str], dict[str, Any]] = {}
        self._guard_backlog: list[Event] = []
        deciders.register(self._guard)
        signals.stored.connect(self._on_event)
        signals.stored.connect(self.recovery.on_event)
        signals.unguarded.connect(self._on_unguarded)

    def close(self) -> None:
        for job in [*self._checks.values(), *self._delivering.values()]:
            job.cancel()
        self.conn.close()

    # -- the API -----------------------------------------------------------------------------
    def add(self, body: Any, pipeline: str | None = None) -> dict[str, Any]:
        """Create a task from a ``POST tasks`` body; everything is checked before it is stored.

        ``pipeline`` (the pipeline driver only): the task is a stage of that pipeline. It is
        *held* at the end of each turn (blocked, reason ``hold: ...``, its session kept) for
        the pipeline to decide what comes next, and its siblings' scopes do not exclude it.
        """
        spec = TaskSpec.parse(body, self.find_repo)
        existing = taskstore.list_tasks(self.conn)
        check_dependencies(spec, existing)
        now = time.time()
        task = spec.to_task(now)
        if pipeline is not None:
            task = replace(task, flags={"pipeline": pipeline, "hold": True})
        done = {t.id for t in existing if t.state == DONE}
        if all(d in done for d in task.depends_on):
            task = replace(task, state=READY, state_reason="created; nothing to wait for")
        else:
            waiting = [d for d in task.depends_on if d not in done]
            task = replace(task, state_reason="waits for task " + ", ".join(waiting))
        taskstore.insert_task(self.conn, task)
        self._changed(task, None, task.state_reason)
        return self._json(task)

    def list_tasks(self, state: str | None = None, repo: str | None = None,
             session: str | None = None) -> list[dict[str, Any]]:
        tasks = taskstore.list_tasks(self.conn, state=state, repo=repo, session=session,
                                     with_attempts=True)
        return [self._json(t) for t in tasks]

    def get(self, task_id: str) -> dict[str, Any]:
        return self._json(taskstore.get_task(self.conn, task_id))

    async def patch(self, task_id: str, body: Any) -> dict[str, Any]:
        patch = TaskPatch.parse(body)
        async with self._lock:
            task = taskstore.get_task(self.conn, task_id)
            now = time.time()
            updated = patch.apply(task, now)
            taskstore.save_task(self.conn, updated, now)
            if updated.state == CANCELED and task.state != CANCELED:
                await self._end_session(updated, "canceled", "canceled by request", now)
                claims.release(self.conn, updated.id, updated.generation)
            self._changed(updated, task.state, updated.state_reason if updated.state != task.state
                          else "changed by request")
            return self._json(taskstore.get_task(self.conn, task_id))

    def delete(self, task_id: str) -> dict[str, Any]:
        taskstore.delete_task(self.conn, task_id)
        self._cache.pop(task_id, None)
        self.why.pop(task_id, None)
        return {"id": task_id, "deleted": True}

    async def retry(self, task_id: str) -> dict[str, Any]:
        async with self._lock:
            task = taskstore.get_task(self.conn, task_id)
            if task.state != FAILED:
                raise Conflict(f"task {task_id} is {task.state}; only a failed task is retried")
            extra = replace(task, max_attempts=max(task.max_attempts, len(task.attempts) + 1))
            self._set(extra, READY, "retried by request", time.time())
            claims.release(self.conn, task.id, task.generation)
            return self.get(task_id)

    def scope_requests(self, task_id: str | None = None,
                       state: str | None = None) -> list[dict[str, Any]]:
        return [r.to_json() for r in taskstore.list_scope_requests(self.conn, task_id, state)]

    async def decide_scope(self, request_id: Any, approve: Any, note: Any = "",
                           by: str = "user") -> dict[str, Any]:
        """A person approves (the glob joins the scope) or refuses; the agent is told."""
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            raise BadRequest("scope request id must be an integer")
        if not isinstance(approve, bool):
            raise BadRequest("approve must be true or false")
        if not isinstance(note, str) or len(note) > 2000:
            raise BadRequest("note must be a string of at most 2000 characters")
        async with self._lock:
            request = taskstore.decide_scope_request(self.conn, request_id, approve, by, note,
                                                     time.time())
            task = taskstore.get_task(self.conn, request.task_id)
            word = "approved" if approve else "refused"
            self._event(task.id, SCOPE_REQUESTED, {"request": request.to_json()},
                        f"scope request for {request.glob} {word}")
            pending = taskstore.list_scope_requests(self.conn, task.id, "pending")
            if task.state == BLOCKED and task.state_reason.startswith("scope") and not pending:
                now = time.time()
                text = (f"Your scope now includes {request.glob}. Continue the task."
                        if approve else
                        f"Your request for {request.glob} was refused"
                        + (f": {note}" if note else "") + ". Continue within your scope, or stop.")
                running = self._set(self._new_round(task, now, same_round=True, outbox=text),
                                    RUNNING, f"scope request {word}: {request.glob}", now)
                self._deliver(running)
            return request.to_json()

    def accept_violations(self, task_id: str, paths: Any) -> dict[str, Any]:
        """A person accepts out-of-scope changes (they no longer keep the task from done)."""
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or not paths:
            raise BadRequest("paths must be a non-empty list of repository-relative paths")
        task = taskstore.get_task(self.conn, task_id)
        flagged = {v["path"] for v in task.flags.get("violations", [])}
        unknown = sorted(set(paths) - flagged)
        if unknown:
            raise BadRequest(f"not flagged on task {task_id}: {', '.join(unknown[:10])}")
        flags = dict(task.flags)
        flags["accepted"] = sorted(set(flags.get("accepted", [])) | set(paths))
        flags["violations"] = [v for v in flags.get("violations", []) if v["path"] not in paths]
        updated = replace(task, flags=flags)
        now = time.time()
        taskstore.save_task(self.conn, updated, now)
        self._changed(updated, task.state, f"accepted {len(paths)} out-of-scope change(s)")
        if (updated.state == BLOCKED and updated.state_reason.startswith("scope_violation")
                and not flags["violations"]):
            self._to_checking(updated, "out-of-scope changes accepted; checking again", now)
        return self.get(task_id)

    # -- budgets (called by the budget keeper) -----------------------------------------------
    async def pause_task(self, task_id: str, reason: str) -> bool:
        """A running (or waiting) task whose budget is used up becomes ``paused``."""
        async with self._lock:
            task = taskstore.get_task(self.conn, task_id)
            if task.state not in (RUNNING, WAITING):
                return False
            self._set(task, PAUSED, reason, time.time())
            return True

    async def resume_task(self, task_id: str, reason: str, text: str, alive: bool) -> bool:
        """The budget was raised: back to running and told to continue, or (its session was
        ended at the ceiling) back to ready with one more attempt, resuming on its branch."""
        async with self._lock:
            task = taskstore.get_task(self.conn, task_id)
            if task.state != PAUSED:
                return False
            now = time.time()
            if alive:
                self._deliver(self._set(self._new_round(task, now, same_round=True, outbox=text),
                                        RUNNING, reason, now))
            else:
                extra = replace(task, max_attempts=max(task.max_attempts, len(task.attempts) + 1))
                self._set(extra, READY, reason, now)
                claims.release(self.conn, task.id, task.generation)
            return True

    async def end_attempt(self, task_id: str, outcome: str, reason: str) -> None:
        """Close the running attempt of a paused task whose session the ceiling ended."""
        async with self._lock:
            attempts = taskstore.list_attempts(self.conn, task_id)
            if attempts and attempts[-1].ended is None:
                taskstore.update_attempt(self.conn, replace(attempts[-1], ended=time.time(),
                                                            outcome=outcome, reason=reason[:500]))
            task = taskstore.get_task(self.conn, task_id)
            if task.state == PAUSED:
                self._set(task, PAUSED, f"budget {reason}", time.time())

    # -- pipelines (called by the pipeline driver) -------------------------------------------
    async def continue_held(self, task_id: str, text: str, reason: str) -> bool:
        """A held task's same session gets ``text`` as its next prompt (its context kept)."""
        async with self._lock:
            task = taskstore.get_task(self.conn, task_id)
            if task.state != BLOCKED or not task.state_reason.startswith(HOLD_REASON):
                return False
            now = time.time()
            running = self._set(self._new_round(task, now, outbox=text), RUNNING, reason, now)
            self._deliver(running)
            return True

    async def release_held(self, task_id: str, reason: str) -> bool:
        """A held task is done (the pipeline moved past it): its session ends, the worktree
        and branch keep the work."""
        async with self._lock:
            task = taskstore.get_task(self.conn, task_id)
            if task.state in TERMINAL:
                return False
            now = time.time()
            attempts = taskstore.list_attempts(self.conn, task.id)
            if attempts and attempts[-1].ended is None:
                taskstore.update_attempt(self.conn, replace(attempts[-1], ended=now,
                                                            outcome="done", reason=reason[:500]))
            if task.state in (BLOCKED, RUNNING, CHECKING):
                self._set(task, DONE, reason, now)
            else:
                self._set(task, CANCELED, reason, now)
            await self._stop_session(task.id)
            claims.release(self.conn, task.id, task.generation)
            return True

    def task_record(self, task_id: str) -> Task | None:
        """The cached task (refreshed every tick), without a database read."""
        return self._cache.get(task_id)

    # -- the tick ----------------------------------------------------------------------------
    async def tick(self) -> None:
        """Reconcile every active task with its session, then plan and start.

        On the shared store this server reconciles only the tasks it owns (another server's
        running task has no session here, and is not lost), renews their leases, and a store
        that does not answer skips the tick: the agents run on, and the next tick resumes.
        """
        try:
            await self._tick()
        except StoreUnavailable as exc:
            self._store_away(exc)
            return
        if self.store_down is not None:
            self._store_back()

    def store_health(self) -> dict[str, Any]:
        """How the task store is doing (GET status): kind, reachable, since when it is down."""
        health = getattr(self.conn, "health", None)
        if health is None:
            return {"kind": "sqlite", "reachable": True}
        return dict(health())

    def _store_away(self, exc: StoreUnavailable) -> None:
        if self.store_down is not None:
            return
        self.store_down = {"since": time.time(), "detail": exc.detail}
        log.warning("%s; orchestration waits, the agents keep running", exc.detail)
        self._event("hive", STORE_UNREACHABLE, {"store": self.store_health(), **self.store_down},
                    "the shared task store is unreachable; orchestration waits")

    def _store_back(self) -> None:
        away, self.store_down = self.store_down or {}, None
        log.info("the shared store answers again; orchestration resumes")
        self._event("hive", STORE_REACHABLE, {"store": self.store_health(),
                                              "down_since": away.get("since")},
                    "the shared task store answers again; orchestration resumes")

    def _mine(self, task: Task) -> bool:
        """Is this server the one to reconcile ``task``? (Always, on a store of its own.)"""
        if not self.config.shared:
            return True
        if task.owner is None:
            return task.id in self.sessions.sessions
        return task.owner == self.config.owner

    def _live_here(self, name: str) -> bool:
        session = self.sessions.sessions.get(name)
        return (session is not None and session.task == name
                and self.sessions.tracker.get(name).name != EXITED)

    async def _tick(self) -> None:
        async with self._lock:
            now = time.time()
            if self.config.shared:
                claims.renew_owned(self.conn, self.config.owner, sorted(ACTIVE), now,
                                   self.config.lease_seconds)
            tasks = taskstore.list_tasks(self.conn, with_attempts=True)
            self._cache = {t.id: t for t in tasks}
            for task in tasks:
                if task.state in ACTIVE and self._mine(task):
                    await self._reconcile(task, now)
                if self.config.shared and task.state == CANCELED and self._live_here(task.id):
                    # canceled through another control server: its session runs here
                    await self._stop_session(task.id)
            tasks = taskstore.list_tasks(self.conn, with_attempts=True)
            self._cache = {t.id: t for t in tasks}
            await self.recovery.tick([t for t in tasks if self._mine(t)], now)
            tasks = taskstore.list_tasks(self.conn, with_attempts=True)
            self._cache = {t.id: t for t in tasks}
            left, restarts_why = self.recovery.restart_budget(now)
            result = plan(tasks, self._profiles(), self._running(), self._conflicts(),
                          Limits(self.config.max_agents, left, restarts_why), now)
            self.why = dict(result.why)
            by_id = {t.id: t for t in tasks}
            for task_id in result.promote:
                task = by_id[task_id]
                if task.state == PENDING:
                    self._set(task, READY, "dependencies done", now)
            for start in result.start:
                await self._start(by_id[start.task_id], start.profile, now)

    def _profiles(self) -> list[ProfileInfo]:
        parks = self.recovery.parks()
        return [ProfileInfo(p.name, frozenset(p.capabilities), p.installed, p.max_sessions,
                            self.recovery.parked_why(p.name, parks))
                for p in self.sessions.profiles.values()]

    def _running(self) -> list[RunningInfo]:
        out = []
        for session in self.sessions.sessions.values():
            if session.external or self.sessions.tracker.get(session.name).name == EXITED:
                continue
            out.append(RunningInfo(session.task, session.agent))
        return out

    def _conflicts(self) -> set[frozenset[str]]:
        """Predicted merge conflicts between task branches, as pairs of task ids."""
        out: set[frozenset[str]] = set()
        for prediction in self.git.collisions.conflicts:
            names = prediction.to_json().get("sessions", [])
            tasks = {self.sessions.sessions[n].task for n in names
                     if n in self.sessions.sessions and self.sessions.sessions[n].task}
            if len(tasks) == 2:
                out.add(frozenset(t for t in tasks if t))
        return out

    async def _start(self, task: Task, profile_name: str, now: float) -> None:
        generation = claims.claim(self.conn, task.id, self.config.owner, now,
                                  self.config.lease_seconds)
        if generation is None:
            return  # someone else holds it, or it is no longer ready
        task = replace(task, generation=generation)
        profile = self.sessions.profiles[profile_name]
        n = len(task.attempts) + 1
        flags = dict(task.flags)
        args: tuple[str, ...] = profile.task_args  # unattended (Aider: --yes-always)
        if profile.hooks == "claude":
            # A pre-assigned conversation id, so a later attempt resumes where this one ended.
            sid = flags.get("agent_session_id")
            if sid and n > 1:
                args += ("--resume", sid)
            else:
                sid = flags["agent_session_id"] = str(uuid.uuid4())
                args += ("--session-id", sid)
        prompt = prompts.first_prompt(task) if profile.task_prompt == "full" else task.prompt
        if n > 1 and task.attempts and profile.task_prompt == "full":
            last = task.attempts[-1]
            prompt = (f"This is attempt {n} of task {task.id}. The previous attempt ended: "
                      f"{last.outcome} ({last.reason}). Pick up from the work on the branch.\n\n"
                      + prompt)
        flags.update(round=1, round_started=now, outbox=prompt)
        for key in ("not_before", "not_before_why", "stalled", "looping", "rate_limited",
                    "park_since", "resumed_at", "resumed_park"):
            flags.pop(key, None)
        started = replace(transition(task, RUNNING, f"started on {profile_name} (attempt {n})",
                                     now), session=task.id, flags=flags)
        taskstore.save_task(self.conn, started, now, generation=generation)
        taskstore.start_attempt(self.conn, task.id, task.id, profile_name, now)
        self._changed(started, task.state, started.state_reason)
        if n > 1:
            self.recovery.restarted(started, n, profile_name, now)
        self.recovery.loops.pop(task.id, None)
        request = SpawnRequest(
            name=task.id, agent=profile_name, cwd=task.repo, worktree=True,
            base=task.base, task=task.id, args=args, reuse_worktree=True,
            env={"PATH": _agent_path()})
        try:
            session = await self.sessions.spawn(request)
        except HiveError as exc:
            log.warning("task %s: could not start on %s: %s", task.id, profile_name, exc.detail)
            await self._retry_or_fail(taskstore.get_task(self.conn, task.id), "spawn_failed",
                                      f"could not start {profile_name}: {exc.detail}", now)
            return
        path = (session.worktree or {}).get("path")
        current = taskstore.get_task(self.conn, task.id)
        current = replace(current, worktree=path)
        taskstore.save_task(self.conn, current, now)
        self._deliver(current)

    async def _reconcile(self, task: Task, now: float) -> None:
        """Bring an active task in line with what its session is doing (level-triggered)."""
        if task.state == CHECKING:
            if task.id not in self._checks:  # after a restart, or a check that ended oddly
                self._begin_check(task)
            return
        if task.state in (BLOCKED, PAUSED):
            return  # a person decides / the budget keeper resumes it
        if task.state == RUNNING:
            self.recovery.check_stall(task, now)
            task = self._cache.get(task.id, task)
        session = self.sessions.sessions.get(task.id)
        if session is None or session.task != task.id:
            await self._retry_or_fail(task, "lost", "its session is gone", now)
            return
        state = self.sessions.tracker.get(task.id)
        if state.name == EXITED:
            if state.exit_status == 0:
                self._to_checking(task, "the agent exited with status 0", now)
            else:
                status = state.exit_status if state.exit_status is not None else "unknown"
                await self._retry_or_fail(task, "died", f"the agent exited with status {status}",
                                          now)
            return
        if task.flags.get("outbox") and state.name != EXITED:
            self._deliver(task)  # a prompt not yet typed (e.g. the server died before it was)
            return
        if state.name == S_ERROR and self.recovery.is_auth(state.reason):
            self.recovery.auth_failed(task, session.agent, state.reason or "")
            await self._retry_or_fail(task, "auth", f"the API refused the credentials "
                                      f"({state.reason})", now, kind=AUTH)
            return
        if state.name == S_WAITING and state.reason in RATE_REASONS:
            if self.recovery.on_waiting(task, session.agent, state.reason or "", state.since,
                                        state.resume_at, state.detail, now):
                return
        if task.state == WAITING and task.flags.get("rate_limited") and state.name != S_WAITING:
            task = self.recovery.on_continued(task, now)
            self._set(task, RUNNING, "the agent continued by itself after the limit", now)
            return
        if state.name == S_WAITING:
            reason = state.reason or "input"
            what = f"waits for the user ({reason}{': ' + state.tool if state.tool else ''})"
            if task.state != WAITING or task.state_reason != what:
                self._set(task, WAITING, what, now)
            return
        if state.name in (WORKING, STARTING):
            if task.state == WAITING:
                self._set(task, RUNNING, "the user answered; the agent works again", now)
            return
        if state.name == IDLE and self._turn_ended(task):
            self._to_checking(task, "the agent's turn ended", now)
        elif state.name == IDLE and task.state == WAITING:
            self._set(task, RUNNING, "the dialog closed", now)

    def _turn_ended(self, task: Task) -> bool:
        """Idle now, after having worked since this round's prompt was typed.

        "Worked" counts the state in force when the typing began (a screen agent still busy
        printing its start-up text takes the prompt in the same working spell) and every
        working state after it; the idle must have begun after the typing too.
        """
        if task.flags.get("outbox"):
            return False
        began = float(task.flags.get("round_started") or task.state_since or 0)
        state = self.sessions.tracker.get(task.id)
        if state.name != IDLE or state.since <= began:
            return False
        rows = self.store.transitions(session=task.id, limit=100000)
        before = [r["name"] for r in rows if r["since"] <= began]
        return (bool(before) and before[-1] == WORKING) or any(
            r["name"] == WORKING and r["since"] > began for r in rows)

    def _to_checking(self, task: Task, reason: str, now: float) -> None:
        checking = self._set(task, CHECKING, reason, now)
        self._begin_check(checking)

    def _begin_check(self, task: Task) -> None:
        self._checks[task.id] = asyncio.ensure_future(self._check(task))
        self._checks[task.id].add_done_callback(lambda _: self._checks.pop(task.id, None))

    async def _check(self, task: Task) -> None:
        try:
            if task.check:
                cwd = task.worktree or self._worktree_of(task.id) or task.repo
                result = await run_check(task.check, cwd, self.config.check_timeout)
            else:
                result = CheckResult(True, 0, "", 0.0, "no check: done when the turn ends")
            async with self._lock:
                await self._after_check(task.id, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s: check failed to run", task.id)

    async def _after_check(self, task_id: str, result: CheckResult) -> None:
        now = time.time()
        task = taskstore.get_task(self.conn, task_id)
        if task.state != CHECKING:
            return  # canceled or changed meanwhile
        self._event(task.id, CHECK_RAN, {"check": list(task.check or ()), **result.to_json()},
                    result.reason)
        attempt = task.attempts[-1] if task.attempts else None
        if attempt is not None:
            attempt = replace(attempt, rounds=int(task.flags.get("round", 1)),
                              check_tail=prompts.tail(result.output) if result.output else "")
            taskstore.update_attempt(self.conn, attempt)
        if result.passed:
            open_violations = task.flags.get("violations", [])
            if open_violations:
                self._set(task, BLOCKED, f"scope_violation: {len(open_violations)} changed file(s) "
                                         "outside the scope need a person (accept or revert)", now)
                return
            if task.flags.get("hold"):
                self._set(task, BLOCKED, f"{HOLD_REASON} the turn ended; the pipeline "
                          f"{task.flags.get('pipeline')} decides what comes next", now)
                return
            await self._finish(task, attempt, now)
            return
        round_no = int(task.flags.get("round", 1))
        session = self.sessions.sessions.get(task.id)
        alive = session is not None and self.sessions.tracker.get(task.id).name != EXITED
        if round_no < self.config.max_rounds and alive:
            text = prompts.next_prompt(task, result.output, result.exit_code, round_no,
                                       self.config.max_rounds)
            running = self._set(self._new_round(task, now, outbox=text), RUNNING,
                                f"check failed (round {round_no} of {self.config.max_rounds}): "
                                f"{result.reason}; its output goes back to the agent", now)
            self._deliver(running)
        elif not alive and len(task.attempts) < task.max_attempts:
            await self._retry_or_fail(task, "check_failed", result.reason, now)
        else:
            await self._end(task, FAILED, "check_failed",
                            f"{result.reason} after {round_no} round(s)", now)

    async def _finish(self, task: Task, attempt: Attempt | None, now: float) -> None:
        if attempt is not None:
            taskstore.update_attempt(self.conn, replace(
                taskstore.get_task(self.conn, task.id).attempts[-1], ended=now, outcome="done",
                reason="the check passed" if task.check else "the turn ended"))
        self._set(task, DONE, "the check passed" if task.check else "the agent's turn ended "
                  "(no check)", now)
        await self._stop_session(task.id)

    async def _retry_or_fail(self, task: Task, outcome: str, reason: str, now: float,
                             kind: str = CRASH) -> None:
        """Retry after a backoff (recovery.py), or fail: attempts used up, or a bad key."""
        await self._end_session(task, outcome, reason, now)
        used = len(taskstore.list_attempts(self.conn, task.id)) or len(task.attempts)
        decision = decide_retry(kind, used, task.max_attempts, reason, now,
                                self.config.recovery)
        current = taskstore.get_task(self.conn, task.id)
        if decision.fail:
            self._set(current, FAILED, decision.reason, now)
        else:
            flags = dict(current.flags, not_before=decision.not_before,
                         not_before_why=decision.reason)
            self._set(replace(current, flags=flags), READY, decision.reason, now)
        claims.release(self.conn, task.id, taskstore.get_task(self.conn, task.id).generation)

    async def _end(self, task: Task, state: str, outcome: str, reason: str, now: float) -> None:
        await self._end_session(task, outcome, reason, now)
        self._set(taskstore.get_task(self.conn, task.id), state, reason, now)

    async def _end_session(self, task: Task, outcome: str, reason: str, now: float) -> None:
        """Close the running attempt and stop its session (the worktree keeps its work)."""
        attempts = taskstore.list_attempts(self.conn, task.id)
        if attempts and attempts[-1].ended is None:
            taskstore.update_attempt(self.conn, replace(attempts[-1], ended=now, outcome=outcome,
                                                        reason=reason[:500]))
        await self._stop_session(task.id)

    async def _stop_session(self, name: str) -> None:
        if name in self.sessions.sessions:
            try:
                await self.sessions.kill(name)
            except HiveError as exc:
                log.warning("stopping session %s: %s", name, exc.detail)

    def _new_round(self, task: Task, now: float, same_round: bool = False,
                   outbox: str | None = None) -> Task:
        flags = dict(task.flags)
        if not same_round:
            flags["round"] = int(flags.get("round", 1)) + 1
        flags["round_started"] = now
        if outbox is not None:
            flags["outbox"] = outbox
        return replace(task, flags=flags)

    def _deliver(self, task: Task) -> None:
        """Type the task's pending message (its outbox) into its session, once it is ready.

        The outbox is stored with the task and cleared only after the text was typed, so a
        server that dies in between types it after its restart instead of losing it.
        """
        if not task.flags.get("outbox") or task.id in self._delivering:
            return
        self._delivering[task.id] = asyncio.ensure_future(self._deliver_now(task.id))
        self._delivering[task.id].add_done_callback(
            lambda _: self._delivering.pop(task.id, None))

    async def _deliver_now(self, task_id: str) -> None:
        task = taskstore.get_task(self.conn, task_id)
        text = task.flags.get("outbox")
        if not text:
            return
        began: float | None
        if self._prompt_taken(task):
            # Typed and taken, but the server died before the outbox was cleared: typing it
            # again would queue a second copy behind the turn it started.
            log.info("task %s: its prompt was taken before a restart; not typed again", task_id)
            began = float(task.flags["round_started"])
        else:
            began = await self.sessions.deliver_when_ready(task_id, text)
        if began is None:
            return
        async with self._lock:
            task = taskstore.get_task(self.conn, task_id)
            if task.flags.get("outbox") == text:
                flags = {k: v for k, v in task.flags.items() if k != "outbox"}
                flags["round_started"] = began  # a turn is working seen after this
                taskstore.save_task(self.conn, replace(task, flags=flags), time.time())
                self._cache[task_id] = replace(task, flags=flags)

    def _prompt_taken(self, task: Task) -> bool:
        """The agent's hooks said it took a prompt in this round.

        The round starts before its prompt is typed, and nothing else types into a task's
        session, so a prompt-taken hook fired since then took this outbox."""
        since = float(task.flags.get("round_started") or 0)
        return since > 0 and any(self.store.events(session=task.id, event=name, since=since,
                                                   limit=1) for name in PROMPT_TAKEN_HOOKS)

    def _worktree_of(self, name: str) -> str | None:
        session = self.sessions.sessions.get(name)
        return (session.worktree or {}).get("path") if session else None

    # -- state changes are events ------------------------------------------------------------
    def _set(self, task: Task, state: str, reason: str, now: float) -> Task:
        """Move ``task`` (or, in the same state, give it the new reason), store, announce."""
        updated = (replace(task, state_reason=reason[:500]) if state == task.state
                   else transition(task, state, reason, now))
        if self.config.shared:
            # Another server may have claimed the task since we read it: never write over that.
            try:
                taskstore.save_task(self.conn, updated, now, generation=task.generation)
            except StaleGeneration:
                log.info("task %s moved on elsewhere; not setting it %s", task.id, state)
                return taskstore.get_task(self.conn, task.id)
            self._changed(updated, task.state, reason)
            return updated
        taskstore.save_task(self.conn, updated, now)
        self._changed(updated, task.state, reason)
        return updated

    def _changed(self, task: Task, previous: str | None, reason: str) -> None:
        self._cache[task.id] = task
        self._event(task.id, TASK_CHANGED, {"task": self._json(task), "previous": previous,
                                            "reason": reason},
                    f"{task.state}: {reason}"[:200])

    def _event(self, task_id: str, name: str, payload: dict[str, Any], summary: str) -> None:
        self.recorder.record_now([ev.internal(task_id, name, payload, summary)])

    def _json(self, task: Task) -> dict[str, Any]:
        data = task.to_json()
        if task.state in (READY, PENDING) and task.id in self.why:
            data["why"] = self.why[task.id]
        elif task.state not in (RUNNING, CHECKING) and task.state not in TERMINAL:
            data["why"] = task.state_reason
        return data

    # -- the guard, the backstop and requests from agents ------------------------------------
    def _task_of(self, session_name: str) -> tuple[Task, Session] | None:
        session = self.sessions.sessions.get(session_name)
        if session is None or not session.task:
            return None
        task = self._cache.get(session.task)
        if task is None or task.state not in ACTIVE:
            return None
        return task, session

    def _others(self, task: Task) -> list[Task]:
        group = task.flags.get("pipeline")  # stages of one pipeline take turns, never rivals
        return [t for t in self._cache.values()
                if t.id != task.id and t.state in ACTIVE and t.repo == task.repo
                and not (group and t.flags.get("pipeline") == group)]

    def _guard(self, ctx: HookContext) -> Verdict | None:
        """Before a write happens: deny outside the scope, ask for shell writes, deny wreckage."""
        found = self._task_of(ctx.session)
        if found is None or ctx.event not in FILE_HOOKS or not ctx.tool:
            return None
        task, session = found
        worktree = (session.worktree or {}).get("path") or task.worktree or task.repo
        cwd = ctx.payload.get("cwd") if isinstance(ctx.payload.get("cwd"), str) else ctx.cwd
        decision = guard.decide(ctx.tool, ctx.tool_input, cwd, task, self._others(task),
                                worktree, task.repo)
        if decision.action == guard.ALLOW:
            if decision.paths and (ctx.tool in guard.FILE_TOOLS or ctx.tool in guard.PATCH_TOOLS):
                # An edit inside the task's own scope: the guard is the authority here, so the
                # agent's own permission dialog does not stall an unattended task on it.
                return Verdict("allow", f"inside the scope of task {task.id}", "scope")
            return None
        tool_use_id = ctx.payload.get("tool_use_id")
        if len(self._guarded) >= 4 * MAX_GUARDED:  # hooks whose event was never stored
            self._guarded.pop(next(iter(self._guarded)))
        self._guarded[(ctx.session, tool_use_id if isinstance(tool_use_id, str) else "")] = {
            "action": decision.action, "tool": guard.show(ctx.tool, 64),
            "paths": list(decision.paths), "reason": decision.reason}
        return Verdict(decision.action, decision.reason, "scope")  # type: ignore[arg-type]

    def _record_guarded(self, event: Event) -> None:
        """The task shows what its guard refused or asked about (newest MAX_GUARDED, a count)."""
        noted = self._guarded.pop((event.session, event.tool_use_id or ""), None)
        found = self._task_of(event.session)
        if noted is None or found is None:
            return
        task = taskstore.get_task(self.conn, found[0].id)
        flags = dict(task.flags)
        flags["guarded"] = [*flags.get("guarded", []),
                            {**noted, "time": event.time, "event_id": event.id}][-MAX_GUARDED:]
        flags["guarded_count"] = int(flags.get("guarded_count", 0)) + 1
        updated = replace(task, flags=flags)
        taskstore.save_task(self.conn, updated, time.time())
        where = ", ".join(noted["paths"][:3]) or noted["tool"]
        self._changed(updated, task.state, f"the guard answered {noted['action']} to "
                                           f"{noted['tool']} ({where})")

    def _on_event(self, event: Event) -> None:
        if event.agent == ev.HIVE_AGENT and event.event == ev.GIT_CHANGED:
            self._audit(event.session)
        elif event.agent != ev.HIVE_AGENT and event.event == SCOPE_REQUEST_HOOK:
            self._scope_request(event)
        elif event.agent != ev.HIVE_AGENT and event.event in FILE_HOOKS and self._guarded:
            self._defer_guarded(event)

    def _defer_guarded(self, event: Event) -> None:
        """Write what the guard answered onto the task after the hook has its answer: the
        stored signal fires before the HTTP reply, and a task save plus its TaskChanged on that
        path doubled the round trip of a deny (bench_hook.py --real-server)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._record_guarded(event)
            return
        self._guard_backlog.append(event)
        if len(self._guard_backlog) == 1:
            loop.call_later(GUARD_RECORD_DELAY, self._flush_guarded)

    def _flush_guarded(self) -> None:
        backlog, self._guard_backlog = self._guard_backlog, []
        for event in backlog:
            try:
                self._record_guarded(event)
            except Exception as exc:  # the store went away or closed meanwhile: the hook
                log.warning("could not note the guard's answer on %s: %s", event.session,
                            exc)  # event and its HookDecided are stored all the same

    def _audit(self, session_name: str) -> None:
        """The backstop no spelling defeats: every changed file checked against the scope."""
        found = self._task_of(session_name)
        state = self.git.states.get(session_name)
        if found is None or state is None:
            return
        task, _ = found
        accepted = set(task.flags.get("accepted", []))
        found_now = [v for v in audit(state.changed_paths(), task, self._others(task))
                     if v.path not in accepted]
        known = {v["path"]: v for v in task.flags.get("violations", [])}
        fresh = [v for v in found_now if v.path not in known]
        current = {v.path for v in found_now}
        if not fresh and set(known) == current:
            return
        now = time.time()
        flags = dict(task.flags)
        flags["violations"] = [known.get(v.path) or {**v.to_json(), "since": now}
                               for v in found_now]
        updated = replace(task, flags=flags)
        taskstore.save_task(self.conn, updated, now)
        for v in fresh:
            self._event(task.id, SCOPE_VIOLATION, {"task": task.id, "violation": v.to_json()},
                        v.reason)
        self._changed(updated, task.state, f"{len(found_now)} changed file(s) outside the scope"
                      if found_now else "out-of-scope changes reverted")

    def request_scope(self, session_name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """An agent asks for more scope from inside its (authenticated) session and hears the
        outcome at once: the request, or a HiveError whose detail is the one-line reason."""
        task_id = payload.get("task")
        if not isinstance(task_id, str) or not task_id:
            raise BadRequest("say which task: the request has no 'task'")
        validate_name(task_id, "task")
        task = self._cache.get(task_id) or taskstore.get_task(self.conn, task_id,
                                                                with_attempts=False)
        session = self.sessions.sessions.get(session_name)
        if session is None or session.task != task.id:
            raise Forbidden(f"session {session_name} does not work on task {task.id}: ask "
                            f"for your own task")
        if task.state not in ACTIVE:
            raise Conflict(f"task {task.id} is {task.state}, not active: there is nothing to "
                           "widen")
        try:
            return self._add_request(task, session_name, payload).to_json()
        except HiveError as exc:
            self._event(task.id, SCOPE_REQUESTED, {"refused": exc.detail}, exc.detail)
            raise

    def _add_request(self, task: Task, session_name: str,
                     payload: dict[str, Any]) -> taskstore.ScopeRequest:
        glob, why = payload.get("glob"), payload.get("why", "")
        pattern = scopes.validate_pattern(glob, "requested scope")
        if not isinstance(why, str) or not why.strip():
            raise BadRequest("say why you need it (--why '...'): a person reads it")
        current = taskstore.get_task(self.conn, task.id, with_attempts=False)
        if pattern in current.scope:
            raise Conflict(f"{pattern} is already in the scope of task {task.id}: go ahead")
        pending = taskstore.list_scope_requests(self.conn, task.id, "pending")
        for r in pending:
            if r.glob == pattern:
                raise Conflict(f"request {r.id} for {pattern} is already pending: wait for a "
                               "person to decide")
        if len(pending) >= MAX_PENDING_REQUESTS:
            raise Conflict(f"task {task.id} has {len(pending)} scope requests pending already: "
                           "wait for a person to decide them")
        now = time.time()
        request = taskstore.add_scope_request(self.conn, task.id, pattern, why.strip(),
                                              session_name, now)
        self._event(task.id, SCOPE_REQUESTED, {"request": request.to_json()},
                    f"asks for {request.glob}: {request.why}"[:200])
        current = taskstore.get_task(self.conn, task.id)
        if current.state in (RUNNING, WAITING, CHECKING):
            self._set(current, BLOCKED, f"scope: asks for {request.glob} (request "
                                        f"{request.id}): {request.why}"[:500], now)
        return request

    def _scope_request(self, event: Event) -> None:
        """A ScopeRequest that came as a hook event (a spool line from an older client): no
        one waits for the answer, so a refusal is an event and a log line."""
        found = self._task_of(event.session)
        payload = event.payload
        if found is None or payload.get("task") != found[0].id:
            log.warning("scope request from %s for %r ignored: not its active task",
                        event.session, payload.get("task"))
            return
        try:
            self._add_request(found[0], event.session, payload)
        except HiveError as exc:
            self._event(found[0].id, SCOPE_REQUESTED, {"refused": exc.detail}, exc.detail)

    def _on_unguarded(self, event: Event) -> None:
        """A blocking hook that reached us only through the spool: the guard could not answer."""
        found = self._task_of(event.session)
        if found is None or event.event not in FILE_HOOKS:
            return
        task = found[0]
        flags = dict(task.flags)
        spans = [dict(s) for s in flags.get("guard_degraded", [])]
        if spans and event.time - spans[-1]["to"] <= DEGRADED_GAP:
            spans[-1]["to"] = max(spans[-1]["to"], event.time)
            spans[-1]["events"] = spans[-1].get("events", 1) + 1
        else:
            spans.append({"from": event.time, "to": event.time, "events": 1})
        flags["guard_degraded"] = spans[-20:]
        updated = replace(task, flags=flags)
        taskstore.save_task(self.conn, updated, time.time())
        self._changed(updated, task.state, "the guard was away for a tool call (server "
                      "restarting); the audit checks what it missed")


def _agent_path() -> str:
    """PATH for a task's agent: our own bin first, so `hive-lab task request-scope` resolves."""
    ours = str(Path(sys.executable).parent)
    rest = os.environ.get("PATH", "")
    return ours if not rest else f"{ours}{os.pathsep}{rest}"


def _find_repo(directory: str) -> str | None:
    from ..core import gitwatch

    found = gitwatch.find_repo(Path(directory))
    return str(found) if found is not None else None
