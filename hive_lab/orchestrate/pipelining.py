"""The pipeline driver: turns task outcomes, check runs and verdicts into the next stage.

Level-triggered, like the orchestrator: every :meth:`PipelineDriver.tick` reads each running
pipeline and its current stage's task from the store and does what is due, so a restart
resumes where the pipeline was. Everything it does is idempotent or recorded before it is
repeated: a stage task is created once (its id is fixed), a turn's outcome is handled once
(``handled`` keeps the task round), feedback is delivered once (``expect_round``), a check
result already stored for a stage visit is not run again.

Each agent stage is a task (scopes, budgets, retries, notifications unchanged), created with
``pipeline=`` so the orchestrator *holds* it when its turn ends (blocked, session kept) instead
of finishing it: feedback then goes to the same session, its context kept.

Worktrees: the implementer works on ``hive/<id>-impl``. A reviewer gets its own worktree on a
branch made at the implementer's head (read-only: an empty scope, so the guard denies every
write). A tester gets its own worktree at the implementer's head too, scoped to the test files;
its commits are then fast-forwarded onto the implementer's branch (git refuses one branch in
two worktrees, and the implementer's session must keep its worktree to keep its context).
So the implementer's branch always holds the change, and the checks run there.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from ..core import events as ev
from ..core import gitwatch
from ..core.errors import BadRequest, Conflict, HiveError
from ..core.store import Store
from . import pipestore, taskstore
from .checks import run_check
from .pipelines import (P_STATES, ASK_AGAIN, CHECKS, FEEDBACK, IMPLEMENT, NEEDS_YOU, P_CANCELED,
                        P_NEEDS_YOU, P_READY, P_RUNNING, READY, REVIEW, S_CANCELED, S_NEEDS_YOU,
                        S_PASSED, TESTS, TO_READY, CheckOutcome, Decision, Pipeline,
                        PipelineSpec, after_checks, after_turn, after_verdict, implement_prompt,
                        implement_task_id, parse_verdict, review_prompt, stage_task_id,
                        tests_prompt, verdict_from)
from .runtime import HOLD_REASON
from .tasks import BLOCKED, CANCELED, DONE, FAILED, Task
from ..wire import PIPELINE_CHANGED, PIPELINE_NEEDS_YOU, STAGE_CHANGED

log = logging.getLogger("hive_lab.pipelines")

RETRY_TASK = "retry_task"
VERDICT_FILE = ".hive/verdict.json"
DIFF_BYTES = 30_000  # typed into a terminal: the rest is one `git diff` away


class PipelineDriver:
    """Pipelines: the facade calls these methods; :meth:`tick` moves them on."""

    def __init__(self, db_path: Path, orchestrator: Any, store: Store, recorder: Any,
                 usage: Any = None, merges: Callable[[], Any] | None = None,
                 check_timeout: float = 600.0) -> None:
        self.conn = sqlite3.connect(str(db_path), timeout=5.0, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.tasks = orchestrator
        self.store = store
        self.recorder = recorder
        self.usage = usage
        self.merges = merges or (lambda: None)
        self.check_timeout = check_timeout
        self._lock = asyncio.Lock()
        self._jobs: dict[str, asyncio.Task[None]] = {}

    def close(self) -> None:
        for job in self._jobs.values():
            job.cancel()
        self.conn.close()

    # -- the API -----------------------------------------------------------------------------
    def add(self, body: Any) -> dict[str, Any]:
        spec = PipelineSpec.parse(body, self.tasks.find_repo)
        if pipestore.exists(self.conn, spec.id):
            raise Conflict(f"pipeline {spec.id} exists")
        impl = implement_task_id(spec.id)
        if self.tasks.task_record(impl) is not None or _task_exists(self.tasks.conn, impl):
            raise Conflict(f"a task {impl} exists already")
        base_sha, base_branch = _resolve_base(spec.repo, spec.base)
        # A reviewer may leave its verdict in .hive/verdict.json: git (and so the audit and
        # the commits) never sees that directory, in any worktree of the repository.
        gitwatch.exclude_locally(spec.repo, "/" + VERDICT_FILE.split("/")[0] + "/")
        now = time.time()
        p = Pipeline(spec=spec, state=P_RUNNING, state_reason="created", state_since=now,
                     created=now, base_sha=base_sha, base_branch=base_branch,
                     cursor={"tasks": {}, "n": {}, "handled": {}, "fails": {}, "asked": []})
        pipestore.insert(self.conn, p, now)
        self._changed(p, "created")
        return self.get(spec.id)

    def list(self, state: str | None = None) -> list[dict[str, Any]]:
        if state is not None and state not in P_STATES:
            raise BadRequest(f"state must be one of {', '.join(P_STATES)}")
        return [self._json(p) for p in pipestore.list_all(self.conn, state)]

    def get(self, pid: str) -> dict[str, Any]:
        p = pipestore.get(self.conn, pid)
        data = self._json(p)
        data["history"] = pipestore.stages(self.conn, pid)  # one row per stage visit
        for s in data["history"]:  # usage is read from transcripts a little later: fresh here
            if s["task_id"]:
                fresh = self._cost(s["task_id"], s["started"], s["ended"])
                s["cost"] = fresh if fresh is not None else s["cost"]
        data["findings"] = pipestore.findings(self.conn, pid)
        data["checks"] = pipestore.checks(self.conn, pid)
        data["cost"] = _sum_cost(data["history"])
        return data

    async def cancel(self, pid: str) -> dict[str, Any]:
        async with self._lock:
            p = pipestore.get(self.conn, pid)
            if p.state in (P_CANCELED, P_READY):
                raise Conflict(f"pipeline {pid} is {p.state}")
            job = self._jobs.pop(pid, None)
            if job is not None:
                job.cancel()
            for tid in p.cursor.get("tasks", {}).values():
                try:
                    await self.tasks.patch(tid, {"state": CANCELED})
                except HiveError:
                    pass  # done or gone already
            now = time.time()
            if p.cursor.get("row"):
                self._end_row(p, S_CANCELED, "canceled by request", now)
            p = self._set(p, P_CANCELED, "canceled by request", now)
            return self.get(pid)

    async def retry(self, pid: str) -> dict[str, Any]:
        """A person lets a pipeline that needs them go on: what its bound stopped happens
        (one more round), or a failed stage task runs again."""
        async with self._lock:
            p = pipestore.get(self.conn, pid)
            if p.state != P_NEEDS_YOU:
                raise Conflict(f"pipeline {pid} is {p.state}; only one that needs you is retried")
            raw = p.cursor.get("retry")
            if not raw:
                raise Conflict(f"pipeline {pid} has nothing to retry")
            now = time.time()
            cursor = dict(p.cursor, retry=None)
            if raw["action"] == RETRY_TASK:
                tid = cursor["tasks"][str(raw["to_stage"])]
                if p.kind == IMPLEMENT:  # its session and branch carry the change: the same task
                    await self.tasks.retry(tid)
                    why = f"task {tid} runs again"
                else:  # a reviewer or tester starts afresh at the implementer's head
                    why = f"a new {p.kind} task replaces {tid}"
                p = replace(p, cursor=cursor)
                p = self._set(p, P_RUNNING, f"retried by request: {why}", now)
                return self.get(pid)
            decision = Decision(**{**raw, "retry": None})
            if decision.next_round:  # one more review round than the bound
                cursor["extra_rounds"] = int(cursor.get("extra_rounds", 0)) + 1
            if decision.to_stage is not None and raw["action"] == FEEDBACK \
                    and p.kind == CHECKS:
                fails = dict(cursor.get("fails", {}))
                fails[str(p.stage)] = max(0, int(fails.get(str(p.stage), 0)) - 1)
                cursor["fails"] = fails
            p = replace(p, cursor=cursor, state=P_RUNNING)
            p = self._set(p, P_RUNNING, "retried by request: " + decision.reason, now)
            await self._apply(p, decision, now, end_row=False)
            return self.get(pid)

    # -- the tick ----------------------------------------------------------------------------
    async def tick(self) -> None:
        async with self._lock:
            merges = self.merges()
            for p in pipestore.list_all(self.conn):
                if p.cursor.get("release"):  # marked with a decision a restart cut short
                    p = await self._release_all(p)
                if merges is not None and p.state == P_READY and not p.cursor.get("offered"):
                    await self._offer(p)  # level-triggered: a ready branch is offered once
            for p in pipestore.list_all(self.conn, P_RUNNING):
                try:
                    await self._step(p)
                except HiveError as exc:
                    log.warning("pipeline %s: %s", p.id, exc.detail)
                    await self._apply(p, Decision(NEEDS_YOU, f"stage {p.kind}: {exc.detail}",
                                                  stage_state=S_NEEDS_YOU), time.time())

    async def _step(self, p: Pipeline) -> None:
        now = time.time()
        if p.cursor.get("row") is None:
            p = self._enter(p, now)
        kind = p.kind
        if kind == CHECKS:
            if p.id not in self._jobs:
                self._jobs[p.id] = asyncio.ensure_future(self._run_checks(p.id, p.cursor["row"]))
                self._jobs[p.id].add_done_callback(lambda _: self._jobs.pop(p.id, None))
            return
        if kind not in (IMPLEMENT, REVIEW, TESTS):
            return
        tid = p.cursor["tasks"].get(str(p.stage))
        if tid is None:
            p = self._create_task(p, now)
            return
        task = taskstore.get_task(self.tasks.conn, tid)
        feedback = p.cursor.get("feedback")
        if feedback and feedback["task"] == tid:
            if int(task.flags.get("round", 1)) >= feedback["expect_round"]:
                p = self._save(pipestore.with_cursor(p, feedback=None), now)
            elif _held(task):
                if await self.tasks.continue_held(tid, feedback["text"], feedback["reason"]):
                    self._save(pipestore.with_cursor(p, feedback=None), time.time())
                return
            else:
                return  # not held yet (still finishing a turn): deliver when it is
        if task.state == FAILED:
            await self._apply(p, Decision(NEEDS_YOU, f"the {kind} task {tid} failed: "
                                          f"{task.state_reason}", stage_state=S_NEEDS_YOU,
                                          retry=Decision(RETRY_TASK, "retry the task",
                                                         to_stage=p.stage)), now)
            return
        if task.state in (CANCELED, DONE):  # a person ended the stage's task by hand
            again = None if kind == IMPLEMENT else Decision(RETRY_TASK, "a new task",
                                                            to_stage=p.stage)
            await self._apply(p, Decision(NEEDS_YOU, f"the {kind} task {tid} is {task.state}: "
                                          f"{task.state_reason}", stage_state=S_NEEDS_YOU,
                                          retry=again), now)
            return
        # A hold is handled once: it is known by when it began (a task's round counter starts
        # again at 1 when its agent is restarted, the moment it was held does not repeat).
        mark = task.state_since
        if not _held(task) or p.cursor.get("handled", {}).get(tid) == mark:
            return
        handled = dict(p.cursor.get("handled", {}), **{tid: mark})
        if kind == REVIEW:
            await self._after_review(p, task, handled, now)
            return
        head = await asyncio.to_thread(self._commit_turn, p, task)
        p = pipestore.with_cursor(p, handled=handled, head=head)
        await self._apply(p, after_turn(p.spec.stages, p.stage), now)

    def _enter(self, p: Pipeline, now: float) -> Pipeline:
        """A new visit of the current stage: its row, and for a review or tests stage entered
        anew (not for feedback) a fresh task at the implementer's new head."""
        row = pipestore.start_stage(self.conn, p.id, p.stage, p.kind, p.round, now)
        tasks = dict(p.cursor.get("tasks", {}))
        feedback = p.cursor.get("feedback")
        key = str(p.stage)
        if p.kind in (REVIEW, TESTS) and key in tasks and not (
                feedback and feedback["task"] == tasks[key]):
            self._to_release(p, tasks.pop(key))
        p = self._save(pipestore.with_cursor(p, row=row, tasks=tasks), now)
        if key in tasks:
            pipestore.update_stage(self.conn, row, task_id=tasks[key])
        self._stage_event(p, row, f"{p.kind} (round {p.round}) begins")
        return p

    def _create_task(self, p: Pipeline, now: float) -> Pipeline:
        spec, kind, key = p.spec, p.kind, str(p.stage)
        n = int(p.cursor.get("n", {}).get(key, 0)) + 1
        tid = stage_task_id(p.id, kind, p.stage, n)
        body: dict[str, Any] = {"id": tid, "repo": spec.repo, "budget": spec.budget}
        if kind == IMPLEMENT:
            body.update(title=spec.title, prompt=implement_prompt(spec), base=p.base_sha,
                        scope=list(spec.scope), agent=spec.implementer)
        else:
            head = self._impl_head(p)
            diff = gitwatch.diff_range(spec.repo, p.base_sha, head, DIFF_BYTES)
            if kind == REVIEW:
                body.update(title=f"review {spec.title}"[:200], base=head, scope=[],
                            prompt=review_prompt(spec, diff.text, diff.truncated, p.round,
                                                   p.base_sha),
                            agent=spec.reviewer or self._other_profile(p))
            else:
                body.update(title=f"tests for {spec.title}"[:200], base=head,
                            scope=list(spec.test_scope),
                            prompt=tests_prompt(spec, diff.text, diff.truncated, p.base_sha),
                            agent=spec.tester)
        if _task_exists(self.tasks.conn, tid):  # created before a restart: adopt it
            found = taskstore.get_task(self.tasks.conn, tid)
            if found.flags.get("pipeline") != p.id:
                raise Conflict(f"a task {tid} exists that is not a stage of pipeline {p.id}")
        else:
            self.tasks.add({k: v for k, v in body.items() if v is not None}, pipeline=p.id)
        tasks = dict(p.cursor.get("tasks", {}), **{key: tid})
        counts = dict(p.cursor.get("n", {}), **{key: n})
        p = self._save(pipestore.with_cursor(p, tasks=tasks, n=counts), now)
        pipestore.update_stage(self.conn, p.cursor["row"], task_id=tid)
        self._stage_event(p, p.cursor["row"], f"{kind} task {tid} created")
        return p

    def _other_profile(self, p: Pipeline) -> str | None:
        """A reviewer other than the implementer when one is installed: the implementer's
        profile is the one its task ran on; profiles with the capability ``review`` first,
        then hooked ones (the guard needs hooks to deny a write before it happens)."""
        impl = taskstore.get_task(self.tasks.conn, implement_task_id(p.id))
        used = impl.attempts[-1].profile if impl.attempts else impl.agent
        profiles = self.tasks.sessions.profiles.values()
        others = sorted((pr for pr in profiles if pr.installed and pr.name != used),
                        key=lambda pr: ("review" not in pr.capabilities, pr.hooks is None,
                                        pr.name))
        return others[0].name if others else None

    def _impl_head(self, p: Pipeline) -> str:
        impl = taskstore.get_task(self.tasks.conn, implement_task_id(p.id))
        if not impl.worktree:
            raise Conflict(f"the implementer's task {impl.id} has no worktree")
        return gitwatch.head_sha(impl.worktree)

    def _commit_turn(self, p: Pipeline, task: Task) -> str:
        """Commit the turn's work; a tester's commits then move the implementer's branch on."""
        if not task.worktree:
            raise Conflict(f"task {task.id} has no worktree")
        gitwatch.commit_all(task.worktree, f"pipeline {p.id}: {p.kind} (task {task.id}, "
                                           f"round {task.flags.get('round', 1)})")
        head = gitwatch.head_sha(task.worktree)
        if p.kind == TESTS:
            impl = taskstore.get_task(self.tasks.conn, implement_task_id(p.id))
            gitwatch.commit_all(impl.worktree or "", f"pipeline {p.id}: implementer leftovers")
            head = gitwatch.fast_forward(impl.worktree or "", head)
        return head

    async def _after_review(self, p: Pipeline, task: Task, handled: dict[str, float],
                            now: float) -> None:
        text = self._last_message(task)
        verdict, error = parse_verdict(text)
        if verdict is None:
            verdict, file_error = self._verdict_file(task)
            error = error if verdict is None and not file_error else (file_error or error)
        asked = list(p.cursor.get("asked", []))
        extra = int(p.cursor.get("extra_rounds", 0))
        decision = after_verdict(p.spec.stages, p.stage, verdict, error, task.id in asked,
                                 p.round, p.spec.max_review_rounds + extra)
        if decision.action == ASK_AGAIN:
            asked.append(task.id)
        p = pipestore.with_cursor(p, handled=handled, asked=asked)
        row = p.cursor["row"]
        if verdict is not None:
            pipestore.update_stage(self.conn, row, verdict=verdict.to_json())
            if verdict.findings:
                pipestore.add_findings(self.conn, p.id, row, p.round,
                                       [f.to_json() for f in verdict.findings], now)
            self._to_release(p, task.id)
        await self._apply(p, decision, now)

    def _last_message(self, task: Task) -> str | None:
        """The reviewer's last assistant message: the Stop hook's ``last_assistant_message``,
        else the transcript the hooks name."""
        stops = self.store.events(session=task.id, event="Stop", limit=100000)
        for event in reversed(stops):
            text = event.payload.get("last_assistant_message")
            if isinstance(text, str) and text.strip():
                return text
            path = event.payload.get("transcript_path")
            if isinstance(path, str):
                found = _transcript_last_text(Path(path))
                if found:
                    return found
            break
        return None

    def _verdict_file(self, task: Task) -> tuple[Any, str]:
        if not task.worktree:
            return None, ""
        path = Path(task.worktree) / VERDICT_FILE
        try:
            raw = path.read_bytes()[:200_000]
        except OSError:
            return None, ""
        try:
            return verdict_from(json.loads(raw))
        except ValueError as exc:
            return None, f"{VERDICT_FILE} does not parse: {exc}"[:200]

    async def _run_checks(self, pid: str, row: int) -> None:
        """Run the checks cheapest first in the implementer's worktree; a result already
        stored for this visit (before a restart) is not run again."""
        try:
            p = pipestore.get(self.conn, pid)
            impl = taskstore.get_task(self.tasks.conn, implement_task_id(pid))
            cwd = impl.worktree or p.spec.repo
            done = pipestore.checks(self.conn, pid, row)
            outcomes = [CheckOutcome(tuple(c["argv"]), c["passed"], c["exit_code"], c["reason"],
                                     c["output_tail"]) for c in done]
            for argv in p.spec.checks[len(done):]:
                if outcomes and not outcomes[-1].passed:
                    break
                result = await run_check(argv, cwd, self.check_timeout)
                data = result.to_json()
                record = pipestore.add_check(self.conn, pid, row, list(argv), data, time.time())
                self._event(pid, "CheckRan", {"pipeline": pid, "check": list(argv),
                                              "stage_row": row, **data,
                                              "id": record["id"]}, result.reason)
                outcomes.append(CheckOutcome(tuple(argv), result.passed, result.exit_code,
                                             result.reason, data["output_tail"]))  # type: ignore[arg-type]
            async with self._lock:
                p = pipestore.get(self.conn, pid)
                if p.state != P_RUNNING or p.cursor.get("row") != row:
                    return
                fails = int(p.cursor.get("fails", {}).get(str(p.stage), 0))
                decision = after_checks(p.spec.stages, p.stage, outcomes, fails,
                                        p.spec.max_check_rounds)
                if not all(o.passed for o in outcomes):
                    p = pipestore.with_cursor(p, fails=dict(p.cursor.get("fails", {}),
                                                            **{str(p.stage): fails + 1}))
                await self._apply(p, decision, time.time())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pipeline %s: checks failed to run", pid)

    # -- applying a decision ----------------------------------------------------------------
    async def _apply(self, p: Pipeline, d: Decision, now: float, end_row: bool = True) -> None:
        if end_row and p.cursor.get("row"):
            self._end_row(p, d.stage_state, d.reason, now)
        if d.action == NEEDS_YOU:
            retry = asdict(d.retry) if d.retry is not None else None
            if retry is not None:
                retry.pop("retry", None)
            p = pipestore.with_cursor(p, retry=retry, row=None if end_row else p.cursor.get("row"))
            p = self._set(p, P_NEEDS_YOU, d.reason, now)
            what = "retry or cancel it" if retry else "cancel it"
            self._event(p.id, PIPELINE_NEEDS_YOU, {
                "message": f"Pipeline {p.id} ({p.spec.title}) needs you at {p.kind}: "
                           f"{d.reason}. `hive-lab pipeline show {p.id}`; {what}.",
                "key": f"{p.id}:{now:.6f}", "pipeline": p.id,
                "task": p.cursor.get("tasks", {}).get(str(p.stage))}, d.reason)
            await self._release_all(p)  # nothing of it runs on while it waits for you
            return
        if d.action == TO_READY:
            p = replace(p, stage=len(p.spec.stages) - 1)
            row = pipestore.start_stage(self.conn, p.id, p.stage, READY, p.round, now)
            pipestore.update_stage(self.conn, row, state=S_PASSED, reason=d.reason, ended=now)
            p = pipestore.with_cursor(p, row=row)
            for tid in p.cursor.get("tasks", {}).values():
                self._to_release(p, tid)
            p = self._set(p, P_READY, d.reason, now)
            self._stage_event(p, row, "ready")
            p = await self._release_all(p)
            await self._offer(p)
            return
        cursor = dict(p.cursor, row=None)
        if d.action in (FEEDBACK, ASK_AGAIN) and d.to_stage is not None:
            tid = cursor["tasks"][str(d.to_stage)]
            task = taskstore.get_task(self.tasks.conn, tid)
            cursor["feedback"] = {"task": tid, "text": d.text, "reason": d.reason,
                                  "expect_round": int(task.flags.get("round", 1)) + 1}
        p = replace(p, cursor=cursor, stage=d.goto if d.goto is not None else p.stage,
                    round=p.round + (1 if d.next_round else 0))
        p = self._set(p, P_RUNNING, d.reason, now)
        await self._release_all(p)

    def _to_release(self, p: Pipeline, tid: str) -> None:
        cursor = p.cursor
        cursor["release"] = sorted(set(cursor.get("release", [])) | {tid})

    async def _release_all(self, p: Pipeline) -> Pipeline:
        """Finish the stage tasks marked for release (their sessions end). The marks were
        stored with the decision first, so a restart in between releases them again
        (harmless), and never loses the decision."""
        marked = list(p.cursor.get("release", []))
        for tid in marked:
            try:
                await self.tasks.release_held(tid, f"pipeline {p.id}: stage over")
            except HiveError as exc:
                log.warning("pipeline %s: releasing %s: %s", p.id, tid, exc.detail)
        if not marked:
            return p
        return self._save(pipestore.with_cursor(p, release=[]), time.time())

    async def _offer(self, p: Pipeline) -> None:
        """Offer the ready branch to the merge queue (when one exists), once: ``offered`` is
        stored after it took it, so a restart in between offers it again, never twice after."""
        merges = self.merges()
        if merges is None:
            return
        try:
            # The queue merges into a branch: the base's branch (None: the branch checked
            # out in the repository, the queue's own default). Its git runs off the loop.
            result = await asyncio.to_thread(
                merges.offer, repo=p.spec.repo, branch=f"hive/{implement_task_id(p.id)}",
                base=p.base_branch, checks=[list(c) for c in p.spec.checks],
                source=f"pipeline:{p.id}")
            if asyncio.iscoroutine(result):
                result = await result
        except HiveError as exc:
            log.warning("pipeline %s: the merge queue refused: %s", p.id, exc.detail)
            self._save(pipestore.with_cursor(p, offered=f"refused: {exc.detail}"[:300]),
                       time.time())
            return
        self._save(pipestore.with_cursor(p, offered=True), time.time())
        self._event(p.id, PIPELINE_CHANGED, {"pipeline": self._json(p), "reason":
                                             "offered to the merge queue", "merge": _plain(result)},
                    "ready: offered to the merge queue")

    def _end_row(self, p: Pipeline, state: str, reason: str, now: float) -> None:
        row = p.cursor["row"]
        info = pipestore.stage_row(self.conn, row)
        cost = self._cost(info["task_id"], info["started"], now) if info and info["task_id"] \
            else None
        pipestore.update_stage(self.conn, row, state=state, reason=reason, ended=now, cost=cost)
        self._stage_event(p, row, f"{p.kind}: {state}: {reason}")

    def _cost(self, tid: str, since: float, until: float | None) -> float | None:
        """What the task's session spent between ``since`` and ``until`` (a stage visit: an
        implementer serves several visits in one session, so its total is not a visit's)."""
        if self.usage is None:
            return None
        try:
            costs = [row.cost for _, row in self.usage.rows(session=tid, since=since,
                                                             until=until)
                     if row.cost is not None]
        except Exception:  # usage is best-effort here; the stage still ends
            return None
        return round(sum(costs), 6) if costs else None

    # -- persistence and events ---------------------------------------------------------------
    def _save(self, p: Pipeline, now: float) -> Pipeline:
        pipestore.save(self.conn, p, now)
        return p

    def _set(self, p: Pipeline, state: str, reason: str, now: float) -> Pipeline:
        if state != p.state:
            p = replace(p, state=state, state_since=now)
        p = replace(p, state_reason=reason[:500])
        pipestore.save(self.conn, p, now)
        self._changed(p, reason)
        return p

    def _changed(self, p: Pipeline, reason: str) -> None:
        self._event(p.id, PIPELINE_CHANGED, {"pipeline": self._json(p), "reason": reason},
                    f"{p.state} at {p.kind}: {reason}")

    def _stage_event(self, p: Pipeline, row: int, summary: str) -> None:
        stage = pipestore.stage_row(self.conn, row)
        findings = [f for f in pipestore.findings(self.conn, p.id) if f["stage_row"] == row]
        self._event(p.id, STAGE_CHANGED, {"pipeline": p.id, "stage": stage,
                                          "findings": findings}, summary)

    def _event(self, pid: str, name: str, payload: dict[str, Any], summary: str) -> None:
        self.recorder.record_now([ev.internal(pid, name, payload, summary[:200])])

    def _json(self, p: Pipeline) -> dict[str, Any]:
        data = p.to_json()
        data["max_review_rounds_now"] = p.spec.max_review_rounds + int(
            p.cursor.get("extra_rounds", 0))
        data["can_retry"] = p.state == P_NEEDS_YOU and bool(p.cursor.get("retry"))
        data["offered"] = p.cursor.get("offered", False)  # to the merge queue
        return data


# -- helpers -----------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """What the merge queue answered, as JSON (a record with to_json, or plain data)."""
    if hasattr(value, "to_json"):
        return value.to_json()
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)[:500]


def _held(task: Task) -> bool:
    return task.state == BLOCKED and task.state_reason.startswith(HOLD_REASON)


def _task_exists(conn: sqlite3.Connection, tid: str) -> bool:
    return conn.execute("SELECT 1 FROM tasks WHERE id=?", (tid,)).fetchone() is not None


def _resolve_base(repo: str, base: str) -> tuple[str, str | None]:
    """The base as a commit (what the stages diff against) and as a branch (what a ready
    branch merges into): ``HEAD`` names the branch checked out in the repository."""
    try:
        sha = gitwatch.head_sha_of(repo, base)
    except HiveError as exc:
        raise BadRequest(f"base {base!r}: {exc.detail}") from None
    return sha, gitwatch.branch_name(repo, base)


def _sum_cost(stages: list[dict[str, Any]]) -> float | None:
    costs = [s["cost"] for s in stages if s.get("cost") is not None]
    return round(sum(costs), 6) if costs else None


def _transcript_last_text(path: Path) -> str | None:
    """The last assistant text in a Claude-style transcript (JSON lines), read from its end."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 2_000_000))
            data = fh.read()
    except OSError:
        return None
    for raw in reversed(data.splitlines()):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        msg = line.get("message") if isinstance(line, dict) else None
        if not isinstance(line, dict) or line.get("type") != "assistant" or not isinstance(msg, dict):
            continue
        content = msg.get("content")
        texts: list[str] = [str(c["text"]) for c in content if isinstance(c, dict)
                            and c.get("type") == "text" and isinstance(c.get("text"), str)] \
            if isinstance(content, list) else []
        if texts:
            return "\n".join(texts)
    return None
