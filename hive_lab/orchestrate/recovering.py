"""Recovery at run time: the orchestrator's hands for the policies in :mod:`.recovery`.

The orchestrator calls in at three places: its tick (resume parked sessions one by one,
unpark, flag stalls), its reconcile (a session waiting on a rate limit, an auth failure) and
the event stream (loops, from PreToolUse). Everything that must survive a restart is in the
store (:mod:`.recoverystore`) or in the task's flags, so a restarted server neither forgets a
parking nor resumes a session twice.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..core.events import Event
from ..core.retrycue import attempt_in
from ..core.status import SELF_RETRY_SOURCE, WORKING
from ..wire import (AGENT_RESTARTED, AUTH_FAILED, PROVIDER_PARKED, PROVIDER_RESUMED,
                    SESSION_LOOPING, SESSION_STALLED)
from . import recoverystore as rs
from .recovery import (AUTH, OVERLOADED, RATE_LIMIT, LoopWatch, Park, RecoveryConfig,
                       after_probe_failed, classify_stop_failure, clock, park, provider_of,
                       restarts_left, stalled)
from .tasks import RUNNING, WAITING, Task

if TYPE_CHECKING:
    from .runtime import Orchestrator

log = logging.getLogger("hive_lab.orchestrate.recovery")

RATE_REASONS = {"rate_limit": RATE_LIMIT, "overloaded": OVERLOADED}
# A self-retry state whose countdown ended this long ago (and no new attempt came) no longer
# holds its provider's parking: whatever the screen shows, that CLI is not counting down.
SELF_RETRY_STALE = 60.0
SELF_RETRY_PARK = "(the CLI retries by itself)"  # in the source of a parking a countdown began
CONTINUE_PROMPT = ("The API limit that stopped you has passed. Continue the task where you "
                   "left off.")


class Recovery:
    """Parked providers, the fleet's restart cap, resumes, stalls and loops."""

    def __init__(self, orch: "Orchestrator", cfg: RecoveryConfig) -> None:
        self.orch = orch
        self.cfg = cfg.validate()
        self.loops: dict[str, LoopWatch] = {}
        # provider -> when a session of it was last seen retrying by itself (the CLI's own
        # countdown): its parking holds, and nothing is resumed, until a stagger after that.
        self.retry_seen: dict[str, float] = {}

    # -- providers -------------------------------------------------------------------------
    def provider(self, profile_name: str) -> str | None:
        p = self.orch.sessions.profiles.get(profile_name)
        if p is None:
            return None
        return provider_of(p.name, p.hooks, p.command[0] if p.command else None)

    def parks(self) -> dict[str, Park]:
        return rs.parks(self.orch.conn)

    def parked_why(self, profile_name: str, parks: dict[str, Park]) -> str | None:
        provider = self.provider(profile_name)
        return parks[provider].why() if provider in parks else None

    # -- the fleet restart cap -------------------------------------------------------------
    def restart_budget(self, now: float) -> tuple[int, str]:
        cap = self.cfg.fleet_restarts_per_hour
        left, frees = restarts_left(rs.restart_times(self.orch.conn, now - 3600.0), now, cap)
        why = (f"fleet restart cap: {cap} restart(s) in the last hour; next slot at "
               f"{clock(frees)}" if frees else f"fleet restart cap ({cap} per hour) reached")
        return left, why

    def restarted(self, task: Task, attempt: int, profile: str, now: float) -> None:
        rs.record_restart(self.orch.conn, task.id, attempt, now)
        self.orch._event(task.id, AGENT_RESTARTED, {"task": task.id, "attempt": attempt,
                                                    "profile": profile, "at": now},
                         f"attempt {attempt} of task {task.id} started on {profile}")

    # -- rate limits -----------------------------------------------------------------------
    def on_waiting(self, task: Task, profile: str, reason: str, state_since: float,
                   resume_at: float | None, detail: str | None, now: float) -> bool:
        """The session waits on the API (rate limit / overloaded): park, and say so.

        Returns True when it handled the state. A waiting state from before this task was
        last told to continue is the old one, not a new refusal.
        """
        kind = RATE_REASONS.get(reason)
        provider = self.provider(profile)
        if kind is None:
            return False
        flags = dict(task.flags)
        resumed_at = flags.get("resumed_at")
        if isinstance(resumed_at, (int, float)) and state_since <= resumed_at:
            return True  # our "continue" is on its way; the state is the old one
        if self._self_retrying(task.id):
            self._on_self_retry(task, provider, kind, state_since, resume_at, detail, now)
            return True
        parks = self.parks()
        existing = parks.get(provider) if provider else None
        if provider is None:
            why = f"{reason.replace('_', ' ')}: waits for the agent to continue"
        else:
            probed = _probed_park(flags, provider, now)
            if existing is None and probed is not None:
                # Told to continue, refused again, and the parking was already lifted (every
                # parked session had been told): still a failed probe, not a new parking.
                current = replace(after_probe_failed(probed, now, self.cfg), since=now)
            elif existing is None:
                current = park(None, provider, kind, resume_at, now, self.cfg,
                               source=f"session {task.id}")
            elif isinstance(resumed_at, (int, float)) and flags.get("resumed_park") == existing.since:
                # Told to continue in this parking and refused again: the probe failed.
                current = replace(after_probe_failed(existing, now, self.cfg), since=now)
            else:
                current = _lasting_until(existing, resume_at)
            self._record_park(task.id, existing, current, detail)
            why = f"{reason.replace('_', ' ')}: {current.why()}"
            flags["park_since"] = current.since
        flags["rate_limited"] = {"reason": reason, "since": state_since}
        if task.state != WAITING or task.state_reason != why or flags != task.flags:
            self.orch._set(replace(task, flags=flags), WAITING, why, now)
        return True

    def _self_retrying(self, session: str) -> bool:
        """The session's waiting comes from the CLI's own retry countdown (status.py)."""
        state = self.orch.sessions.tracker.get(session)
        return state.name == "waiting" and state.source == SELF_RETRY_SOURCE

    def _on_self_retry(self, task: Task, provider: str | None, kind: str, state_since: float,
                       resume_at: float | None, detail: str | None, now: float) -> None:
        """The CLI retries by itself: park new starts of its provider until its next attempt,
        never queue the session for a "continue" (it goes on alone; NOTES.md "API errors")."""
        flags = dict(task.flags)
        flags.pop("park_since", None)  # not in any resume queue
        attempt = attempt_in(detail)
        when = clock(resume_at) if resume_at is not None else "soon"
        why = (f"{kind.replace('_', ' ')}: the CLI retries by itself at {when}"
               + (f" (attempt {attempt})" if attempt else "") + ", not typed into")
        if provider is not None:
            if resume_at is None or now - resume_at < SELF_RETRY_STALE:
                self.retry_seen[provider] = now  # a countdown long past is no retry any more
            existing = self.parks().get(provider)
            if existing is None:
                current = park(None, provider, kind, resume_at, now, self.cfg,
                               source=f"session {task.id} {SELF_RETRY_PARK}")
            else:
                current = _lasting_until(existing, resume_at)
            self._record_park(task.id, existing, current, detail, self_retry=True)
            why += f"; {current.why()}"
        flags["rate_limited"] = {"reason": kind, "since": state_since, "self_retry": True}
        if task.state != WAITING or task.state_reason != why or flags != task.flags:
            self.orch._set(replace(task, flags=flags), WAITING, why, now)

    def _record_park(self, task_id: str, existing: Park | None, current: Park,
                     detail: str | None, **extra: Any) -> None:
        """Store a parking that changed; a new one is a ``ProviderParked`` event."""
        if current == existing:
            return
        rs.save_park(self.orch.conn, current)
        if existing is None or current.since != existing.since:
            self.orch._event(task_id, PROVIDER_PARKED, {"park": current.to_json(),
                                                        "detail": detail or "", **extra},
                             current.why())

    def on_continued(self, task: Task, now: float) -> Task:
        """The session works again without us (the CLI retried by itself): never resume it."""
        flags = dict(task.flags)
        since = flags.pop("park_since", None)
        limited = flags.pop("rate_limited", None)
        if isinstance(limited, dict) and limited.get("self_retry"):
            self._cut_self_retry_park(task, now)
        if isinstance(since, (int, float)):
            rs.mark_resumed(self.orch.conn, task.id, since, self.provider_of_task(task) or "",
                            now)
        return replace(task, flags=flags)

    def _cut_self_retry_park(self, task: Task, now: float) -> None:
        """A session whose CLI retried by itself works again: the API took a request, so a
        parking its countdown started ends now (the tick lifts it a stagger later, unless
        another refusal comes first). A parking a StopFailure started keeps its probe."""
        provider = self.provider_of_task(task)
        p = self.parks().get(provider) if provider else None
        if p is not None and SELF_RETRY_PARK in p.source and p.until is not None \
                and p.until > now:
            rs.save_park(self.orch.conn, replace(p, until=now))

    def provider_of_task(self, task: Task) -> str | None:
        session = self.orch.sessions.sessions.get(task.id)
        return self.provider(session.agent) if session else None

    async def tick(self, tasks: list[Task], now: float) -> None:
        """Resume parked sessions after the reset, one per stagger; unpark when none is left."""
        for provider, p in self.parks().items():
            if p.due(now) > now:
                continue
            if now - self.retry_seen.get(provider, float("-inf")) < max(self.cfg.resume_stagger, 1.0):
                # A session of it was refused moments ago and its CLI retries by itself: that
                # retry is the probe. No "continue" typed anywhere, the parking holds.
                continue
            marks = rs.resumed(self.orch.conn, p.since)
            waiting = sorted((t for t in tasks if t.state == WAITING
                              and t.flags.get("park_since") == p.since
                              and t.id not in marks
                              and self.provider_of_task(t) == provider),
                             key=lambda t: (t.flags.get("rate_limited", {}).get("since", 0), t.id))
            if not waiting:
                rs.unpark(self.orch.conn, provider)
                self.orch._event(provider, PROVIDER_RESUMED, {"provider": provider,
                                                              "park": p.to_json(),
                                                              "resumed": sorted(marks)},
                                 f"provider {provider} resumed ({len(marks)} session(s) told "
                                 "to continue)")
                continue
            last = max(marks.values(), default=None)
            if last is not None and now < last + self.cfg.resume_stagger:
                continue  # staggered: the next one later
            await self._resume(waiting[0], p, now)

    async def _resume(self, task: Task, p: Park, now: float) -> None:
        if not rs.mark_resumed(self.orch.conn, task.id, p.since, p.provider, now):
            return  # resumed already (by an earlier tick, or before a restart)
        flags = dict(task.flags)
        flags.update(resumed_at=now, resumed_park=p.since, resumed_from=p.to_json())
        flags.pop("rate_limited", None)
        orch = self.orch
        running = orch._set(orch._new_round(replace(task, flags=flags), now, same_round=True,
                                            outbox=CONTINUE_PROMPT),
                            RUNNING, f"told to continue after the {p.kind.replace('_', ' ')} "
                                     f"(provider {p.provider})", now)
        orch._deliver(running)

    # -- authentication --------------------------------------------------------------------
    @staticmethod
    def is_auth(reason: str | None) -> bool:
        return classify_stop_failure(reason) == AUTH

    def auth_failed(self, task: Task, profile: str, reason: str) -> None:
        self.orch._event(task.id, AUTH_FAILED, {"task": task.id, "profile": profile,
                                                "provider": self.provider(profile),
                                                "error": reason},
                         f"authentication failed for {profile}: {reason}"[:200])

    # -- stalls and loops ------------------------------------------------------------------
    def check_stall(self, task: Task, now: float) -> None:
        session = self.orch.sessions.sessions.get(task.id)
        if session is None:
            return
        tracker = self.orch.sessions.tracker
        state = tracker.get(task.id)
        last = max(tracker.mem(task.id).last_hook_at, float(session.last_activity or 0),
                   state.since, float(task.flags.get("round_started") or 0))
        flagged = task.flags.get("stalled")
        if stalled(state.name, last, now, self.cfg.stall_minutes):
            if isinstance(flagged, dict) and flagged.get("last") == last:
                return
            flags = dict(task.flags, stalled={"since": last, "last": last, "flagged": now})
            quiet = (now - last) / 60.0
            self.orch._event(task.id, SESSION_STALLED, {"task": task.id, "quiet_minutes": quiet,
                                                        "last_signal": last},
                             f"session {task.id} working but silent for {quiet:.1f} min")
            self.orch._set(replace(task, flags=flags), task.state,
                           f"stalled: no hook event and no screen change for {quiet:.1f} min", now)
        elif flagged and state.name == WORKING and isinstance(flagged, dict) \
                and flagged.get("last") != last:
            flags = {k: v for k, v in task.flags.items() if k != "stalled"}
            self.orch._set(replace(task, flags=flags), task.state, "active again", now)

    def on_event(self, event: Event) -> None:
        if event.event not in ("PreToolUse", "BeforeTool") or event.agent == "hive":
            return
        tool = event.payload.get("tool_name") or event.tool
        watch = self.loops.setdefault(event.session, LoopWatch())
        if not watch.see(tool, event.payload.get("tool_input"), self.cfg.loop_repeats):
            return
        found = self.orch._task_of(event.session)
        if found is None:
            return
        task = found[0]
        loop = {"tool": str(tool), "repeats": watch.count, "since": event.time,
                "input": str(event.payload.get("tool_input"))[:300]}
        self.orch._event(task.id, SESSION_LOOPING, {"task": task.id, **loop},
                         f"session {event.session} called {tool} with the same input "
                         f"{watch.count} times in a row")
        current = self.orch._cache.get(task.id, task)
        flags = dict(current.flags, looping=loop)
        self.orch._set(replace(current, flags=flags), current.state,
                       f"looping: {tool} with the same input {watch.count} times in a row",
                       event.time)


def describe(parks: dict[str, Park]) -> list[dict[str, Any]]:
    return [p.to_json() for p in sorted(parks.values(), key=lambda p: p.provider)]


PROBE_MEMORY = 600.0  # seconds after a resume during which a refusal counts as its failed probe


def _probed_park(flags: dict[str, Any], provider: str, now: float) -> Park | None:
    """The parking this task was last told to continue from, if that was recent."""
    data, at = flags.get("resumed_from"), flags.get("resumed_at")
    if not isinstance(data, dict) or not isinstance(at, (int, float)) or \
            data.get("provider") != provider or now - at > PROBE_MEMORY:
        return None
    return Park(provider, str(data.get("kind") or RATE_LIMIT), float(data.get("since") or at),
                data.get("until"), int(data.get("probes") or 0), str(data.get("source") or ""))


def _lasting_until(existing: Park, resume_at: float | None) -> Park:
    """``existing``, lasting at least until ``resume_at``."""
    if resume_at is not None and (existing.until or 0) < resume_at:
        return replace(existing, until=resume_at)
    return existing
