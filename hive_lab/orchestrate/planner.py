"""The planning step: a pure function from the current state to what to start, and why not.

Level-triggered: every tick re-reads everything, so a missed edge or a restart loses nothing;
a separate step (phase 2) claims and starts what the plan says. Deterministic: inputs are
sorted here, so the same state gives the same plan whatever order it was read in.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from . import scopes
from .tasks import ACTIVE, CANCELED, DONE, FAILED, PENDING, READY, Task


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    capabilities: frozenset[str] = frozenset()
    installed: bool = True
    max_sessions: int | None = None
    parked: str | None = None  # why no session of it starts now (its provider is parked)


@dataclass(frozen=True)
class RunningInfo:
    task_id: str | None
    profile: str


@dataclass(frozen=True)
class Limits:
    max_agents: int | None = None
    restarts_left: int | None = None  # the fleet's restart cap: restarts still allowed now
    restarts_why: str = "fleet restart cap reached"


@dataclass(frozen=True)
class Start:
    task_id: str
    profile: str


@dataclass
class Plan:
    start: list[Start] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)
    promote: list[str] = field(default_factory=list)  # pending tasks whose dependencies are done


class _ScopeIndex:
    """Scopes of tasks holding them, bucketed by (repo, literal first segment) so a candidate is
    compared only with tasks that could overlap it, not with every running task."""

    def __init__(self) -> None:
        self.by_head: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        self.wild: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self.repo_all: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self.group: dict[str, str] = {}  # task id -> its pipeline (stages take turns)

    def add(self, task: Task, label: str) -> None:
        if task.flags.get("pipeline"):
            self.group[task.id] = str(task.flags["pipeline"])
        for pattern in task.scope:
            entry = (task.id, pattern, label)
            head = scopes.head_key(pattern)
            if head is None:
                self.wild[task.repo].append(entry)
            else:
                self.by_head[(task.repo, head)].append(entry)
            self.repo_all[task.repo].append(entry)

    def first_overlap(self, task: Task) -> tuple[str, str, str] | None:
        """(other task, its pattern, label) of the first overlap, in a stable order."""
        hits: list[tuple[str, str, str]] = []
        group = task.flags.get("pipeline")
        for pattern in task.scope:
            head = scopes.head_key(pattern)
            pool = self.repo_all[task.repo] if head is None else (
                self.by_head.get((task.repo, head), []) + self.wild.get(task.repo, []))
            for entry in pool:
                if group and self.group.get(entry[0]) == group:
                    continue
                if entry[0] != task.id and scopes.patterns_overlap(pattern, entry[1]):
                    hits.append(entry)
                    break
        return min(hits) if hits else None


def _capability_why(task: Task, profiles: Sequence[ProfileInfo]) -> str:
    need = set(task.requires)
    installed = [p for p in profiles if p.installed]
    missing = sorted(t for t in need if not any(t in p.capabilities for p in installed))
    if missing:
        not_installed = sorted(p.name for p in profiles if not p.installed and need <= p.capabilities)
        quoted = ", ".join(f"'{m}'" for m in missing)
        text = f"no installed profile has capability {quoted}"
        return text + (f" ({', '.join(not_installed)} would, but is not installed)" if not_installed else "")
    return "no installed profile has all of " + ", ".join(f"'{t}'" for t in sorted(need))


def plan(tasks: Iterable[Task], profiles: Iterable[ProfileInfo], sessions: Iterable[RunningInfo],
         conflicts: Iterable[frozenset[str]], limits: Limits, now: float) -> Plan:
    """Decide what to start now; a reason in ``why`` for every ready or pending task that is not.

    Rules: dependencies done; requires within a profile's capabilities; that profile installed
    and under its ``max_sessions``; the fleet under ``max_agents``; no scope overlap and no
    predicted branch conflict with a task holding its scope (or started earlier in this plan);
    highest priority first, then oldest, then id. An explicit ``agent`` is used only if eligible.
    """
    all_tasks = sorted(tasks, key=lambda t: t.id)
    by_id = {t.id: t for t in all_tasks}
    profs = sorted(profiles, key=lambda p: p.name)
    prof_by_name = {p.name: p for p in profs}
    load: dict[str, int] = defaultdict(int)
    fleet = 0
    for s in sessions:
        load[s.profile] += 1
        fleet += 1
    conflict_with: dict[str, set[str]] = defaultdict(set)
    for pair in conflicts:
        if len(pair) == 2:
            a, b = sorted(pair)
            conflict_with[a].add(b)
            conflict_with[b].add(a)

    out = Plan()
    holders = _ScopeIndex()
    holding: set[str] = set()
    for t in all_tasks:
        if t.state in ACTIVE:
            holders.add(t, "running")
            holding.add(t.id)

    candidates: list[Task] = []
    for t in all_tasks:
        if t.state not in (READY, PENDING):
            continue
        waits = [d for d in t.depends_on if by_id.get(d) is None or by_id[d].state != DONE]
        if waits:
            dead = [d for d in waits if d in by_id and by_id[d].state in (FAILED, CANCELED)]
            if dead:
                out.why[t.id] = f"dependency {dead[0]} {by_id[dead[0]].state}; this task cannot start"
            else:
                out.why[t.id] = "waits for task " + ", ".join(waits)
            continue
        if t.state == PENDING:
            out.promote.append(t.id)
        candidates.append(t)
    candidates.sort(key=lambda t: (-t.priority, t.created, t.id))
    restarts_left = limits.restarts_left

    eligible_cache: dict[tuple[frozenset[str], str | None], list[ProfileInfo] | str] = {}
    for t in candidates:
        key = (frozenset(t.requires), t.agent)
        eligible = eligible_cache.get(key)
        if eligible is None:
            eligible = _eligible(t, profs, prof_by_name)
            eligible_cache[key] = eligible
        if isinstance(eligible, str):
            out.why[t.id] = eligible
            continue
        not_before = t.flags.get("not_before")
        if isinstance(not_before, (int, float)) and not_before > now:
            out.why[t.id] = str(t.flags.get("not_before_why") or t.state_reason)
            continue
        hit = holders.first_overlap(t)
        if hit is not None:
            other, pattern, label = hit
            where = "running task" if label == "running" else "task"
            suffix = " (starting now)" if label != "running" else ""
            out.why[t.id] = f"scope overlaps {where} {other}{suffix} on {pattern}"
            continue
        rival = sorted(r for r in conflict_with.get(t.id, set()) & holding
                       if not (t.flags.get("pipeline")
                               and by_id[r].flags.get("pipeline") == t.flags.get("pipeline")))
        if rival:
            kind = "running task" if rival[0] in by_id and by_id[rival[0]].state in ACTIVE else "task"
            out.why[t.id] = f"branch predicted to conflict with {kind} {rival[0]}"
            continue
        if limits.max_agents is not None and fleet >= limits.max_agents:
            out.why[t.id] = f"fleet at max_agents={limits.max_agents}"
            continue
        unparked = [p for p in eligible if not p.parked]
        if not unparked:
            out.why[t.id] = str(eligible[0].parked)
            continue
        free = [p for p in unparked if p.max_sessions is None or load[p.name] < p.max_sessions]
        if not free:
            full = ", ".join(f"profile {p.name} at max_sessions={p.max_sessions}" for p in unparked)
            out.why[t.id] = full
            continue
        if t.attempts and restarts_left is not None:
            if restarts_left <= 0:
                out.why[t.id] = limits.restarts_why
                continue
            restarts_left -= 1
        chosen = min(free, key=lambda p: (load[p.name], p.name))
        out.start.append(Start(t.id, chosen.name))
        load[chosen.name] += 1
        fleet += 1
        holders.add(t, "starting")
        holding.add(t.id)
    return out


def _eligible(task: Task, profs: Sequence[ProfileInfo],
              by_name: dict[str, ProfileInfo]) -> list[ProfileInfo] | str:
    """Profiles that may run ``task`` (ignoring load), or the reason there are none."""
    need = set(task.requires)
    if task.agent is not None:
        p = by_name.get(task.agent)
        if p is None:
            return f"agent profile {task.agent} is not configured"
        if not p.installed:
            return f"agent profile {task.agent} is not installed"
        lacking = sorted(need - p.capabilities)
        if lacking:
            return f"agent profile {task.agent} lacks capability " + ", ".join(f"'{c}'" for c in lacking)
        return [p]
    found = [p for p in profs if p.installed and need <= p.capabilities]
    return found or _capability_why(task, profs)
