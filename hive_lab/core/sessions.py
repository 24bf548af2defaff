"""Session lifecycle: spawn, adopt after a restart, poll, talk to, and stop agents.

A session is an agent process in its own tmux session. Its metadata lives in two places: a JSON
user option on the tmux session (so it survives a server restart together with the process) and
the store (so it survives tmux too). Adoption merges both by name: no duplicates.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from . import events as ev
from . import codextrust, gitwatch, installers, procs
from .agents import AgentProfile, validate_command, validate_env
from .datadir import DataDir, atomic_write, read_secret, write_secret
from .decisions import BLOCKING_EVENTS, Deciders, HookContext, Verdict, hook_answer
from .errors import (BadRequest, Forbidden, HiveError, NotWaiting, SessionExists, SessionExited, TooLarge,
                     UnknownSession)
from .events import Event, iso
from .names import is_name, validate_name
from .recorder import Recorder
from .signals import Signals
from .status import EXITED, IDLE, STARTING, WAITING, State, Tracker
from .store import Store
from .tmux import PaneInfo, Tmux, validate_keys

log = logging.getLogger("hive_lab.sessions")

MAX_INPUT = 256 * 1024
MAX_SCREEN_LINES = 10000
STATUS_GRACE = 2.0  # seconds a dead pane may lack its exit status (see _apply_pane)
# Hook kinds that report a submitted prompt (UserPromptSubmit moves the state off idle), so a
# typed prompt can be confirmed; Enter is pressed again while it is not (_confirm_submitted).
SUBMIT_HOOKS = ("claude", "gemini", "codex")  # agents whose hooks tell a submitted prompt
SUBMIT_CONFIRM = 2.0  # seconds to wait for the submit before pressing Enter again
SUBMIT_RETRIES = 3
_HEX_KEY = re.compile(r"[0-9a-zA-Z_-]{8,80}")


@dataclass
class Session:
    """One agent session as Hive Lab knows it."""

    name: str
    agent: str
    command: list[str]
    cwd: str
    created: float
    spawn_id: str
    pane_id: str | None = None
    pid: int | None = None
    exit_status: int | None = None
    worktree: dict[str, Any] | None = None
    hooks: dict[str, Any] | None = None
    external: bool = False
    agent_session_id: str | None = None
    transcript_path: str | None = None
    env_keys: list[str] = field(default_factory=list)
    task: str | None = None  # the orchestration task this session works on
    last_activity: int = 0

    @property
    def pane(self) -> str:
        """The pane's id; a session started outside Hive Lab has none (refused, not guessed)."""
        if self.pane_id is None:
            raise BadRequest(f"session {self.name!r} has no pane (started outside Hive Lab)")
        return self.pane_id

    def meta(self) -> dict[str, Any]:
        """What survives a restart (tmux user option, meta.json, store)."""
        return {"hive": 1, "name": self.name, "agent": self.agent, "command": self.command,
                "cwd": self.cwd, "created": self.created, "spawn_id": self.spawn_id,
                "worktree": self.worktree, "hooks": self.hooks, "external": self.external,
                "agent_session_id": self.agent_session_id,
                "transcript_path": self.transcript_path, "env_keys": self.env_keys,
                "task": self.task}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "Session":
        return cls(
            name=meta["name"], agent=meta.get("agent", "shell"),
            command=list(meta.get("command") or []), cwd=meta.get("cwd", ""),
            created=float(meta.get("created") or time.time()),
            spawn_id=meta.get("spawn_id", ""), worktree=meta.get("worktree"),
            hooks=meta.get("hooks"), external=bool(meta.get("external")),
            agent_session_id=meta.get("agent_session_id"),
            transcript_path=meta.get("transcript_path"), env_keys=list(meta.get("env_keys") or []),
            task=meta.get("task") if isinstance(meta.get("task"), str) else None,
        )

    def to_json(self, state: State) -> dict[str, Any]:
        return {
            "name": self.name, "agent": self.agent, "command": self.command, "cwd": self.cwd,
            "created": iso(self.created), "pane_id": self.pane_id, "pid": self.pid,
            "state": state.to_json(), "exit_status": self.exit_status,
            "worktree": self.worktree, "external": self.external,
            "agent_session_id": self.agent_session_id, "transcript_path": self.transcript_path,
            "task": self.task,
        }


@dataclass
class SpawnRequest:
    """A validated ``POST sessions`` body."""

    name: str
    agent: str
    command: list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    prompt: str | None = None
    worktree: bool | None = None
    base: str | None = None
    # Set by orchestration, never from a request body: the task this session works on, extra
    # argv after the profile's command (Claude Code's --session-id / --resume), and whether an
    # existing worktree of branch hive/<name> (an earlier attempt's work) is taken up again.
    task: str | None = None
    args: tuple[str, ...] = ()
    reuse_worktree: bool = False

    @classmethod
    def parse(cls, body: Any) -> "SpawnRequest":
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        unknown = set(body) - {"name", "agent", "command", "cwd", "env", "prompt", "worktree", "base"}
        if unknown:
            raise BadRequest(f"unknown fields: {sorted(unknown)}")
        prompt = body.get("prompt")
        if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_INPUT):
            raise BadRequest(f"prompt must be a string of at most {MAX_INPUT} characters")
        worktree = body.get("worktree")
        if worktree is not None and not isinstance(worktree, bool):
            raise BadRequest("worktree must be true or false")
        base = body.get("base")
        if base is not None and not isinstance(base, str):
            raise BadRequest("base must be a string")
        cwd = body.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise BadRequest("cwd must be a string")
        return cls(
            name=validate_name(body.get("name"), "session name"),
            agent=validate_name(body.get("agent", "shell"), "agent"),
            command=validate_command(body.get("command")),
            cwd=cwd, env=validate_env(body.get("env")), prompt=prompt,
            worktree=worktree, base=base,
        )


class SessionManager:
    """Owns every session: the only caller of :class:`Tmux` and of :mod:`procs`."""

    def __init__(self, tmux: Tmux, store: Store, recorder: Recorder, tracker: Tracker,
                 profiles: dict[str, AgentProfile], paths: DataDir, default_cwd: Path,
                 signals: Signals, *, git: Any = gitwatch, worktree_root: Path | None = None,
                 hook_script: Path | None = None, deciders: Deciders | None = None) -> None:
        self.tmux = tmux
        self.store = store
        self.recorder = recorder
        self.tracker = tracker
        self.profiles = profiles
        self.paths = paths
        self.data_dir = paths.root
        self.default_cwd = Path(default_cwd)
        self.signals = signals
        self.git = git  # the one git caller (hive_lab.core.gitwatch, or a stand-in in tests)
        self.worktree_root = worktree_root or paths.worktrees
        self.hook_script = hook_script  # the precompiled hook client agents' hooks run
        self.deciders = deciders if deciders is not None else Deciders()
        self.sessions: dict[str, Session] = {}
        self._secrets: dict[str, str] = {}
        self._screens: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dead_since: dict[str, float] = {}  # dead panes still waiting for their status
        # First-run screens answered: (session, cue) -> captures in a row without that cue.
        self._answered: dict[tuple[str, str], int] = {}

    # -- paths and secrets ---------------------------------------------------------------
    def session_dir(self, name: str) -> Path:
        return self.paths.session_dir(name)

    def _write_secret(self, name: str) -> str:
        secret = write_secret(self.paths.session_secret(name))
        self._secrets[name] = secret
        return secret

    def _secret(self, name: str) -> str | None:
        if name not in self._secrets:
            secret = read_secret(self.paths.session_secret(name))
            if secret is None:
                return None
            self._secrets[name] = secret
        return self._secrets[name]

    def _install_secret(self, install_id: str) -> str | None:
        try:
            return read_secret(self.paths.install_secret(install_id))
        except HiveError:
            return None

    def _save(self, session: Session) -> None:
        meta = session.meta()
        self.store.save_session(session.name, session.agent, session.created, meta,
                                self.tracker.get(session.name).to_record())
        if not session.external:
            atomic_write(self.paths.session_meta(session.name), json.dumps(meta, indent=2))

    # -- queries ---------------------------------------------------------------------------
    def get(self, name: str) -> Session:
        validate_name(name, "session name")
        session = self.sessions.get(name)
        if session is None:
            raise UnknownSession(f"no session named {name!r}")
        return session

    def state(self, name: str) -> State:
        return self.tracker.get(name)

    def describe(self, session: Session) -> dict[str, Any]:
        return session.to_json(self.tracker.get(session.name))

    def describe_all(self) -> list[dict[str, Any]]:
        return [self.describe(s) for s in sorted(self.sessions.values(), key=lambda s: s.created)]

    # -- lifecycle -------------------------------------------------------------------------
    async def spawn(self, req: SpawnRequest) -> Session:
        """Start an agent. Every failure undoes what was done: nothing is left half-made."""
        profile = self.profiles.get(req.agent)
        if profile is None:
            raise BadRequest(f"unknown agent {req.agent!r}; known: {sorted(self.profiles)}")
        if req.name in self.sessions or self.tmux.has_session(req.name):
            raise SessionExists(f"session {req.name!r} already exists")
        argv = [*profile.resolve_command(req.command), *req.args]
        cwd = self._resolve_cwd(req.cwd)
        undo: list[Callable[[], Any]] = []
        try:
            worktree, cwd = self._maybe_worktree(req, cwd, undo)
            session = Session(name=req.name, agent=profile.name, command=argv, cwd=str(cwd),
                              created=time.time(), spawn_id=secrets.token_hex(12),
                              worktree=worktree, env_keys=sorted(req.env), task=req.task)
            self._write_secret(req.name)
            undo.append(lambda: self._forget_files(req.name))
            argv = self._install_hooks(profile, session, argv, undo, {**profile.env, **req.env})
            argv = self._agent_files(profile, session, argv)
            session.command = argv
            env = {**profile.env, **req.env, "HIVE_LAB_DIR": str(self.data_dir),
                   "HIVE_LAB_SESSION": session.name, "HIVE_LAB_AGENT": profile.name,
                   procs.SPAWN_VAR: session.spawn_id}
            self.tracker.set(session.name, State(STARTING, "spawn", time.time()))
            undo.append(lambda: self.tracker.forget(req.name))
            pane = self.tmux.new_session(session.name, argv, str(cwd), env, session.meta())
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    log.exception("undoing a failed spawn of %s", req.name)
            raise
        session.pane_id, session.pid = pane.pane_id, pane.pid
        self.sessions[session.name] = session
        self._save(session)
        self.recorder.record_now([ev.internal(session.name, ev.SESSION_CREATED,
                                              {"session": self.describe(session)},
                                              f"{profile.name}: {' '.join(argv)[:120]}")])
        self.recorder.transition(session.name, self.tracker.get(session.name), None)
        if req.prompt:
            self._background(self.deliver_when_ready(session.name, req.prompt))
        return session

    def _resolve_cwd(self, cwd: str | None) -> Path:
        path = Path(cwd) if cwd else self.default_cwd
        if any(ord(c) < 32 for c in str(path)):
            raise BadRequest("cwd must not contain control characters")
        if not path.is_absolute():
            path = self.default_cwd / path
        path = path.resolve()
        if not path.is_dir():
            raise BadRequest(f"cwd {str(path)!r} is not an existing directory")
        return path

    def _maybe_worktree(self, req: SpawnRequest, cwd: Path,
                        undo: list[Callable[[], Any]]) -> tuple[dict[str, Any] | None, Path]:
        """A worktree on branch ``hive/<name>`` when asked, or by default inside a repo."""
        if req.worktree is False:
            if req.base is not None:
                raise BadRequest("base only applies to a worktree")
            return None, cwd
        repo = self.git.find_repo(cwd)
        if repo is None:
            if req.worktree or req.base is not None:
                raise BadRequest(f"{cwd} is not inside a git repository")
            return None, cwd
        existing = self.git.open_worktree(repo, req.name) if req.reuse_worktree else None
        if existing is not None:  # kept work: never removed by a failed spawn
            return existing.to_json(), self.git.worktree_cwd(repo, cwd, existing.path)
        wt = self.git.create_worktree(repo, req.name, req.base, self.worktree_root)
        undo.append(lambda: self.git.remove_worktree(wt, force=True))
        return wt.to_json(), self.git.worktree_cwd(repo, cwd, wt.path)

    def _install_hooks(self, profile: AgentProfile, session: Session, argv: list[str],
                       undo: list[Callable[[], Any]], env: dict[str, str]) -> list[str]:
        if profile.hooks == "codex":
            session.hooks = {"kind": "codex"}
            home = codextrust.codex_home(env)
            return [argv[0], *installers.codex_args(script=self.hook_script, codex_home=home),
                    *argv[1:]]
        if profile.hooks in ("claude", "gemini"):
            directory = Path(session.cwd)
            installers.install(profile.hooks, directory, script=self.hook_script)
            if session.worktree and profile.hooks == "claude":
                # settings.local.json is per-user and never committed; in a worktree it must
                # not show up as the agent's change (or a collision between hooked agents)
                self.git.exclude_locally(session.worktree["path"], "/.claude/settings.local.json")
            elif session.worktree and profile.hooks == "gemini":
                self._hide_gemini_settings(session, hide=True)
            session.hooks = {"kind": profile.hooks, "dir": str(directory)}
            undo.append(lambda: self._uninstall_hooks(session))
        return argv

    def _agent_files(self, profile: AgentProfile, session: Session, argv: list[str]) -> list[str]:
        """A hook-less CLI's own usage log (followed as its transcript) and its repo files."""
        if session.worktree:
            for pattern in profile.local_excludes:
                self.git.exclude_locally(session.worktree["path"], pattern)
        if not profile.usage_log:
            return argv
        path = self.paths.aider_log(session.name, session.spawn_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        session.transcript_path = str(path)
        return [*argv, profile.usage_log, str(path)]

    def _uninstall_hooks(self, session: Session) -> None:
        hooks = session.hooks or {}
        if hooks.get("kind") not in ("claude", "gemini"):
            return
        shared = any(s is not session and (s.hooks or {}).get("dir") == hooks.get("dir")
                     for s in self.sessions.values())
        if not shared:
            installers.uninstall(hooks["kind"], Path(hooks["dir"]))
            if hooks["kind"] == "gemini" and session.worktree:
                self._hide_gemini_settings(session, hide=False)

    def _hide_gemini_settings(self, session: Session, hide: bool) -> None:
        """.gemini/settings.json is a project file: our hooks in it are not the agent's work."""
        hide_fn = getattr(self.git, "hide_local_change", None)
        if hide_fn is None or not session.worktree:
            return
        root = Path(session.worktree["path"])
        path = installers.settings_path("gemini", Path(session.cwd))
        try:
            hide_fn(root, path.relative_to(root).as_posix(), hide=hide)
        except (ValueError, HiveError) as exc:
            log.warning("session %s: could not hide %s from git: %s", session.name, path, exc)

    def _forget_files(self, name: str) -> None:
        self._secrets.pop(name, None)
        shutil.rmtree(self.session_dir(name), ignore_errors=True)

    async def deliver_when_ready(self, name: str, prompt: str) -> float | None:
        """Type ``prompt`` once the agent shows it is ready (hook or screen); returns when the
        typing began, or None if the session went away first (the caller may try again)."""
        session = self.sessions.get(name)
        if session is None:
            return None
        profile = self.profiles.get(session.agent) or self.profiles["shell"]
        deadline = time.monotonic() + profile.ready_timeout
        while time.monotonic() < deadline:
            state = self.tracker.get(session.name)
            if state.name != STARTING:
                break
            # A profile's `ready` cue, when it has one, says it better than `idle` (Codex
            # draws its empty composer while still loading, before its folder-trust screen).
            cue = "ready" if profile.cues.ready else "idle"
            if session.pane_id and getattr(profile.cues, cue):
                try:
                    if profile.cues.find(cue, self.tmux.capture(session.pane)):
                        break
                except HiveError:
                    return None
            await asyncio.sleep(0.25)
        if self.sessions.get(name) is not session:
            return None
        began = time.time()
        try:
            await self.send_input(name, prompt, enter=True)
            if profile.hooks in SUBMIT_HOOKS:
                await self._confirm_submitted(session, profile, began, prompt)
                if self._prompt_lost(session, profile, began):
                    # Gone from the box with its Enter (typed while the agent was still
                    # setting up its composer: seen with Codex 0.169.0): type it once more.
                    log.warning("session %s: the typed prompt vanished; typing it again",
                                session.name)
                    again = time.time()
                    await self.send_input(name, prompt, enter=True)
                    await self._confirm_submitted(session, profile, again, prompt)
        except HiveError:
            return None
        return began

    def _prompt_lost(self, session: Session, profile: AgentProfile, began: float) -> bool:
        """No hook took a prompt since ``began``, and the agent sits idle at its input box."""
        if self.sessions.get(session.name) is not session:
            return False
        if self.tracker.mem(session.name).last_prompt_at >= began:
            return False
        if self.tracker.get(session.name).name != IDLE or not profile.cues.idle:
            return False
        return profile.cues.find("idle", self.tmux.capture(session.pane)) is not None

    async def _confirm_submitted(self, session: Session, profile: AgentProfile,
                                 began: float, prompt: str) -> None:
        """Press Enter again while the typed prompt still sits in the agent's input box.

        Seen with Claude Code 2.1.197 on a loaded machine: its input box is drawn before it is
        ready (SessionStart), a prompt typed then stays in the box ("[Pasted text #1 +10
        lines]"), its Enter lost, and nothing happens. Its hooks tell a submitted prompt: the
        state goes working (or waiting). Counted only once it is ready; an Enter on an empty
        box does nothing there, so a turn too quick to be seen costs nothing. The box is known
        by the idle cue, or by the prompt's own first line on screen (Gemini CLI 0.61.0 under
        load drew it in full, with neither its placeholder nor "[Pasted Text]").
        """
        presses = 0
        end = time.monotonic() + SUBMIT_CONFIRM
        give_up = end + profile.ready_timeout + SUBMIT_CONFIRM * SUBMIT_RETRIES
        while presses < SUBMIT_RETRIES and time.monotonic() < give_up:
            if self.sessions.get(session.name) is not session:
                return
            state = self.tracker.get(session.name)
            if state.name not in (IDLE, STARTING) or \
                    self.tracker.mem(session.name).last_prompt_at >= began:
                return
            if state.name == STARTING or time.monotonic() < end:
                if state.name == STARTING:
                    end = time.monotonic() + SUBMIT_CONFIRM  # not ready yet: the wait starts later
                await asyncio.sleep(0.1)
                continue
            screen = self.tmux.capture(session.pane)
            if profile.cues.idle and not profile.cues.find("idle", screen) and \
                    not _shows_first_line(screen, prompt):
                return  # no input box on screen (a dialog, a crash): not ours to press
            log.warning("session %s: the typed prompt was not taken; pressing Enter again",
                        session.name)
            self.tmux.send_keys(session.pane, ["Enter"])
            presses += 1
            end = time.monotonic() + SUBMIT_CONFIRM

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_input(self, name: str, text: Any, enter: Any = True) -> None:
        """Deliver ``text`` byte-exact, then press Enter after a short pause (paste settles)."""
        session = self._live(name)
        if not isinstance(text, str):
            raise BadRequest("text must be a string")
        if not isinstance(enter, bool):
            raise BadRequest("enter must be true or false")
        if len(text.encode("utf-8")) > MAX_INPUT:
            raise TooLarge(f"text is over {MAX_INPUT} bytes")
        if text:
            self.tmux.paste(session.pane, text)
        if enter:
            if text:
                await asyncio.sleep(0.15)
            self.tmux.send_keys(session.pane, ["Enter"])

    def send_keys(self, name: str, keys: Any) -> list[str]:
        session = self._live(name)
        keys = validate_keys(keys)
        self.tmux.send_keys(session.pane, keys)
        return keys

    def approve(self, name: str) -> dict[str, Any]:
        """Answer the permission dialog with "yes" (Claude Code: ``1``), or refuse."""
        return self._answer(name, "approve")

    def deny(self, name: str) -> dict[str, Any]:
        """Answer the permission dialog with "no" (Claude Code: Escape), or refuse."""
        return self._answer(name, "deny")

    def _answer(self, name: str, kind: str) -> dict[str, Any]:
        """Press the profile's answer keys only if state *and* screen say a permission dialog
        is open: a key typed into an idle prompt is a message to the agent, not an answer."""
        session = self._live(name)
        profile = self.profiles.get(session.agent) or self.profiles["shell"]
        keys = profile.answers.get(kind)
        if not keys:
            raise BadRequest(f"agent {session.agent!r} has no {kind} keys "
                             f"(set 'answers' in its profile)")
        state = self.tracker.get(name)
        seen = {"state": state.to_json()}
        if state.name != WAITING or state.reason != "permission":
            what = state.name + (f" ({state.reason})" if state.reason else "")
            raise NotWaiting(f"session {name!r} is not waiting for permission (it is {what}); "
                           f"nothing was typed", extra=seen)
        if not profile.cues.permission:
            raise NotWaiting(f"agent {session.agent!r} has no permission cue to check the screen "
                           f"against; nothing was typed", extra=seen)
        if not profile.cues.find("permission", self.tmux.capture(session.pane)):
            raise NotWaiting(f"session {name!r} shows no permission dialog on screen (answered "
                           f"in the terminal?); nothing was typed", extra=seen)
        self.tmux.send_keys(session.pane, list(keys))
        log.info("session %s: %s with %s (tool %s)", name, kind, keys, state.tool)
        return {"name": name, "answer": kind, "keys": list(keys), "tool": state.tool}

    def screen(self, name: str, lines: int | None = None, ansi: bool = False) -> str:
        session = self.get(name)
        if session.pane_id is None:
            raise BadRequest(f"session {name!r} has no pane (started outside Hive Lab)")
        if lines is not None and not 1 <= lines <= MAX_SCREEN_LINES:
            raise BadRequest(f"lines must be between 1 and {MAX_SCREEN_LINES}")
        return self.tmux.capture(session.pane_id, lines, ansi=ansi)

    def _live(self, name: str) -> Session:
        session = self.get(name)
        if session.pane_id is None:
            raise BadRequest(f"session {name!r} has no pane (started outside Hive Lab)")
        if self.tracker.get(name).name == EXITED and session.exit_status is not None:
            raise SessionExited(f"session {name!r} has exited (status {session.exit_status})")
        return session

    async def kill(self, name: str, cleanup: str | None = None, force: bool = False,
                   keep_worktree: bool = False) -> dict[str, Any]:
        """Stop the agent and every process it started (setsid'd children included).

        ``keep_worktree``: keep even an untouched worktree and branch (a budget ceiling ends a
        session that is to be resumed there).
        """
        session = self.get(name)
        if cleanup not in (None, "worktree"):
            raise BadRequest("cleanup must be 'worktree' or absent")
        if cleanup == "worktree" and session.worktree:
            # refuse before anything is stopped: an unmerged branch keeps its agent running
            self.git.remove_worktree(self.git.Worktree.from_json(session.worktree), force=force,
                                     dry_run=True)
        pane = self.tmux.pane(session.pane_id) if session.pane_id else None
        pids = procs.tree_pids(pane.pid if pane else session.pid, session.spawn_id)
        # Decided before the hang-up: the poller must not see the tmux session gone first
        # ("tmux session gone"), and the agent's own goodbye hooks (Claude Code's SessionEnd)
        # arrive after it. Both are still stored; neither changes this final state.
        self._exit(name, State(EXITED, "kill", time.time(), exit_status=session.exit_status))
        self.tmux.kill_session(name)
        survivors = await procs.end_tree(pids)
        result: dict[str, Any] = {"name": name, "killed": sorted(pids - survivors),
                                  "survivors": sorted(survivors), "worktree_removed": False}
        self._uninstall_hooks(session)
        if cleanup == "worktree" and session.worktree:
            removal = self.git.remove_worktree(self.git.Worktree.from_json(session.worktree),
                                               force=force)
            result["worktree_removed"] = removal.removed_worktree
            result["branch_removed"] = removal.removed_branch
        elif session.worktree and self.git is not None and not keep_worktree:
            # An agent that left no trace takes its worktree and branch with it: otherwise
            # every spawn in a repository leaves a hive/<name> branch behind.
            result.update(await asyncio.to_thread(self._remove_untouched, session.worktree))
        del self.sessions[name]
        self.store.mark_removed(name, time.time())
        self.recorder.record_now([ev.internal(name, ev.SESSION_REMOVED, result, "removed")])
        self._forget_files(name)
        self.tracker.forget(name)
        self._screens.pop(name, None)
        self._dead_since.pop(name, None)
        for tag in [t for t in self._answered if t[0] == name]:
            del self._answered[tag]
        self.signals.removed.emit(session)
        return result

    def _remove_untouched(self, worktree: dict[str, Any]) -> dict[str, Any]:
        try:
            removal, note = self.git.remove_if_untouched(self.git.Worktree.from_json(worktree))
        except HiveError as exc:
            removal, note = None, f"kept: {exc.detail}"
        return {"worktree_removed": bool(removal and removal.removed_worktree),
                "branch_removed": bool(removal and removal.removed_branch),
                "worktree_note": note}

    # -- restart ---------------------------------------------------------------------------
    def adopt(self) -> list[str]:
        """Re-adopt every session after a (re)start: tmux first, then the store. No duplicates."""
        adopted: list[str] = []
        stored = {row["name"]: row for row in self.store.sessions()}
        for pane in self.tmux.list_panes(full=True):
            if not pane.meta or pane.meta.get("hive") != 1 or pane.session in self.sessions:
                continue
            session = Session.from_meta({**pane.meta, "name": pane.session})
            session.pane_id, session.pid = pane.pane_id, pane.pid
            session.last_activity = pane.activity
            self._restore_state(session.name, stored.get(session.name))
            self.sessions[session.name] = session
            self._apply_pane(session, pane, time.time())
            adopted.append(session.name)
        for name, row in stored.items():
            if name in self.sessions:
                continue
            session = Session.from_meta({**row["meta"], "name": name})
            self.sessions[name] = session
            self._restore_state(name, row)
            if not session.external:  # its tmux session is gone: tmux itself was restarted
                self._exit(name, State(EXITED, "server", time.time(), detail="tmux session gone"))
            adopted.append(name)
        return adopted

    def _restore_state(self, name: str, row: dict[str, Any] | None) -> None:
        if row and row.get("state"):
            self.tracker.states[name] = State.from_record(row["state"])

    # -- polling ---------------------------------------------------------------------------
    def tick(self) -> None:
        """One polling pass: one tmux call for all panes, one more for screens that changed."""
        now = time.time()
        panes = {p.session: p for p in self.tmux.list_panes()}
        to_capture: dict[str, Session] = {}
        heights = {p.pane_id: p.height for p in panes.values()}
        for session in list(self.sessions.values()):
            if session.external:
                continue
            pane = panes.get(session.name)
            if pane is None:
                self._exit(session.name, State(EXITED, "server", now, detail="tmux session gone"))
                continue
            session.pid = pane.pid
            if self._apply_pane(session, pane, now):
                continue
            active = pane.activity != session.last_activity
            if active or self._needs_screen(session, now):
                session.last_activity = pane.activity
                to_capture[pane.pane_id] = session
            if active:
                self.signals.activity.emit(session)
        if to_capture:
            screens = self.tmux.capture_many(list(to_capture), heights=heights)
            for pane_id, text in screens.items():
                self._screens[to_capture[pane_id].name] = text
        for session in self.sessions.values():
            if session.external or session.name not in self._screens:
                continue
            profile = self.profiles.get(session.agent) or self.profiles["shell"]
            prev = self.tracker.get(session.name)
            if prev.name == STARTING and self._answer_first_run(session, profile, now):
                continue
            state = self.tracker.on_screen(session.name, self._screens[session.name], profile.cues,
                                           profile.hooks is not None, session.last_activity, now)
            if state:
                self.recorder.transition(session.name, state, prev)

    def _answer_first_run(self, session: Session, profile: AgentProfile, now: float) -> bool:
        """Get past the agent's start-up screens (trust, settings warning...), once each.

        A screen is answered once while it shows: an agent slow to read its input (a loaded
        machine) keeps showing the screen it was answered on, and pressing again would answer
        the *next* screen (Enter on Claude Code's API-key screen means "No"). A cue is armed
        again only after two captures in a row without it. Every answer is an event.
        """
        screen = self._screens.get(session.name, "")
        for pattern, keys in profile.cues.first_run:
            tag = (session.name, pattern)
            if not re.search(pattern, screen):
                if tag in self._answered:
                    self._answered[tag] += 1
                    if self._answered[tag] >= 2:
                        del self._answered[tag]
                continue
            if tag in self._answered:
                self._answered[tag] = 0  # still showing: answered already
                continue
            self._answered[tag] = 0
            if keys and session.pane_id:
                self.tmux.send_keys(session.pane, list(keys))
            log.info("session %s: answered start-up screen %r with %s", session.name,
                     pattern, keys)
            self.recorder.record_now([ev.internal(
                session.name, ev.SCREEN_ANSWERED, {"cue": pattern, "keys": list(keys)},
                f"start-up screen {pattern!r} answered with {' '.join(keys) or 'nothing'}")])
            return True
        return False

    def _needs_screen(self, session: Session, now: float) -> bool:
        """Screens are read on activity; a stale hook state gets a cross-check too."""
        state = self.tracker.get(session.name)
        profile = self.profiles.get(session.agent)
        if profile is None or profile.hooks is None:
            # Activity is whole seconds: output drawn in the same second as the last capture
            # (Aider's confirmation line right after the reply) would never be read. While
            # it is not idle, a hook-less agent's screen is read every tick (its answer to a
            # confirmation is drawn the same way).
            return session.name not in self._screens or state.name in (STARTING, "working",
                                                                        WAITING)
        memory = self.tracker.mem(session.name)
        if state.name == STARTING and (profile.cues.first_run or profile.cues.ready):
            return True
        return state.name in ("working", "waiting") and now - memory.last_hook_at > 3

    def _apply_pane(self, session: Session, pane: PaneInfo, now: float) -> bool:
        """Pane evidence. tmux marks a pane dead when its pty closes, before it has reaped the
        exit status: a dead pane without a status is held for up to ``STATUS_GRACE`` seconds.
        After that it was ended by a signal (tmux 3.3a reports no signal number)."""
        if pane.dead and pane.dead_status is None:
            status, signal_no = procs.zombie_exit(pane.pid)  # not reaped by tmux yet
            if status is not None:
                pane = replace(pane, dead_status=status)
            elif signal_no is None and now - self._dead_since.setdefault(session.name, now) \
                    < STATUS_GRACE:
                return True
        if pane.dead:
            session.exit_status = pane.dead_status
        else:
            self._dead_since.pop(session.name, None)
        prev = self.tracker.get(session.name)
        state = self.tracker.on_pane(session.name, pane.dead, pane.dead_status, now)
        if state:
            self.recorder.transition(session.name, state, prev)
        return pane.dead

    def _exit(self, name: str, state: State) -> None:
        """Record an exit decided outside the status machine (kill, tmux gone), once."""
        prev = self.tracker.get(name)
        if prev.name != EXITED and self.tracker.set(name, state):
            self.recorder.transition(name, state, prev)

    # -- hook ingestion ----------------------------------------------------------------------
    def authenticate_hook(self, session: str | None, install: str | None,
                          secret: str | None) -> None:
        """Per-session (or per-install) secret check; constant-time comparison."""
        if not secret:
            raise Forbidden("missing hook secret")
        if session:
            expected = self._secret(validate_name(session, "session")) \
                if session in self.sessions else None
        elif install:
            expected = self._install_secret(install)
        else:
            raise Forbidden("missing X-Hive-Session or X-Hive-Install")
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            raise Forbidden("unknown session or wrong secret")

    async def ingest(self, body: bytes, session: str | None, install: str | None,
                     agent: str | None, key: str | None, fired: str | float | None,
                     trusted: bool = False, secret: str | None = None) -> dict[str, Any]:
        """Store one hook event; ``trusted`` skips the secret (spool files are ours)."""
        if len(body) > ev.MAX_PAYLOAD:
            raise TooLarge(f"payload is {len(body)} bytes; the limit is {ev.MAX_PAYLOAD}")
        if not trusted:
            self.authenticate_hook(session, install, secret)
        payload = ev.parse_payload(body)
        if key is None or not _HEX_KEY.fullmatch(key):
            raise BadRequest("X-Hive-Key must be 8-80 characters of [0-9A-Za-z_-]")
        try:
            fired_at = float(fired) if fired is not None else None
        except (TypeError, ValueError):
            raise BadRequest("X-Hive-Fired must be epoch seconds") from None
        agent_name = agent if agent is not None and is_name(agent) else "unknown"
        name = session if session else self._external_session(install, agent_name, payload)
        if name not in self.sessions and not trusted:
            raise Forbidden(f"unknown session {name!r}")
        validate_name(name, "session")
        event = ev.from_hook(payload, key=key, session=name, agent=agent_name, fired=fired_at)
        verdict = None if trusted else await self._decide(name, event)
        event_id, duplicate = await self.recorder.record(event)
        if not duplicate and name in self.sessions:
            self._note_hook(self.sessions[name], event)
        kind = self._hook_kind(name)
        if trusted and not duplicate and kind and event.event in BLOCKING_EVENTS.get(kind, ()):
            self.signals.unguarded.emit(event)
        if verdict is not None and verdict.action != "allow" and not duplicate:
            self.recorder.record_now([ev.internal(
                name, ev.HOOK_DECIDED, {"verdict": verdict.to_json(), "event_id": event_id,
                                        "hook": event.event, "tool": event.tool},
                f"{verdict.action} {event.tool or event.event}: {verdict.reason}"[:200])])
        answer = hook_answer(kind, event.event, verdict)
        return {"id": event_id, "duplicate": duplicate, "output": answer.output,
                "exit_code": answer.exit_code, "stderr": answer.stderr}

    def _hook_kind(self, name: str) -> str | None:
        session = self.sessions.get(name)
        if session is None:
            return None
        kind = (session.hooks or {}).get("kind")
        return kind if isinstance(kind, str) else None

    async def _decide(self, name: str, event: Event) -> Verdict | None:
        """Ask the registered policies (scope guard, budgets) before the agent goes on."""
        session = self.sessions.get(name)
        if session is None or not len(self.deciders):
            return None
        ctx = HookContext(name, self._hook_kind(name), event.event, event.payload, session.cwd)
        await self.deciders.prepare(ctx)
        return self.deciders.decide(ctx)

    def _note_hook(self, session: Session, event: Event) -> None:
        changed = False
        if event.agent_session_id and event.event == "SessionStart" or (
                event.agent_session_id and not session.agent_session_id):
            changed = session.agent_session_id != event.agent_session_id
            session.agent_session_id = event.agent_session_id
        path = event.payload.get("transcript_path")
        if isinstance(path, str) and path and path != session.transcript_path:
            session.transcript_path, changed = path, True
        if changed:
            self._save(session)
            if not session.external and session.pane_id:
                # a tmux process: off the event loop (hooks keep arriving meanwhile)
                self._background(asyncio.to_thread(self._set_meta_quietly, session))

    def _set_meta_quietly(self, session: Session) -> None:
        try:
            self.tmux.set_meta(session.name, session.meta())
        except HiveError:
            pass  # the session ended meanwhile: the store and meta.json still have it

    def _external_session(self, install: str | None, agent: str, payload: dict[str, Any]) -> str:
        """Agents started outside Hive Lab become sessions keyed by their own session id."""
        sid = payload.get("session_id")
        if not isinstance(sid, str) or not sid:
            raise BadRequest("hand-installed hooks need a payload with session_id")
        name = re.sub(r"[^A-Za-z0-9_-]", "", f"{agent}-{sid}")[:64]
        if name not in self.sessions:
            session = Session(name=name, agent=agent, command=[], cwd=str(payload.get("cwd", ""))[:4096],
                              created=time.time(), spawn_id="", external=True,
                              agent_session_id=sid, hooks={"kind": agent, "install": install})
            self.sessions[name] = session
            self.tracker.set(name, State(STARTING, "hook", time.time()))
            self._save(session)
            self.recorder.record_now([ev.internal(name, ev.SESSION_CREATED,
                                                  {"session": self.describe(session)},
                                                  f"{agent} (external)")])
        return name

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _shows_first_line(screen: str, prompt: str) -> bool:
    """Is the prompt's first non-blank line (its start: a box may cut it) on ``screen``?"""
    first = next((ln.strip() for ln in prompt.splitlines() if ln.strip()), "")
    return bool(first) and first[:40] in screen
