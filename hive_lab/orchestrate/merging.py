"""The merge queue at run time: ready branches merged into their base one at a time.

The decisions are in :mod:`.mergeplan` (pure), the git in :mod:`hive_lab.core.gitmerge`, the
state in the ``merges`` table (:mod:`.mergestore`). The facade owns one :class:`MergeQueue`
as ``hive.merges`` and ticks it. Per (repo, base), in order: bring the branch up to date (the
base merged into it, in the branch's worktree), run its checks there, wait for a person's
approval unless ``merge_auto``, merge with a real merge commit, remove the worktree, refresh
the conflict predictions. A real conflict stops that branch (``needs_you``, or a resolver task)
and the queue goes on. Every step is stored before it is taken, so a restarted server goes on
from the store, and a branch already in its base is recorded as merged, never merged twice.
"""
from __future__ import annotations

import asyncio
import builtins
import logging
import os
import shlex
import sqlite3
import time
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path
from typing import Any

from ..core import events as ev
from ..core import gitmerge
from ..core.errors import BadRequest, Conflict, HiveError
from ..core.gitmonitor import GitMonitor
from ..core.gitwatch import ConflictPredictor
from ..core.recorder import Recorder
from ..core.sessions import SessionManager
from ..core.status import EXITED
from ..wire import MERGE_CHANGED
from . import mergestore as store
from .checks import run_check
from .mergeplan import (APPROVABLE, APPROVED, AWAITING, CANCELED, CHECKING, CONFLICT_POLICIES,
                        IN_FLIGHT, IN_QUEUE, MERGED, MERGING, NEEDS_YOU, QUEUED, REJECTED,
                        RESOLVING, STATES, SUPERSEDED, TERMINAL, UPDATING, WAITING, MergeItem,
                        Placement, after_checks, approval_stale, before_merge, next_to_start,
                        on_restart, order)

log = logging.getLogger("hive_lab.merges")

CHECK_RAN = "CheckRan"
MAX_CHECKS = 20
MAX_CHECK_ARGS = 200
MAX_SOURCE = 200


@dataclass(frozen=True)
class MergeConfig:
    auto: bool = False  # c.HiveLab.merge_auto: merge without a person's approval
    conflict: str = "needs_you"  # c.HiveLab.merge_conflict: "needs_you" | "resolver"
    resolver_agent: str | None = None  # c.HiveLab.merge_resolver_agent: its profile (None: any)
    check_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.conflict not in CONFLICT_POLICIES:
            raise ValueError(f"merge_conflict must be one of {', '.join(CONFLICT_POLICIES)}")


def parse_checks(value: Any) -> tuple[tuple[str, ...], ...]:
    """``checks``: a list of argv lists (run without a shell, cheapest first), or null."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_CHECKS:
        raise BadRequest(f"checks must be a list of at most {MAX_CHECKS} argv lists")
    out = []
    for argv in value:
        if (not isinstance(argv, list) or not argv or len(argv) > MAX_CHECK_ARGS
                or not all(isinstance(a, str) and "\x00" not in a for a in argv)
                or not argv[0].strip()):
            raise BadRequest("each check must be a non-empty list of strings (an argv, no NUL)")
        out.append(tuple(argv))
    return tuple(out)


def _source(value: Any) -> str:
    if value is None:
        return "api"
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SOURCE:
        raise BadRequest(f"source must be a non-empty string of at most {MAX_SOURCE} characters")
    return "".join(c if c.isprintable() else " " for c in value).strip()


class MergeQueue:
    """Ready branches into their base, one at a time, in an order it can explain."""

    def __init__(self, db_path: Path, recorder: Recorder, sessions: SessionManager,
                 git: GitMonitor, tasks: Any, scratch: Path,
                 config: MergeConfig | None = None) -> None:
        self.conn = sqlite3.connect(str(db_path), timeout=5.0, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.recorder = recorder
        self.sessions = sessions
        self.git = git
        self.tasks = tasks  # the Orchestrator: add() for resolver tasks, task_record()
        self.scratch = scratch  # <data_dir>/merges: the queue's own worktrees
        self.config = config or MergeConfig()
        self.predictor = ConflictPredictor()
        self._changed: dict[tuple[str, str, str], frozenset[str]] = {}
        self._lock = asyncio.Lock()
        self._checks: dict[int, asyncio.Task[None]] = {}
        self._resumed = False
        self._untidy: set[int] = set()  # items whose own worktree may be left to remove

    def close(self) -> None:
        for job in self._checks.values():
            job.cancel()
        self.conn.close()

    # -- the API (plain, synchronous: state changes only; the tick does the git) --------------
    def offer(self, repo: str, branch: str, base: str | None, checks: Any,
              source: str = "api") -> MergeItem:
        """Queue ``branch`` for merging into ``base`` (both local branches of ``repo``; no
        base: the branch checked out in the main worktree)."""
        root = gitmerge.repo_root(repo)
        branch = gitmerge.branch_name(branch, "branch")
        if base is None:
            base = gitmerge.current_branch(root)
            if base is None:
                raise BadRequest(f"give a base: {root} has no branch checked out")
        base = gitmerge.branch_name(base, "base")
        if branch == base:
            raise BadRequest("branch and base must differ")
        argvs = parse_checks(checks)
        src = _source(source)
        head = gitmerge.head_of(root, branch)
        if head is None:
            raise UnknownBranch(f"no branch {branch!r} in {root}")
        if gitmerge.head_of(root, base) is None:
            raise UnknownBranch(f"no base branch {base!r} in {root}")
        for other in store.list_items(self.conn, (*IN_QUEUE, NEEDS_YOU, RESOLVING), root):
            if other.branch == branch:
                raise AlreadyQueued(f"{branch} is already in the merge queue as #{other.id} "
                                    f"({other.state})", extra={"merge": other.id})
        item = store.insert(self.conn, MergeItem(
            id=0, repo=root, branch=branch, base=base, checks=argvs, source=src, head=head,
            reason=f"offered by {src}"))
        self._emit(item, None)
        return item

    def list(self, state: str | None = None, repo: str | None = None) -> list[MergeItem]:
        if state is not None and state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        return store.list_items(self.conn, (state,) if state else None,
                                os.path.realpath(repo) if repo else None)

    def get(self, item_id: int) -> MergeItem:
        return store.get(self.conn, item_id)

    def approve(self, item_id: int) -> MergeItem:
        """A person's yes: merged as soon as its checks pass on the up-to-date branch."""
        item = store.get(self.conn, item_id)
        if item.state in (APPROVED, MERGING, MERGED) or (item.approved and item.state in APPROVABLE):
            return item
        if item.state not in APPROVABLE:
            raise NotApprovable(f"merge #{item.id} is {item.state}: nothing to approve")
        state, reason = ((APPROVED, "approved: merging") if item.state == AWAITING
                         else (item.state, "approved ahead: merges once its checks pass"))
        head = item.checked_head if item.state == AWAITING else gitmerge.head_of(item.repo,
                                                                                 item.branch)
        return self._force(item, state, reason, approved=True, approved_at=time.time(),
                           approved_head=head)

    def reject(self, item_id: int) -> MergeItem:
        return self._end(item_id, REJECTED, "rejected by a person: not merged")

    def cancel(self, item_id: int) -> MergeItem:
        return self._end(item_id, CANCELED, "canceled: not merged")

    def retry(self, item_id: int) -> MergeItem:
        """Back in line after a person dealt with what stopped it (conflict, failed check)."""
        item = store.get(self.conn, item_id)
        if item.state != NEEDS_YOU:
            raise NotApprovable(f"merge #{item.id} is {item.state}: only needs_you can be retried")
        return self._force(item, QUEUED, "retried by a person: back in line", conflicts=(),
                           checked_head=None, base_sha=None, approved=False, approved_at=None,
                           approved_head=None)

    def _end(self, item_id: int, state: str, reason: str) -> MergeItem:
        item = store.get(self.conn, item_id)
        if item.state == MERGING:
            raise NotApprovable(f"merge #{item.id} is being merged right now")
        if item.state in TERMINAL:
            raise NotApprovable(f"merge #{item.id} is already {item.state}")
        return self._force(item, state, reason)

    def _force(self, item: MergeItem, state: str, reason: str, **changes: Any) -> MergeItem:
        saved = store.save(self.conn, replace(item, state=state, reason=reason, **changes),
                           bump=True)
        assert saved is not None
        self._emit(saved, item.state)
        return saved

    # -- events ------------------------------------------------------------------------------
    def _emit(self, item: MergeItem, previous: str | None) -> None:
        if item.temp and item.state not in IN_FLIGHT:
            self._untidy.add(item.id)
        self.recorder.record_now([ev.internal(
            f"merge-{item.id}", MERGE_CHANGED,
            {"merge": item.to_json(), "previous": previous, "reason": item.reason},
            f"#{item.id} {item.branch} -> {item.base}: {item.state}: {item.reason}"[:200])])

    def _move(self, item: MergeItem, state: str, reason: str, **changes: Any) -> MergeItem | None:
        """The driver's write: only if nobody changed the item meanwhile (None then)."""
        new = replace(item, state=state, reason=reason[:2000], **changes)
        saved = store.save(self.conn, new, expect=item.generation)
        if saved is not None and (state != item.state or new.reason != item.reason):
            self._emit(saved, item.state)
        return saved

    # -- the tick ----------------------------------------------------------------------------
    async def tick(self) -> None:
        async with self._lock:
            if not self._resumed:
                await self._resume()
                self._resumed = True
            groups: dict[tuple[str, str], builtins.list[MergeItem]] = {}
            for item in store.list_items(self.conn, IN_QUEUE):
                groups.setdefault((item.repo, item.base), []).append(item)
            for group in groups.values():
                try:
                    await self._drive(group)
                except Exception:
                    log.exception("merge queue %s <- %s", group[0].repo, group[0].base)
            await self._resolvers()
            await self._tidy()

    async def _resume(self) -> None:
        """Items a stopped server left in flight: go on from where they were, safely."""
        self._untidy = {i.id for i in store.list_items(self.conn) if i.temp}
        for item in store.list_items(self.conn, (UPDATING, CHECKING, MERGING)):
            merged = False
            if item.state == MERGING and item.checked_head:
                tip = await asyncio.to_thread(gitmerge.head_of, item.repo, item.base)
                merged = bool(tip) and await asyncio.to_thread(
                    gitmerge.is_ancestor, item.repo, item.checked_head, tip or "")
            decision = on_restart(item, merged)
            if decision is None:
                continue
            if item.worktree and item.state != MERGING and os.path.isdir(item.worktree):
                await asyncio.to_thread(gitmerge.abort_merge, item.worktree)
            state, reason = decision
            extra: dict[str, Any] = {}
            if state == MERGED:
                extra["merged_sha"] = await asyncio.to_thread(gitmerge.head_of, item.repo,
                                                              item.base)
                extra["cleanup"] = await self._after_merge(item)
                extra["temp"] = False
            self._move(item, state, reason, **extra)

    async def _drive(self, group: builtins.list[MergeItem]) -> None:
        for item in group:  # a waiting item goes back in line once its session stopped
            if item.state == WAITING and item.worktree and self._runner(item.worktree) is None:
                self._move(item, QUEUED, "the session in its worktree stopped: back in line")
        repo, base = group[0].repo, group[0].base
        group = [i for i in store.list_items(self.conn, IN_QUEUE, repo) if i.base == base]
        placements = await asyncio.to_thread(self._plan, group)
        for p in placements:
            if (p.position, p.reason, p.predicted) != (p.item.position, p.item.order_reason,
                                                       p.item.predicted):
                saved = store.save(self.conn, replace(p.item, position=p.position,
                                                      order_reason=p.reason,
                                                      predicted=p.predicted),
                                   expect=p.item.generation)
                if saved is not None and p.reason != p.item.order_reason:
                    self._emit(saved, p.item.state)
        chosen = next_to_start(placements)
        if chosen is None:
            return
        item = store.get(self.conn, chosen.id)  # with its new place
        if item.state in (QUEUED, UPDATING):
            await self._update(item)
        elif item.state == CHECKING:
            self._start_checks(item)
        elif item.state in (APPROVED, MERGING):
            await self._merge(item)

    def _plan(self, group: builtins.list[MergeItem]) -> builtins.list[Placement]:
        """Predicted conflicts (merge-tree on the heads, cached by commit pair) -> the order."""
        if not group:
            return []
        repo, base = group[0].repo, group[0].base
        branches = gitmerge.heads(repo)  # one git process for the whole queue
        heads = {i.id: branches.get(i.branch) for i in group}
        tip = branches.get(base)
        pairs: dict[frozenset[int], builtins.list[str]] = {}
        against_base: dict[int, builtins.list[str]] = {}
        files = {i.id: self._files(repo, tip, h) for i in group
                 if tip and (h := heads[i.id])}
        for a, b in combinations(group, 2):
            ha, hb = heads[a.id], heads[b.id]
            # Without a file both changed, two branches cannot conflict: merge-tree only then.
            if ha and hb and files.get(a.id, frozenset()) & files.get(b.id, frozenset()):
                p = self.predictor.predict_pair(repo, f"m{a.id}", ha, f"m{b.id}", hb)
                if p.conflict:
                    pairs[frozenset((a.id, b.id))] = p.paths
        for i in group:
            h = heads[i.id]
            if tip and h and i.state not in IN_FLIGHT:
                p = self.predictor.predict_pair(repo, "base", tip, f"m{i.id}", h)
                if p.conflict:
                    against_base[i.id] = p.paths
        return order(group, pairs, against_base)

    def _files(self, repo: str, tip: str, head: str) -> frozenset[str]:
        """A branch's changed files, cached by commit pair (a pair's answer never changes)."""
        key = (repo, tip, head)
        if key not in self._changed:
            if len(self._changed) > 4096:
                self._changed.clear()
            self._changed[key] = gitmerge.changed_files(repo, tip, head)
        return self._changed[key]

    def _runner(self, worktree: str) -> str | None:
        """The live session running in ``worktree`` (its files must not move under it)."""
        real = os.path.realpath(worktree)
        for name, session in list(self.sessions.sessions.items()):
            path = (session.worktree or {}).get("path") or session.cwd
            if path and os.path.realpath(path) == real \
                    and self.sessions.state(name).name != EXITED:
                return name
        return None

    # -- bringing the branch up to date -------------------------------------------------------
    async def _update(self, item: MergeItem) -> None:
        where = await asyncio.to_thread(gitmerge.checkout_of, item.repo, item.branch)
        temp = False
        if where is None:
            path = self.scratch / str(item.id)
            try:
                where = await asyncio.to_thread(gitmerge.add_worktree, item.repo, item.branch,
                                                path)
            except HiveError as exc:
                self._move(item, NEEDS_YOU, f"cannot check out {item.branch}: {exc.detail}")
                return
            temp = True
        else:
            temp = item.temp and os.path.realpath(where) == os.path.realpath(item.worktree or "")
            runner = self._runner(where)
            if runner is not None:
                self._move(item, WAITING, (
                    f"session {runner} is still running in {where}, where {item.branch} is "
                    "checked out: the queue will not move files under it; stop the session "
                    "and this branch goes back in line"), worktree=where)
                return
        moving = self._move(item, UPDATING, f"bringing {item.branch} up to date with {item.base}",
                            worktree=where, temp=temp)
        if moving is None:
            return
        item = moving
        try:
            await asyncio.to_thread(gitmerge.abort_merge, where)
            up = await asyncio.to_thread(gitmerge.update_branch, where, item.branch, item.base)
        except HiveError as exc:
            self._move(item, NEEDS_YOU, f"could not bring {item.branch} up to date: {exc.detail}")
            return
        if not up.ok:
            await self._conflict(item, up)
            return
        checking = self._move(item, CHECKING, (
            f"up to date with {item.base} at {up.base_sha[:12]}; running "
            f"{len(item.checks)} check(s)") if item.checks else "up to date; no checks given",
            base_sha=up.base_sha, checked_head=up.head, conflicts=())
        if checking is not None:
            self._start_checks(checking)

    async def _conflict(self, item: MergeItem, up: gitmerge.Update) -> None:
        paths = ", ".join(up.conflicts[:10]) or "(git named no file)"
        reason = (f"real conflict merging {item.base} into {item.branch} on {paths}: the merge "
                  f"was aborted and {item.branch} is exactly as it was")
        if self.config.conflict == "resolver":
            try:
                task_id = await self._resolver_task(item, up)
            except HiveError as exc:
                self._move(item, NEEDS_YOU, reason + f"; no resolver task: {exc.detail}",
                           conflicts=up.conflicts)
                return
            self._move(item, RESOLVING, reason + f"; resolver task {task_id} started on the "
                       "conflicting files", conflicts=up.conflicts, resolver=task_id)
            return
        self._move(item, NEEDS_YOU, reason + "; resolve it by hand (merge the base into the "
                   "branch), then retry", conflicts=up.conflicts)

    async def _resolver_task(self, item: MergeItem, up: gitmerge.Update) -> str:
        """A task scoped to the conflicting files, on a branch holding the merge with its
        conflict markers committed (``hive-merge-<id>``); its branch is offered when done.
        (git in a worker thread; the task is added on the loop thread, like every write.)"""
        name = f"hive-merge-{item.id}"
        task_id = f"resolve-merge-{item.id}"
        await asyncio.to_thread(gitmerge.make_resolve_branch, item.repo, item.branch, up.head,
                                up.base_sha, name, self.scratch / f"{item.id}-resolve")
        files = "\n".join(f"- {p}" for p in up.conflicts)
        self.tasks.add({
            "id": task_id, "title": f"Resolve the merge conflict of {item.branch} with {item.base}",
            "repo": item.repo, "base": name, "scope": list(up.conflicts),
            "check": list(item.checks[0]) if item.checks else None,
            "agent": self.config.resolver_agent,
            "prompt": (f"The branch {item.branch} was merged with {item.base}; git stopped on "
                       f"conflicts, committed here with their markers, in:\n{files}\n"
                       "Resolve every conflict (keep the intent of both sides), remove all "
                       "conflict markers, make sure the project still works, and commit.")})
        return task_id

    # -- checks ------------------------------------------------------------------------------
    def _start_checks(self, item: MergeItem) -> None:
        if item.id in self._checks:
            return
        job = asyncio.ensure_future(self._run_checks(item))
        self._checks[item.id] = job
        job.add_done_callback(lambda _: self._checks.pop(item.id, None))

    async def _run_checks(self, item: MergeItem) -> None:
        runs: builtins.list[dict[str, Any]] = []
        failed = ""
        for argv in item.checks:
            if not item.worktree or not os.path.isdir(item.worktree):
                failed = "the worktree to check in is gone"
                break
            result = await run_check(argv, item.worktree, self.config.check_timeout)
            run = {"check": list(argv), **result.to_json(), "head": item.checked_head,
                   "at": time.time()}
            runs.append(run)
            self.recorder.record_now([ev.internal(
                f"merge-{item.id}", CHECK_RAN, {"merge": item.id, **run},
                f"#{item.id} {shlex.join(argv)[:80]}: {result.reason}")])
            if not result.passed:
                failed = f"{shlex.join(argv)[:200]}: {result.reason}\n{result.output[-1500:]}"
                break
        async with self._lock:
            try:
                current = store.get(self.conn, item.id)
            except HiveError:
                return
            if current.state != CHECKING or current.checked_head != item.checked_head:
                return  # rejected, canceled or restarted meanwhile: these results are moot
            state, reason = after_checks(not failed, current.approved, self.config.auto, failed)
            self._move(current, state, reason, check_runs=(*current.check_runs, *runs))

    # -- merging -----------------------------------------------------------------------------
    async def _merge(self, item: MergeItem) -> None:
        head = await asyncio.to_thread(gitmerge.head_of, item.repo, item.branch)
        tip = await asyncio.to_thread(gitmerge.head_of, item.repo, item.base)
        if item.state == MERGING and head and tip and await asyncio.to_thread(
                gitmerge.is_ancestor, item.repo, head, tip):
            self._move(item, MERGED, "merged (found in the base)", merged_sha=tip,
                       cleanup=await self._after_merge(item), temp=False)
            return
        moved = before_merge(item, head, tip)
        if moved is not None:
            state, reason, keep = moved
            self._move(item, state, reason, approved=item.approved and keep)
            return
        assert head is not None and item.base_sha is not None and tip is not None
        if item.approved and item.approved_head and not self.config.auto:
            stale = approval_stale(await asyncio.to_thread(
                gitmerge.new_commits, item.repo, head, item.approved_head, tip))
            if stale is not None:
                self._move(item, stale[0], stale[1], approved=False, approved_head=None)
                return
        blocked = await asyncio.to_thread(gitmerge.base_blocked, item.repo, item.base)
        where = await asyncio.to_thread(gitmerge.checkout_of, item.repo, item.base)
        runner = self._runner(where) if where else None
        if runner and not blocked:
            blocked = (f"session {runner} is running in {where}, where {item.base} is checked "
                       "out: the queue will not move files under it; it merges once the "
                       "session stops")
        if blocked:
            # Stays approved and holds its queue (the base is unusable for everyone now);
            # looked at again every tick (one event, not one per tick), merged once it is clean.
            self._move(item, APPROVED, f"refused to merge: {blocked}")
            return
        merging = self._move(item, MERGING, f"merging {item.branch} into {item.base}")
        if merging is None:
            return
        message = (f"Merge {item.branch} into {item.base} (Hive Lab merge queue #{item.id}, "
                   f"{'approved by a person' if item.approved else 'merge_auto'})")
        try:
            new = await asyncio.to_thread(gitmerge.merge_into_base, item.repo, item.branch,
                                          head, item.base, item.base_sha, message)
        except gitmerge.DirtyCheckout as exc:  # dirtied between the look and the merge
            self._move(merging, APPROVED, f"refused to merge: {exc.detail}")
            return
        except gitmerge.BaseMoved as exc:
            self._move(merging, QUEUED, f"{exc.detail}: updating and checking again")
            return
        except HiveError as exc:
            self._move(merging, NEEDS_YOU, f"the merge failed: {exc.detail}")
            return
        note = await self._after_merge(merging)
        done = store.save(self.conn, replace(merging, state=MERGED, merged_sha=new, temp=False,
                                             cleanup=note,
                                             reason=f"merged into {item.base} as {new[:12]}"))
        if done is not None:  # written whatever happened meanwhile: the base has it now
            self._emit(done, MERGING)

    async def _after_merge(self, item: MergeItem) -> str:
        """Remove the worktree (the branch is merged: nothing is lost; the branch is kept),
        then refresh every session's git state and so the conflict predictions. Returns what
        became of the worktree."""
        wt = item.worktree
        note = f"branch {item.branch} kept"
        if wt and os.path.realpath(wt) == os.path.realpath(item.repo):
            note = f"{item.branch} is checked out in the main worktree: left as it is; " + note
        elif wt and os.path.isdir(wt):
            runner = self._runner(wt)
            if runner is not None:
                note = (f"worktree {wt} kept: session {runner} is still running in it (stop it, "
                        "then `hive-lab cleanup`); " + note)
            else:
                why = await asyncio.to_thread(gitmerge.remove_worktree, item.repo, wt,
                                              item.temp)
                note = (f"worktree {wt} removed; " + note) if not why else \
                    f"worktree {wt} kept: {why}; " + note
        self.git.mark_all()
        return note

    # -- resolver tasks and tidying ------------------------------------------------------------
    async def _resolvers(self) -> None:
        for item in store.list_items(self.conn, (RESOLVING,)):
            task = self.tasks.task_record(item.resolver) if item.resolver else None
            if task is None:
                self._move(item, NEEDS_YOU, f"resolver task {item.resolver} is gone")
            elif task.state == "done":
                try:
                    new = self.offer(item.repo, f"hive/{task.id}", item.base,
                                     [list(c) for c in item.checks], f"resolver of #{item.id}")
                except HiveError as exc:
                    self._move(item, NEEDS_YOU, f"resolver task done, but: {exc.detail}")
                    continue
                self._move(item, SUPERSEDED, f"resolved by task {task.id}: hive/{task.id} "
                           f"offered as #{new.id}")
            elif task.state in ("failed", "canceled"):
                self._move(item, NEEDS_YOU, f"resolver task {task.id} {task.state}")

    async def _tidy(self) -> None:
        """The queue's own worktrees of items no longer in flight go (their branch stays)."""
        for item_id in sorted(self._untidy):
            item = store.get(self.conn, item_id)
            if not item.temp:
                self._untidy.discard(item_id)
                continue
            if item.state in IN_FLIGHT or item.id in self._checks:
                continue
            why = ""
            if item.worktree:
                why = await asyncio.to_thread(gitmerge.remove_worktree, item.repo, item.worktree,
                                              True)
            if why:
                log.warning("merge #%s: worktree %s kept: %s", item.id, item.worktree, why)
                continue
            store.save(self.conn, replace(item, temp=False, worktree=None))
            self._untidy.discard(item_id)


class UnknownBranch(BadRequest):
    code = "unknown_branch"


class AlreadyQueued(Conflict):
    code = "already_queued"


class NotApprovable(Conflict):
    code = "merge_state"
