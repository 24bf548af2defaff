"""Keeping every session's git state fresh, and seeing collisions before they happen.

Refreshes are driven by evidence, not a blind timer: a pane that printed, or a hook saying a
tool may have touched files. Requests for a session are debounced and run one at a time in a
worker thread (git is a subprocess; the event loop never waits on it). A changed state is a
``GitChanged`` event; each newly predicted conflict is a ``ConflictPredicted`` event.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from . import events as ev
from . import gitwatch
from .events import Event
from .gitwatch import Collisions, ConflictPredictor, GitCache, GitState, Worktree
from .recorder import Recorder
from .sessions import Session, SessionManager
from .signals import Signals

log = logging.getLogger("hive_lab.git")

# Hook events after which the working tree may have changed.
_TOUCHING_EVENTS = {"PostToolUse", "PostToolBatch", "PostToolUseFailure", "Stop", "AfterTool",
                    "agent-turn-complete", "FileChanged", "SessionEnd"}
_READ_ONLY_TOOLS = {"Read", "Glob", "Grep", "LS", "WebFetch", "WebSearch", "TodoWrite", "Task"}


class GitMonitor:
    def __init__(self, sessions: SessionManager, recorder: Recorder, signals: Signals,
                 debounce: float = 0.3, trailing: float = 1.5) -> None:
        self.sessions = sessions
        self.recorder = recorder
        self.debounce = debounce
        self.trailing = trailing
        self.states: dict[str, GitState] = {}
        self.cache = GitCache()
        self.predictor = ConflictPredictor()
        self.collisions = Collisions(overlaps=[], conflicts=[], predictions=[])
        self._known_conflicts: set[Any] = set()
        self._collisions_stale = False  # a session went away since they were computed
        self._dirty: set[str] = set()
        self._flush_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        signals.activity.connect(lambda s: self.mark(s.name))
        signals.removed.connect(self._forget)
        signals.stored.connect(self._on_event)

    # -- triggers --------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.agent == "hive" or event.event not in _TOUCHING_EVENTS:
            return
        if event.tool in _READ_ONLY_TOOLS:
            return
        self.mark(event.session)

    def mark(self, name: str) -> None:
        """Ask for a refresh of ``name`` soon (coalesced with other requests)."""
        session = self.sessions.sessions.get(name)
        if session is None or not session.worktree:
            return
        self._dirty.add(name)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.ensure_future(self._flush_later())

    def mark_all(self) -> None:
        for name in list(self.sessions.sessions):
            self.mark(name)

    def _forget(self, session: Session) -> None:
        self.states.pop(session.name, None)
        self._dirty.discard(session.name)
        self._collisions_stale = True

    # -- refresh ---------------------------------------------------------------------------
    async def _flush_later(self) -> None:
        """Refresh soon after the trigger, and once more a little later (trailing edge).

        Activity is seen when a command starts printing; the commit it makes may land after
        that refresh, in the same second, with no further activity tmux can report.
        """
        await asyncio.sleep(self.debounce)
        while self._dirty:
            names, self._dirty = self._dirty, set()
            await self.refresh(names)
            await asyncio.sleep(self.trailing)
            await self.refresh(names - self._dirty)

    async def refresh(self, names: set[str] | None = None) -> dict[str, GitState]:
        """Re-read the given sessions' git state; record changes and new conflicts."""
        async with self._lock:
            changed = False
            for name in sorted(names if names is not None else self.sessions.sessions):
                session = self.sessions.sessions.get(name)
                if session is None or not session.worktree:
                    continue
                try:
                    state = await asyncio.to_thread(_read_state, session.worktree, self.cache)
                except Exception as exc:  # a vanished worktree must not stop the others
                    log.warning("git state of %s: %s", name, getattr(exc, "detail", exc))
                    continue
                if state != self.states.get(name):
                    self.states[name] = state
                    changed = True
                    self.recorder.record_now([ev.internal(
                        name, ev.GIT_CHANGED, {"git": state.to_json()}, _summary(state))])
            if changed:
                await self._update_collisions()
            return dict(self.states)

    async def _update_collisions(self) -> None:
        self._collisions_stale = False
        states = {n: s for n, s in self.states.items() if n in self.sessions.sessions}
        self.collisions = await asyncio.to_thread(gitwatch.collisions, states, self.predictor)
        current = set()
        for prediction in self.collisions.conflicts:
            current.add(prediction.key)
            if prediction.key not in self._known_conflicts:
                data = prediction.to_json()
                for name in data.get("sessions", []):
                    self.recorder.record_now([ev.internal(
                        name, ev.CONFLICT_PREDICTED, {"conflict": data},
                        "conflict predicted on " + ", ".join(data.get("paths", [])[:5]))])
        self._known_conflicts = current

    # -- queries ---------------------------------------------------------------------------
    async def state(self, name: str) -> GitState | None:
        """A fresh state for one session (None when it has no worktree)."""
        session = self.sessions.get(name)
        if not session.worktree:
            return None
        await self.refresh({name})
        return self.states.get(name)

    async def conflicts(self) -> Collisions:
        """The collisions as of the last change (no git runs unless something is missing).

        Kept current by :meth:`refresh`, which every trigger (activity, touching hooks,
        a per-session query) goes through; recomputing them per request cost 0.4-0.85 s
        with 20 worktrees (issue 9, B3). Only sessions never read yet are read here.
        """
        missing = {n for n, s in self.sessions.sessions.items()
                   if s.worktree and n not in self.states}
        if missing:
            await self.refresh(missing)
        if self._collisions_stale:
            async with self._lock:
                if self._collisions_stale:
                    await self._update_collisions()
        return self.collisions

    async def diff(self, name: str, max_bytes: int) -> dict[str, Any] | None:
        session = self.sessions.get(name)
        if not session.worktree:
            return None
        wt = Worktree.from_json(session.worktree)
        state = self.states.get(name)
        base = (state.merge_base if state else None) or wt.base_sha
        if wt.path is None or base is None:
            return None  # only the branch is left, or its base was never recorded
        result = await asyncio.to_thread(gitwatch.diff, wt.path, base, max_bytes)
        return result.to_json()

    def orphans(self) -> list[Worktree]:
        repos = {Path(s.worktree["repo"]) for s in self.sessions.sessions.values() if s.worktree}
        return gitwatch.list_orphans(self.sessions.worktree_root, set(self.sessions.sessions),
                                     repos=repos)

    async def clean_orphans(self, names: list[str] | None, force: bool) -> list[dict[str, Any]]:
        """Remove orphaned worktrees the safe way; each result says removed or why not."""
        results = []
        for wt in await asyncio.to_thread(self.orphans):
            if names is not None and wt.session not in names:
                continue
            try:
                removal = await asyncio.to_thread(gitwatch.remove_worktree, wt, force)
                results.append({"session": wt.session, "removed": True, **removal.to_json()})
            except Exception as exc:
                results.append({"session": wt.session, "branch": wt.branch, "removed": False,
                                "reason": getattr(exc, "detail", str(exc))})
        return results


def _read_state(worktree: dict[str, Any], cache: GitCache) -> GitState:
    wt = Worktree.from_json(worktree)
    if wt.path is None:
        raise gitwatch.NotFound(f"the worktree of {wt.session} is gone (only {wt.branch} is left)")
    return gitwatch.git_state(wt.path, wt.base_ref, wt.base_sha, cache=cache)


def _summary(state: GitState) -> str:
    data = state.to_json()
    parts = [str(data.get("branch") or "")]
    if data.get("ahead"):
        parts.append(f"+{data['ahead']} commits")
    changed = len(state.changed_paths())
    if changed:
        parts.append(f"{changed} files changed")
    return ", ".join(p for p in parts if p)
