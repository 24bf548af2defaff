"""The merge queue's decisions, pure: the item record, its states, the order and its reasons.

Nothing here runs git or touches the store: the driver (:mod:`.merging`) gathers the facts
(predicted conflicts, check results, whether a session still runs in a worktree) and asks.

States (``MERGE_STATES`` in :mod:`hive_lab.wire`)::

    queued -> updating -> checking -> awaiting_approval -> approved -> merging -> merged
       ^          |           |                                |
       |          +-> needs_you (conflict, dirty worktree)     +-> queued (base moved on)
       +------ waiting (a session still runs in the branch's worktree)
    needs_you / resolving (a resolver task) / rejected / canceled / superseded

One item per (repo, base) is *in flight* (updating .. merging) at a time; ``awaiting_approval``
holds its queue, because the next branch must be brought up to date with whatever this one
adds to the base.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Mapping

QUEUED, WAITING, UPDATING, CHECKING, AWAITING, APPROVED, MERGING = (
    "queued", "waiting", "updating", "checking", "awaiting_approval", "approved", "merging")
MERGED, NEEDS_YOU, RESOLVING, REJECTED, CANCELED, SUPERSEDED = (
    "merged", "needs_you", "resolving", "rejected", "canceled", "superseded")
STATES = (QUEUED, WAITING, UPDATING, CHECKING, AWAITING, APPROVED, MERGING, MERGED, NEEDS_YOU,
          RESOLVING, REJECTED, CANCELED, SUPERSEDED)
IN_FLIGHT = (UPDATING, CHECKING, AWAITING, APPROVED, MERGING)
IN_QUEUE = (QUEUED, WAITING, *IN_FLIGHT)  # ordered and driven
TERMINAL = (MERGED, REJECTED, CANCELED, SUPERSEDED)
# A person may approve ahead of time (the merge still waits for the checks).
APPROVABLE = (QUEUED, WAITING, UPDATING, CHECKING, AWAITING)
CONFLICT_POLICIES = ("needs_you", "resolver")


@dataclass(frozen=True)
class MergeItem:
    """One branch offered for merging into its base, and everything that happened to it."""

    id: int
    repo: str  # main worktree of the repository
    branch: str
    base: str
    checks: tuple[tuple[str, ...], ...] = ()
    source: str = "api"
    state: str = QUEUED
    reason: str = ""
    created: float = 0.0
    updated: float = 0.0
    head: str = ""  # the branch's head when offered
    generation: int = 0  # moves on every change made from outside the driver
    worktree: str | None = None  # where it is brought up to date and checked
    temp: bool = False  # that worktree is ours (made for this item; removed after)
    base_sha: str | None = None  # the base tip merged into the branch
    checked_head: str | None = None  # the branch head the checks passed on
    approved: bool = False
    approved_at: float | None = None
    approved_head: str | None = None  # the branch's head the person approved
    merged_sha: str | None = None
    conflicts: tuple[str, ...] = ()  # a real conflict's paths
    check_runs: tuple[dict[str, Any], ...] = ()
    position: int | None = None  # 1 = next (in flight or first in line)
    order_reason: str = ""
    predicted: tuple[dict[str, Any], ...] = ()  # {"with": id or base, "paths": [...]}
    resolver: str | None = None  # resolver task id
    cleanup: str = ""  # what became of the worktree after the merge

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [list(c) for c in self.checks]
        data["conflicts"] = list(self.conflicts)
        data["check_runs"] = list(self.check_runs)
        data["predicted"] = list(self.predicted)
        return data

    def data_json(self) -> str:
        """Everything but the indexed columns, for the store."""
        data = self.to_json()
        for key in ("id", "repo", "branch", "base", "state", "created", "updated", "generation"):
            data.pop(key)
        return json.dumps(data)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "MergeItem":
        data = json.loads(row["data"] or "{}")
        known = set(cls.__dataclass_fields__)
        data = {k: v for k, v in data.items() if k in known}
        data["checks"] = tuple(tuple(c) for c in data.get("checks") or ())
        data["conflicts"] = tuple(data.get("conflicts") or ())
        data["check_runs"] = tuple(data.get("check_runs") or ())
        data["predicted"] = tuple(data.get("predicted") or ())
        return cls(id=row["id"], repo=row["repo"], branch=row["branch"], base=row["base"],
                   state=row["state"], created=row["created"], updated=row["updated"],
                   generation=row["generation"], **data)


@dataclass(frozen=True)
class Placement:
    item: MergeItem
    position: int
    reason: str
    predicted: tuple[dict[str, Any], ...] = field(default=())


def _paths(paths: Iterable[str]) -> str:
    shown = list(paths)
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def order(items: list[MergeItem], pair_conflicts: Mapping[frozenset[int], list[str]],
          base_conflicts: Mapping[int, list[str]]) -> list[Placement]:
    """The order of one (repo, base) queue, each place with the reason for it.

    - The item in flight keeps its place (it is never preempted).
    - Otherwise offer order, except that an item predicted to conflict with one ahead of it
      (or with the base as it is) goes after every item predicted to merge cleanly: the
      earlier offer merges first, the clean ones are not held up behind a likely stop.
    """
    ranked = sorted(items, key=lambda i: (i.state not in IN_FLIGHT, i.id))
    first: list[Placement] = []
    later: list[Placement] = []
    for n, item in enumerate(ranked):
        ahead = ranked[:n]
        behind = ranked[n + 1:]
        predicted = tuple(
            {"with": other.id, "branch": other.branch, "paths": pair_conflicts[key]}
            for other in ranked if other is not item
            and (key := frozenset((item.id, other.id))) in pair_conflicts)
        if item.id in base_conflicts:
            predicted += ({"with": item.base, "paths": base_conflicts[item.id]},)
        blockers = [o for o in ahead if frozenset((item.id, o.id)) in pair_conflicts]
        rivals = [o for o in behind if frozenset((item.id, o.id)) in pair_conflicts]
        before = (f"before #{rivals[0].id} ({rivals[0].branch}): predicted conflict on "
                  f"{_paths(pair_conflicts[frozenset((item.id, rivals[0].id))])}, and this one "
                  "was offered first" if rivals else "")
        if item.state in IN_FLIGHT:
            first.append(Placement(item, 0, "in progress: one branch at a time per base"
                                   + (f"; {before}" if before else ""), predicted))
        elif item.id in base_conflicts:
            later.append(Placement(item, 0, (
                f"after the clean ones: predicted to conflict with {item.base} already "
                f"({_paths(base_conflicts[item.id])})"), predicted))
        elif blockers:
            b = blockers[0]
            later.append(Placement(item, 0, (
                f"after #{b.id} ({b.branch}): both change {_paths(pair_conflicts[frozenset((item.id, b.id))])} "
                f"(predicted conflict) and #{b.id} was offered first; the branches predicted "
                "to merge cleanly go before this one"), predicted))
        else:
            first.append(Placement(item, 0, before or "in offer order; no conflict predicted",
                                   predicted))
    return [replace(p, position=i + 1) for i, p in enumerate(first + later)]


def next_to_start(placements: list[Placement]) -> MergeItem | None:
    """The item to drive now: the one in flight, else the first queued in order."""
    for p in placements:
        if p.item.state in IN_FLIGHT:
            return p.item
    for p in placements:
        if p.item.state == QUEUED:
            return p.item
    return None


def after_checks(passed: bool, approved: bool, auto: bool, failed: str) -> tuple[str, str]:
    """(state, reason) once the checks ran on the brought-up-to-date branch."""
    if not passed:
        return NEEDS_YOU, f"a check failed after bringing the branch up to date: {failed}"
    if approved:
        return APPROVED, "checks passed; approved: merging"
    if auto:
        return APPROVED, "checks passed; merge_auto is on: merging"
    return AWAITING, "checks passed; waiting for a person to approve the merge"


def before_merge(item: MergeItem, branch_head: str | None, base_tip: str | None
                 ) -> tuple[str, str, bool] | None:
    """Has anything moved since the checks? (state, reason, keep approval) or None to merge."""
    if branch_head is None:
        return NEEDS_YOU, f"branch {item.branch} is gone", False
    if base_tip is None:
        return NEEDS_YOU, f"base branch {item.base} is gone", False
    if branch_head != item.checked_head:
        return QUEUED, (f"{item.branch} has new commits since it was checked: bringing it up "
                        "to date and checking again (approve again)"), False
    if base_tip != item.base_sha:
        return QUEUED, (f"{item.base} moved on since {item.branch} was brought up to date: "
                        "updating and checking again"), True
    return None


def approval_stale(new_commits: int) -> tuple[str, str] | None:
    """An approval covers the branch as the person saw it: its own commits since then need a
    new one (merges of the base into it do not)."""
    if new_commits <= 0:
        return None
    return AWAITING, (f"{new_commits} new commit{'s' * (new_commits != 1)} on the branch since "
                      "it was approved: approve again")


def on_restart(item: MergeItem, merged_already: bool) -> tuple[str, str] | None:
    """Where an item found in flight after a restart goes on from (None: as it is).

    Nothing runs twice that must not: an item whose checked head is already in the base was
    merged before the server stopped, and is recorded so, not merged again."""
    if item.state == MERGING:
        if merged_already:
            return MERGED, "merged (found in the base after a restart)"
        return APPROVED, "resuming after a restart: merging"
    if item.state in (UPDATING, CHECKING):
        return QUEUED, "resuming after a restart: bringing the branch up to date again"
    return None


def conflict_state(policy: str) -> str:
    return RESOLVING if policy == "resolver" else NEEDS_YOU
