"""Failures, one policy per class: what kind of failure this is and what to do about it.

Pure: every function takes the facts and a ``now`` and returns a decision; the runtime stores
what must survive a restart (parked providers, restart times, resume marks) through
:mod:`.recoverystore` and keeps backoff timers as the task's ``not_before`` flag.

The classes (what the real Claude Code 2.1.197 does is in tests/claude_support/NOTES.md,
"API errors"):

- ``crash``: the agent's process exited non-zero or by a signal, or its session is gone.
  Restarted with exponential backoff up to the task's ``max_attempts``; a cap on restarts per
  hour for the whole fleet keeps an outage from becoming a restart storm.
- ``rate_limit`` / ``overloaded``: the API refused (429 / 529). The CLI does not exit: it shows
  the error and sits at its prompt. The session is *waiting*, the provider is parked for the
  fleet until its reset time (or probed with backoff when none is known), and parked sessions
  are told to continue one after another with a stagger, each at most once per parking.
  When the CLI retries by itself instead (its screen counts down, no hook fires), the session
  waits too and the provider is parked for new sessions, but that session is never told to
  continue: its own retry is the probe, and no parked session is resumed while it runs.
- ``auth``: 401. Failed after one try, with a notification; never a retry loop.
- ``stall``: working with no hook event and no screen change for N minutes. Flagged.
- ``loop``: the same tool call with the same input N times in a row. Flagged.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

CRASH, RATE_LIMIT, OVERLOADED, AUTH, STALL, LOOP = (
    "crash", "rate_limit", "overloaded", "auth", "stall", "loop")
KINDS = (CRASH, RATE_LIMIT, OVERLOADED, AUTH, STALL, LOOP)
PROVIDERS = ("claude", "codex", "gemini", "aider")
# Failures that park the provider (the API said no, not this agent).
PARKING = (RATE_LIMIT, OVERLOADED)

# Claude Code's StopFailure ``error`` values and its transcript's apiErrorStatus, by class.
_STOP_ERRORS = {
    "rate_limit": RATE_LIMIT,
    "overloaded": OVERLOADED, "overloaded_error": OVERLOADED, "server_error": OVERLOADED,
    "authentication_failed": AUTH, "authentication_error": AUTH, "invalid_api_key": AUTH,
    "oauth_token_revoked": AUTH, "billing_error": AUTH,
}
_STATUS = {429: RATE_LIMIT, 529: OVERLOADED, 503: OVERLOADED, 401: AUTH, 403: AUTH}


@dataclass(frozen=True)
class RecoveryConfig:
    """The knobs (traits on the server app); small values in tests."""

    backoff_base: float = 10.0  # first restart delay, doubled per failed attempt
    backoff_cap: float = 300.0
    fleet_restarts_per_hour: int = 30
    stall_minutes: float = 10.0
    loop_repeats: int = 5
    resume_stagger: float = 15.0  # seconds between two parked sessions told to continue
    probe_base: float = 60.0  # no reset time known: probe after this, doubling
    probe_cap: float = 900.0
    default_park: float = 60.0  # overloaded without retry-after: first probe

    def validate(self) -> "RecoveryConfig":
        for name in ("backoff_base", "backoff_cap", "stall_minutes", "resume_stagger",
                     "probe_base", "probe_cap", "default_park"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.fleet_restarts_per_hour < 0 or self.loop_repeats < 2:
            raise ValueError("fleet_restarts_per_hour must be >= 0 and loop_repeats >= 2")
        return self


# -- classification --------------------------------------------------------------------------
def classify_stop_failure(error: Any) -> str | None:
    """The class of a Claude Code ``StopFailure`` hook's ``error`` (None: not ours to handle)."""
    return _STOP_ERRORS.get(error) if isinstance(error, str) else None


def classify_status(status: Any) -> str | None:
    """The class of an API error status (transcript ``apiErrorStatus``)."""
    return _STATUS.get(status) if isinstance(status, int) and not isinstance(status, bool) else None


def provider_of(name: str, hooks: str | None, program: str | None) -> str | None:
    """A profile's vendor: its hook kind, else its program's name, else its own name."""
    for candidate in (hooks, (program or "").rsplit("/", 1)[-1], name):
        if candidate in PROVIDERS:
            return candidate
    return None


# -- crash: backoff and the fleet cap ---------------------------------------------------------
def backoff(failed_attempts: int, cfg: RecoveryConfig) -> float:
    """Delay before the next attempt after ``failed_attempts`` (1: the first failed)."""
    n = max(1, failed_attempts)
    return min(cfg.backoff_cap, cfg.backoff_base * (2 ** min(n - 1, 30)))


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


@dataclass(frozen=True)
class RetryDecision:
    """What to do with a task whose attempt just ended badly."""

    fail: bool
    reason: str
    not_before: float | None = None


def decide_retry(kind: str, used: int, max_attempts: int, reason: str, now: float,
                 cfg: RecoveryConfig) -> RetryDecision:
    """Crash: back off and retry while attempts are left. Auth: fail at once."""
    if kind == AUTH:
        return RetryDecision(True, f"authentication failed: {reason}; not retried (a retry "
                                   "cannot fix a key)")
    if used >= max_attempts:
        return RetryDecision(True, f"{reason}; {used} of {max_attempts} attempt(s) used")
    delay = backoff(used, cfg)
    at = now + delay
    return RetryDecision(False, f"restarts at {clock(at)} (backoff {delay:g} s, attempt "
                                f"{used + 1} of {max_attempts}): {reason}", at)


def restarts_left(history: Iterable[float], now: float, cap: int) -> tuple[int, float | None]:
    """(restarts still allowed this hour, when the next slot frees if none)."""
    recent = sorted(t for t in history if now - t < 3600.0)
    left = max(0, cap - len(recent))
    return left, (None if left or not recent else recent[0] + 3600.0)


# -- rate limits: parking and staggered resume ------------------------------------------------
@dataclass(frozen=True)
class Park:
    """A provider no new session starts on, until ``until`` (or a probe says it is back)."""

    provider: str
    kind: str  # rate_limit | overloaded
    since: float
    until: float | None  # the reset time, None when unknown (probe)
    probes: int = 0  # probes already made while the reset time is unknown
    source: str = ""

    def due(self, now: float) -> float:
        """When resuming (or probing) may begin."""
        return self.until if self.until is not None else self.since

    def why(self) -> str:
        label = "rate limit" if self.kind == RATE_LIMIT else "overloaded"
        when = clock(self.until) if self.until is not None else "unknown (probing)"
        return f"provider {self.provider} parked until {when} ({label})"

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "kind": self.kind, "since": self.since,
                "until": self.until, "probes": self.probes, "source": self.source,
                "why": self.why()}


def park(existing: Park | None, provider: str, kind: str, reset_at: float | None, now: float,
         cfg: RecoveryConfig, source: str = "") -> Park:
    """Park (or extend the parking of) ``provider``. Unknown reset: a probe after backoff."""
    if reset_at is None:
        probes = existing.probes if existing is not None else 0
        wait = min(cfg.probe_cap, (cfg.default_park if kind == OVERLOADED else cfg.probe_base)
                   * (2 ** min(probes, 30)))
        reset_at = now + wait
    if existing is not None and existing.until is not None and existing.until > reset_at:
        reset_at = existing.until
    since = existing.since if existing is not None else now
    return Park(provider, kind, since, reset_at,
                (existing.probes if existing is not None else 0), source)


def after_probe_failed(p: Park, now: float, cfg: RecoveryConfig) -> Park:
    """The session told to continue hit the limit again: wait longer (doubling)."""
    probes = p.probes + 1
    wait = min(cfg.probe_cap, cfg.probe_base * (2 ** min(probes, 30)))
    return Park(p.provider, p.kind, p.since, now + wait, probes, p.source)


def resume_schedule(waiting: Sequence[str], due: float, now: float, stagger: float,
                    last_resume: float | None = None) -> list[tuple[str, float]]:
    """When each parked session is told to continue: the first at ``due``, then one per
    ``stagger`` seconds (never all at once), in the order given."""
    start = max(due, now)
    if last_resume is not None:
        start = max(start, last_resume + stagger)
    return [(name, start + i * stagger) for i, name in enumerate(waiting)]


def parse_retry_after(value: Any, now: float) -> float | None:
    """An absolute time from a ``retry-after`` (seconds or HTTP date) or ISO reset header."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return now + float(value) if value >= 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return now + float(text)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    from datetime import datetime

    for parse in (parsedate_to_datetime, lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))):
        try:
            return parse(text).timestamp()
        except (TypeError, ValueError, IndexError):
            continue
    return None


# -- stall and loop detection -----------------------------------------------------------------
def stalled(state: str, last_signal: float, now: float, minutes: float) -> bool:
    """Working, and neither a hook nor the screen has said anything for ``minutes``."""
    return state == "working" and minutes > 0 and now - last_signal >= minutes * 60.0


def call_key(tool: Any, tool_input: Any) -> str:
    """One tool call's identity: its name and its input, canonically serialised."""
    try:
        body = json.dumps(tool_input, sort_keys=True, default=str)
    except (TypeError, ValueError):
        body = repr(tool_input)
    return f"{tool}\x00{body}"


@dataclass
class LoopWatch:
    """Consecutive identical tool calls of one session (from its PreToolUse events)."""

    key: str = ""
    count: int = 0
    flagged: bool = False
    tool: str = ""
    history: list[str] = field(default_factory=list)

    def see(self, tool: Any, tool_input: Any, repeats: int) -> bool:
        """Record a call; True exactly once when the run reaches ``repeats``."""
        key = call_key(tool, tool_input)
        if key == self.key:
            self.count += 1
        else:
            self.key, self.count, self.flagged, self.tool = key, 1, False, str(tool)
        if self.count >= repeats and not self.flagged:
            self.flagged = True
            return True
        return False
