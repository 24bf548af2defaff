"""Budgets, pure: limits, their parsing, spend counted from usage rows, evaluation, forecast.

No I/O and no clock of its own (every function takes ``now``), so the run-time keeper
(:mod:`.budgetkeeper`) and the tests drive it the same way. Everything is incremental: a
usage row is added to a :class:`Meter` once (and taken back out if the ledger replaces it with
a fuller copy), and evaluating a limit reads a few sums, so a tick costs the same whatever the
history. Windows: ``day`` is the UTC calendar day (00:00-24:00 UTC, the same for every user of
one server); ``5h`` is the rolling billing block ``ccusage blocks`` computes (a block starts
at its first row floored to the UTC hour and ends 5 h later). A row whose model has no known
price counts its tokens but makes the dollar figure *unknown* (a lower bound), never $0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from hive_lab.core.errors import BadRequest
from hive_lab.core.names import validate_name

SCOPES = ("task", "session", "profile", "fleet")
WINDOWS = ("none", "day", "5h")
DIMENSIONS = ("dollars", "tokens", "minutes")
LEVELS = ("ok", "warn", "paused", "ceiling")
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
DAY = 86400.0
BLOCK = 5 * 3600.0
RECENT = 30 * 60.0  # the burn rate is measured over the last 30 minutes
BUCKET = 60.0  # one minute per burn-rate bucket
MAX_LIMITS = 32  # per fleet or per profile
MAX_DOLLARS = 1e9
MAX_TOKENS = 10**15
MAX_MINUTES = 1e8
FLEET_KEY = "*"

LIMIT_FIELDS = ("dollars", "tokens", "minutes", "warn_at", "ceiling")
WINDOWED_FIELDS = (*LIMIT_FIELDS, "window")


@dataclass(frozen=True)
class Limit:
    """One budget: who it covers (scope + key), over which window, how much of what."""

    scope: str
    key: str
    window: str = "none"
    dollars: float | None = None
    tokens: int | None = None
    minutes: float | None = None
    warn_at: float = 0.8
    ceiling: float = 1.5

    @property
    def id(self) -> str:
        return f"{self.scope}:{self.key}:{self.window}"

    def amounts(self) -> dict[str, float | int | None]:
        return {"dollars": self.dollars, "tokens": self.tokens, "minutes": self.minutes}

    def describe(self) -> str:
        """``task t1`` / ``profile claude per UTC day`` / ``fleet per 5h block``."""
        who = "fleet" if self.scope == "fleet" else f"{self.scope} {self.key}"
        return who + {"none": "", "day": " per UTC day", "5h": " per 5h block"}[self.window]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "scope": self.scope, "key": self.key, "window": self.window,
                **self.amounts(), "warn_at": self.warn_at, "ceiling": self.ceiling}


# ---------------------------------------------------------------- parsing (hostile input)


def _number(value: Any, what: str, hi: float, integer: bool = False) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{what} must be a number or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{what} must be finite")
    if value < 0 or value > hi:
        raise BadRequest(f"{what} must be between 0 and {hi:g}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise BadRequest(f"{what} must be a whole number")
        return int(value)
    return float(value)


def _fraction(value: Any, what: str, default: float, lo: float, hi: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not lo <= value <= hi:
        raise BadRequest(f"{what} must be a number between {lo:g} and {hi:g}")
    return float(value)


def parse_limit(body: Any, scope: str, key: str, *, what: str, windowed: bool,
                default_window: str = "none", warn_at: float = 0.8,
                ceiling: float = 1.5) -> Limit:
    """One limit from a JSON object; every field is checked, unknown ones refused."""
    if not isinstance(body, Mapping):
        raise BadRequest(f"{what} must be an object with dollars, tokens and/or minutes")
    allowed = WINDOWED_FIELDS if windowed else LIMIT_FIELDS
    unknown = sorted(str(k)[:40] for k in body if k not in allowed)
    if unknown:
        raise BadRequest(f"unknown {what} field(s): {unknown}; allowed: {list(allowed)}")
    window = body.get("window", default_window) if windowed else "none"
    if window not in WINDOWS:
        raise BadRequest(f"{what} window must be one of {list(WINDOWS)}")
    dollars = _number(body.get("dollars"), f"{what} dollars", MAX_DOLLARS)
    tokens = _number(body.get("tokens"), f"{what} tokens", MAX_TOKENS, integer=True)
    minutes = _number(body.get("minutes"), f"{what} minutes", MAX_MINUTES)
    if dollars is None and tokens is None and minutes is None:
        raise BadRequest(f"{what} sets none of dollars, tokens, minutes")
    warn = _fraction(body.get("warn_at"), f"{what} warn_at", warn_at, 0.01, 1.0)
    ceil = _fraction(body.get("ceiling"), f"{what} ceiling", ceiling, 1.0, 100.0)
    return Limit(scope, key, window, dollars, tokens, minutes, warn, ceil)  # type: ignore[arg-type]


def _limit_list(value: Any, scope: str, key: str, what: str, warn_at: float,
                ceiling: float) -> tuple[Limit, ...]:
    """A list of windowed limits (or one object); at most one per window."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_LIMITS:
        raise BadRequest(f"{what} has {len(items)} limits; at most {MAX_LIMITS}")
    out: dict[str, Limit] = {}
    for item in items:
        limit = parse_limit(item, scope, key, what=what, windowed=True, default_window="day",
                            warn_at=warn_at, ceiling=ceiling)
        if limit.window in out:
            raise BadRequest(f"{what} has two limits for window {limit.window!r}")
        out[limit.window] = limit
    return tuple(out.values())


def task_budget_json(limit: Limit) -> dict[str, Any]:
    """What a task stores as its ``budget`` (the normalised body)."""
    out: dict[str, Any] = {k: v for k, v in limit.amounts().items() if v is not None}
    out.update(warn_at=limit.warn_at, ceiling=limit.ceiling)
    return out


def parse_task_budget(value: Any) -> dict[str, Any] | None:
    """A task's ``budget`` (POST tasks / PATCH tasks/{id}): normalised, or None for none."""
    if value is None:
        return None
    return task_budget_json(parse_limit(value, "task", "-", what="budget", windowed=False))


CONFIG_FIELDS = ("task", "session", "profile", "fleet", "warn_at", "ceiling")


@dataclass(frozen=True)
class BudgetConfig:
    """``c.HiveLab.budgets``: defaults per task and per session, limits per profile and fleet."""

    task: Limit | None = None  # key "*": the default of every task without its own budget
    session: Limit | None = None  # key "*": applies to every session
    profiles: Mapping[str, tuple[Limit, ...]] = field(default_factory=dict)
    fleet: tuple[Limit, ...] = ()
    warn_at: float = 0.8
    ceiling: float = 1.5

    @classmethod
    def parse(cls, value: Any) -> "BudgetConfig":
        """From the config dict; a typo is refused at start-up, not ignored."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise BadRequest("budgets must be an object")
        unknown = sorted(str(k)[:40] for k in value if k not in CONFIG_FIELDS)
        if unknown:
            raise BadRequest(f"unknown budgets field(s): {unknown}; allowed: {list(CONFIG_FIELDS)}")
        warn = _fraction(value.get("warn_at"), "budgets warn_at", 0.8, 0.01, 1.0)
        ceil = _fraction(value.get("ceiling"), "budgets ceiling", 1.5, 1.0, 100.0)
        kw: dict[str, Any] = {"warn_at": warn, "ceiling": ceil}
        for scope in ("task", "session"):
            if value.get(scope) is not None:
                kw[scope] = parse_limit(value[scope], scope, "*", what=f"budgets {scope}",
                                        windowed=False, warn_at=warn, ceiling=ceil)
        kw["profiles"] = parse_profiles(value.get("profile"), warn, ceil, allow_null=False)
        if value.get("fleet") is not None:
            kw["fleet"] = _limit_list(value["fleet"], "fleet", FLEET_KEY, "budgets fleet", warn, ceil)
        return cls(**kw)

    def task_limit(self, task_id: str, budget: Mapping[str, Any] | None) -> Limit | None:
        """The task's own budget, else the configured default for tasks."""
        memo = _TASK_LIMITS.get((id(self), task_id))
        if memo is not None and memo[0] == budget:
            return memo[1]
        limit = self._task_limit(task_id, budget)
        if len(_TASK_LIMITS) > 100_000:
            _TASK_LIMITS.clear()
        _TASK_LIMITS[(id(self), task_id)] = (dict(budget) if budget else budget, limit)
        return limit

    def _task_limit(self, task_id: str, budget: Mapping[str, Any] | None) -> Limit | None:
        if budget:
            try:
                return replace(parse_limit(budget, "task", task_id, what="budget",
                                           windowed=False, warn_at=self.warn_at,
                                           ceiling=self.ceiling))
            except BadRequest:
                return None  # stored before validation was tightened: not enforceable
        return replace(self.task, key=task_id) if self.task else None


_TASK_LIMITS: dict[tuple[int, str], tuple[Any, Limit | None]] = {}  # parsed once per budget


def parse_profiles(value: Any, warn: float, ceil: float,
                   allow_null: bool) -> dict[str, tuple[Limit, ...]]:
    """``{profile name: limit | [limits]}``; with ``allow_null`` a null clears an override."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest("profile budgets must be an object {profile name: limits}")
    if len(value) > 256:
        raise BadRequest("at most 256 profiles")
    out: dict[str, tuple[Limit, ...]] = {}
    for name, limits in value.items():
        name = validate_name(name, "profile name")
        if limits is None and allow_null:
            out[name] = ()
            continue
        out[name] = _limit_list(limits, "profile", name, f"budget of profile {name}", warn, ceil)
    return out


@dataclass(frozen=True)
class BudgetUpdate:
    """A validated ``PUT budgets`` body: the fleet's limits and/or some profiles' limits.

    A list given replaces the live limits of that scope; ``null`` (or ``[]``) drops the live
    override so the configured default applies again.
    """

    fleet: tuple[Limit, ...] | None  # None: not in the body
    fleet_cleared: bool
    profiles: Mapping[str, tuple[Limit, ...]]

    @classmethod
    def parse(cls, body: Any, config: BudgetConfig) -> "BudgetUpdate":
        if not isinstance(body, Mapping) or not body:
            raise BadRequest('budgets body must be an object: {"fleet": [...], "profile": {...}}')
        unknown = sorted(str(k)[:40] for k in body if k not in ("fleet", "profile"))
        if unknown:
            raise BadRequest(f"unknown budgets field(s): {unknown}; allowed: ['fleet', 'profile']")
        fleet: tuple[Limit, ...] | None = None
        cleared = False
        if "fleet" in body:
            if body["fleet"] is None or body["fleet"] == []:
                cleared = True
            else:
                fleet = _limit_list(body["fleet"], "fleet", FLEET_KEY, "fleet budget",
                                    config.warn_at, config.ceiling)
        profiles = parse_profiles(body.get("profile"), config.warn_at, config.ceiling,
                                  allow_null=True) if "profile" in body else {}
        return cls(fleet, cleared, profiles)


def limit_from_json(data: Mapping[str, Any]) -> Limit:
    """Back from :meth:`Limit.to_json` (stored rows we wrote ourselves)."""
    return Limit(str(data["scope"]), str(data["key"]), str(data.get("window", "none")),
                 data.get("dollars"), data.get("tokens"), data.get("minutes"),
                 float(data.get("warn_at", 0.8)), float(data.get("ceiling", 1.5)))


# ---------------------------------------------------------------- spend


@dataclass
class Spend:
    """Sums over some usage rows. ``unknown`` counts rows whose price is not known."""

    dollars: float = 0.0
    tokens: int = 0
    unknown: int = 0
    rows: int = 0

    def add(self, dollars: float | None, tokens: int, sign: int = 1) -> None:
        self.rows += sign
        self.tokens += sign * tokens
        if dollars is None:
            self.unknown += sign
        else:
            self.dollars += sign * dollars


@dataclass(frozen=True)
class Mark:
    """Where one row was counted in one meter, so a fuller copy can replace it exactly."""

    time: float
    dollars: float | None
    tokens: int
    block: float | None  # the 5h block it fell in (None: before the current block)


def floor_hour(t: float) -> float:
    return t - (t % 3600.0)


class Meter:
    """Running sums for one session, profile or the fleet: all time, per UTC day, the current
    5h block, and per-minute buckets of the last half hour for the burn rate."""

    __slots__ = ("total", "days", "block_start", "block_last", "block", "buckets", "_recent")

    def __init__(self) -> None:
        self.total = Spend()
        self.days: dict[int, Spend] = {}
        self.block_start: float | None = None
        self.block_last: float | None = None
        self.block = Spend()
        self.buckets: dict[int, list[float]] = {}  # minute -> [dollars known, tokens]
        self._recent = [0.0, 0.0]  # the sums of ``buckets`` (kept, not recomputed per tick)

    def add(self, t: float, dollars: float | None, tokens: int) -> Mark:
        self.total.add(dollars, tokens)
        day = int(t // DAY)
        spend = self.days.get(day)
        if spend is None:
            spend = self.days[day] = Spend()
            for old in [d for d in self.days if d < day - 1]:
                del self.days[old]
        spend.add(dollars, tokens)
        block: float | None = None
        if self.block_start is None or t - self.block_start > BLOCK:
            self.block_start, self.block_last, self.block = floor_hour(t), t, Spend()
        if t >= self.block_start:  # an older straggler belongs to a block already over
            block = self.block_start
            self.block.add(dollars, tokens)
            self.block_last = max(self.block_last or t, t)
        minute = int(t // BUCKET)
        bucket = self.buckets.get(minute)
        if bucket is None:
            if self.buckets and minute < next(iter(self.buckets)):
                return Mark(t, dollars, tokens, block)  # older than the burn-rate window
            bucket = self.buckets[minute] = [0.0, 0.0]
        bucket[0] += dollars or 0.0
        bucket[1] += tokens
        self._recent[0] += dollars or 0.0
        self._recent[1] += tokens
        return Mark(t, dollars, tokens, block)

    def remove(self, mark: Mark) -> None:
        self.total.add(mark.dollars, mark.tokens, -1)
        spend = self.days.get(int(mark.time // DAY))
        if spend is not None:
            spend.add(mark.dollars, mark.tokens, -1)
        if mark.block is not None and mark.block == self.block_start:
            self.block.add(mark.dollars, mark.tokens, -1)
        bucket = self.buckets.get(int(mark.time // BUCKET))
        if bucket is not None:
            bucket[0] -= mark.dollars or 0.0
            bucket[1] -= mark.tokens
            self._recent[0] -= mark.dollars or 0.0
            self._recent[1] -= mark.tokens

    def window(self, window: str, now: float) -> tuple[Spend, float | None, float | None]:
        """Spend in the window that contains ``now``, with that window's start and end."""
        if window == "day":
            day = int(now // DAY)
            return self.days.get(day) or Spend(), day * DAY, (day + 1) * DAY
        if window == "5h":
            start = self.block_start
            if start is not None and now < start + BLOCK and now - (self.block_last or start) < BLOCK:
                return self.block, start, start + BLOCK
            return Spend(), None, None  # no active block: the next row starts one
        return self.total, None, None

    def rate(self, now: float) -> tuple[float, float]:
        """Recent burn rate: (dollars per second, tokens per second) over the last 30 min."""
        lo = int((now - RECENT) // BUCKET)
        buckets = self.buckets
        while buckets:  # minutes arrive in order: the oldest is first
            first = next(iter(buckets))
            if first >= lo:
                break
            d, t = buckets.pop(first)
            self._recent[0] -= d
            self._recent[1] -= t
        if not buckets:
            self._recent = [0.0, 0.0]
            return 0.0, 0.0
        span = max(BUCKET, now - next(iter(buckets)) * BUCKET)
        return max(0.0, self._recent[0]) / span, max(0.0, self._recent[1]) / span


# ---------------------------------------------------------------- evaluation and forecast


@dataclass(frozen=True)
class BudgetStatus:
    """A limit measured: how much is used, which fraction of it, and what that means."""

    limit: Limit
    used: dict[str, float | int]
    fraction: float
    by: str | None  # the dimension nearest its limit
    unknown_cost: bool  # some rows have no known price: the dollar figure is a lower bound
    level: str
    forecast: float | None  # epoch seconds the limit is reached at the recent rate, if in window
    start: float | None = None
    end: float | None = None

    def summary(self) -> str:
        """``task t1: $0.0123 of $0.0100 (123%)``; an unknown price says so."""
        lim = self.limit
        if self.by == "dollars":
            what = f"${self.used['dollars']:.4f} of ${lim.dollars:.4f}"
        elif self.by == "tokens":
            what = f"{self.used['tokens']} of {lim.tokens} tokens"
        elif self.by == "minutes":
            what = f"{self.used['minutes']:.1f} of {lim.minutes:g} minutes"
        else:
            what = "nothing used"
        if self.unknown_cost:
            what += " (dollars unknown: a model without a known price was used)"
        return f"{lim.describe()}: {what} ({self.fraction:.0%})"

    def to_json(self) -> dict[str, Any]:
        from datetime import datetime, timezone

        def iso(t: float | None) -> str | None:
            return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat()

        used: dict[str, Any] = dict(self.used)
        if self.unknown_cost:
            used["dollars"] = None  # unknown, never a silent $0
            used["dollars_known"] = self.used["dollars"]
        return {**self.limit.to_json(), "used": used, "fraction": round(self.fraction, 6),
                "by": self.by, "unknown_cost": self.unknown_cost, "level": self.level,
                "forecast": iso(self.forecast), "window_start": iso(self.start),
                "window_end": iso(self.end), "summary": self.summary()}


def level_of(fraction: float, limit: Limit) -> str:
    if fraction >= limit.ceiling:
        return "ceiling"
    if fraction >= 1.0:
        return "paused"
    if fraction >= limit.warn_at:
        return "warn"
    return "ok"


def evaluate(limit: Limit, spend: Spend, minutes: float, now: float,
             rate: tuple[float, float] = (0.0, 0.0), minutes_rate: float = 0.0,
             start: float | None = None, end: float | None = None) -> BudgetStatus:
    """Measure ``limit`` against ``spend`` (+ ``minutes`` of wall clock) and forecast it.

    ``rate`` is the recent (dollars/s, tokens/s), ``minutes_rate`` minutes per second (the
    number of live sessions / 60). The forecast is the earliest time any dimension reaches
    its limit at those rates, or None if none does before the window ends (or it is reached).
    """
    used: dict[str, float | int] = {"dollars": spend.dollars, "tokens": spend.tokens,
                                    "minutes": minutes}
    rates = {"dollars": rate[0], "tokens": rate[1], "minutes": minutes_rate}
    fraction, by = 0.0, None
    forecast: float | None = None
    for dim, cap in limit.amounts().items():
        if cap is None:
            continue
        have = float(used[dim])
        f = have / cap if cap > 0 else (math.inf if have > 0 else 1.0)
        if by is None or f > fraction:
            fraction, by = f, dim
        if f < 1.0 and rates[dim] > 0:
            when = now + (cap - have) / rates[dim]
            if (end is None or when <= end) and (forecast is None or when < forecast):
                forecast = when
    if math.isinf(fraction):
        fraction = 1e9
    if fraction >= 1.0:
        forecast = None
    unknown = spend.unknown > 0 and limit.dollars is not None
    return BudgetStatus(limit, used, fraction, by, unknown, level_of(fraction, limit),
                        forecast, start, end)


def overlap_minutes(lives: Iterable[tuple[float, float | None]], lo: float | None,
                    now: float) -> float:
    """Agent-minutes of the ``(start, end or None=alive)`` spans since ``lo`` (None: ever)."""
    total = 0.0
    for start, end in lives:
        a = start if lo is None else max(start, lo)
        b = now if end is None else min(end, now)
        if b > a:
            total += b - a
    return total / 60.0


def worst(statuses: Iterable[BudgetStatus]) -> str:
    level = "ok"
    for s in statuses:
        if LEVEL_RANK[s.level] > LEVEL_RANK[level]:
            level = s.level
    return level
