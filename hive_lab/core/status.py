"""Where a session's status is decided. The one state machine.

Evidence, strongest first:
1. the pane: a dead pane is ``exited`` with its exit status, whatever the hooks said;
2. hook events: what the agent says it is doing (``hook:<Event>``);
3. the screen: per-agent cues (a permission dialog, a spinner, an input box). It decides for
   agents without hooks, and corrects hook data that has gone stale (a dialog on screen that
   no hook reported, a dialog answered in the terminal).
Every :class:`State` records its ``source`` and ``since`` so a user can see why it was chosen.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

from .events import iso
from .retrycue import attempt_in, find_self_retry

from ..wire import EXITED, ERROR, IDLE, STARTING, STATES as NAMES, WAITING, WORKING  # noqa: E402,F401

# How long hook evidence is trusted before the screen may overrule it.
HOOK_TRUST_SECONDS = 3.0
# A pane that printed within this many seconds counts as busy (screen-only agents).
ACTIVITY_SECONDS = 3.0
# Exits decided from the process itself (pane dead, killed by us, tmux session gone) are
# final for hooks: a late hook (Claude Code's SessionEnd, run as it is being killed; a tool's
# PostToolUse; a spooled event drained later) is stored but cannot revive or re-exit it.
# An exit a hook decided (SessionEnd) is not: the same process may start a new session.
FINAL_EXIT_SOURCES = ("pane", "kill", "server")
# An agent that finished its turn and sits at its prompt is idle, not waiting: "waiting" is
# kept for what blocks it (a permission dialog, a question).
IDLE_PROMPT_DETAIL = "at its prompt, ready for the next instruction (idle_prompt)"
# The source of a waiting(rate_limit) read off the CLI's own retry countdown: the CLI goes on
# by itself, so nothing must type "continue" into it (orchestrate/recovering.py).
SELF_RETRY_SOURCE = "screen:retrying"
# The retry line gone and the input box back, with no hook: after this long past the retry's
# due time the CLI is taken to sit at its prompt (an Escape during the countdown fires none).
# Sooner, its Stop or StopFailure hook is on its way and decides.
SELF_RETRY_GRACE = 10.0


@dataclass(frozen=True)
class State:
    """A session's status and where that knowledge came from."""

    name: str
    source: str
    since: float
    reason: str | None = None
    tool: str | None = None
    exit_status: int | None = None
    detail: str | None = None
    resume_at: float | None = None  # waiting(rate_limit): when the agent expects to go on

    def same_as(self, other: "State | None") -> bool:
        """Equal apart from timing and provenance: no transition to record."""
        return other is not None and (self.name, self.reason, self.tool, self.exit_status) == (
            other.name, other.reason, other.tool, other.exit_status)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source, "since": iso(self.since)}
        for key in ("reason", "tool", "exit_status", "detail"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.resume_at is not None:
            out["resume_at"] = iso(self.resume_at)
        return out

    def to_record(self) -> dict[str, Any]:
        """Lossless form for the store (``since`` as epoch seconds)."""
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "State":
        fields: dict[str, Any] = {k: data.get(k) for k in ("name", "source", "since", "reason", "tool",
                                           "exit_status", "detail", "resume_at")}
        if not isinstance(fields["resume_at"], (int, float)):
            fields["resume_at"] = None
        if not isinstance(fields["since"], (int, float)):
            fields["since"] = time.time()
        return cls(**fields)


@dataclass(frozen=True)
class ScreenCues:
    """Per-agent regular expressions over the captured screen."""

    permission: tuple[str, ...] = ()
    question: tuple[str, ...] = ()
    working: tuple[str, ...] = ()
    idle: tuple[str, ...] = ()
    permission_tool: str | None = None  # regex with one group naming the tool, if visible
    # Start-up screens the agent shows before it is usable, and the keys that get past them.
    first_run: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # For a hooked agent whose first hook comes only with the first prompt (Codex CLI fires
    # SessionStart when its thread starts, i.e. on the first prompt): the screen that says it
    # is ready at start-up. Without it a hooked agent leaves `starting` by a hook only.
    ready: tuple[str, ...] = ()
    # The CLI retrying a refused API request by itself (no hook while it waits): regexes
    # matched one line at a time, with the named groups ``wait``, ``attempt``, ``of`` (``label`` optional), read
    # strictly by :mod:`.retrycue`. While one shows, the session waits (``rate_limit``).
    retrying: tuple[str, ...] = ()

    def find(self, kind: str, screen: str) -> re.Match[str] | None:
        for pattern in getattr(self, kind):
            match = re.search(pattern, screen, re.MULTILINE)
            if match:
                return match
        return None


# -- hook evidence -----------------------------------------------------------------------
_WORKING_EVENTS = {
    # Claude Code / Codex hooks
    "UserPromptSubmit", "UserPromptExpansion", "PreToolUse", "PostToolUse", "PostToolUseFailure",
    "PostToolBatch", "PermissionDenied", "SubagentStart", "PreCompact", "PostCompact",
    "ElicitationResult", "TaskCreated",
    # Gemini CLI
    "BeforeAgent", "BeforeTool", "AfterTool", "BeforeModel", "AfterModel", "BeforeToolSelection",
}
# Interrupt: Codex CLI's hook for a turn the user stopped (Escape at its approval question
# interrupts the turn; no Stop follows).
_IDLE_EVENTS = {"Stop", "AfterAgent", "agent-turn-complete", "SessionStart", "Interrupt"}


@dataclass
class HookMemory:
    """What the machine remembers between hooks of one session."""

    agent_session_id: str | None = None
    last_tool: str | None = None
    last_hook_at: float = 0.0
    last_prompt_at: float = 0.0  # when a prompt was last taken (UserPromptSubmit / BeforeAgent)


PROMPT_TAKEN_HOOKS = ("UserPromptSubmit", "BeforeAgent")


def decide_from_hook(event: str, payload: dict[str, Any], prev: State, memory: HookMemory,
                     now: float) -> State | None:
    """The state a hook event implies, or None if it says nothing about the state."""
    src = f"hook:{event}"
    tool = payload.get("tool_name") if isinstance(payload.get("tool_name"), str) else None
    agent_sid = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    if event == "SessionEnd":
        # The tail of an earlier agent session (e.g. after /clear or a restart inside the same
        # pane) says nothing about the one running now.
        if agent_sid and memory.agent_session_id and agent_sid != memory.agent_session_id:
            return None
        if prev.name == STARTING or payload.get("reason") == "clear":
            return None
        return State(EXITED, src, now, reason=_str(payload.get("reason")))
    if event in ("PreToolUse", "PermissionRequest", "BeforeTool") and tool:  # BeforeTool: Gemini
        memory.last_tool = tool
    if event == "SessionStart" and agent_sid:
        memory.agent_session_id = agent_sid
    elif agent_sid and memory.agent_session_id is None:
        memory.agent_session_id = agent_sid
    if event == "PermissionRequest":
        return State(WAITING, src, now, reason="permission", tool=tool or memory.last_tool)
    if event == "Notification":
        kind = payload.get("notification_type")
        if kind == "permission_prompt":
            return State(WAITING, src, now, reason="permission", tool=memory.last_tool)
        if kind == "idle_prompt":
            # Claude Code's "waiting for your input" after ~60 s at its prompt: the turn is
            # over, nothing blocks the agent. It never closes a dialog (the screen does).
            if prev.name == WAITING and prev.reason in ("permission", "question"):
                return None
            return State(IDLE, src, now, detail=IDLE_PROMPT_DETAIL)
        if kind in ("elicitation_dialog", "question"):
            return State(WAITING, src, now, reason="question")
        if kind == "ToolPermission":  # Gemini CLI
            return State(WAITING, src, now, reason="permission", tool=tool or memory.last_tool)
        return None
    if event == "Elicitation":
        return State(WAITING, src, now, reason="question")
    if event == "StopFailure":
        error = _str(payload.get("error")) or "failure"
        if error in RATE_LIMIT_ERRORS:
            # The API refused for now, the agent is fine: it waits (NOTES.md, "API errors").
            return State(WAITING, src, now, reason=RATE_LIMIT_ERRORS[error],
                         detail=_str(payload.get("last_assistant_message")),
                         resume_at=_resume_at(payload, now))
        return State(ERROR, src, now, reason=error)
    if event in _IDLE_EVENTS:
        return State(IDLE, src, now)
    if event in _WORKING_EVENTS:
        # No tool on `working`: one transition per turn, not one per tool call.
        return State(WORKING, src, now)
    return None


# -- pane and screen evidence ----------------------------------------------------------------
def decide_from_pane(dead: bool, exit_status: int | None, prev: State, now: float) -> State | None:
    if dead:
        return State(EXITED, "pane", now, exit_status=exit_status,
                     detail=None if exit_status is not None else "ended by a signal (no exit status)")
    if prev.name == EXITED and prev.source == "pane":
        return State(STARTING, "pane", now)  # respawned in the same pane
    return None


def decide_from_screen(screen: str, cues: ScreenCues, has_hooks: bool, prev: State,
                       memory: HookMemory, last_activity: float, now: float) -> State | None:
    """The state the screen implies, or None to keep the current one."""
    if prev.name == EXITED:
        return None
    dialog = cues.find("permission", screen)
    question = cues.find("question", screen)
    busy = cues.find("working", screen)
    hooks_stale = now - memory.last_hook_at > HOOK_TRUST_SECONDS
    # Not gated on the working cue: right after a pasted prompt Claude Code's footer says
    # "paste again to expand" instead of "esc to interrupt", countdown or not.
    retry = find_self_retry(screen, cues.retrying) if cues.retrying and not (dialog or question) \
        else None
    if retry is not None and prev.name != STARTING and not (
            prev.name == IDLE and prev.source.startswith("hook:") and not hooks_stale):
        # (A fresh Stop says the turn ended after the retry: that capture is older news.)
        # Newer than any hook: the CLI fires none while it retries (NOTES.md, "API errors").
        return State(WAITING, SELF_RETRY_SOURCE, now, reason="rate_limit", detail=retry.detail(),
                     resume_at=now + retry.wait)
    if prev.name == WAITING and prev.source == SELF_RETRY_SOURCE and not (dialog or question):
        # The countdown went: the CLI sent its next attempt (spinner) or stopped retrying.
        if busy:
            return State(WORKING, "screen", now)
        due = prev.resume_at if prev.resume_at is not None else prev.since
        if cues.find("idle", screen) and now - due > SELF_RETRY_GRACE and hooks_stale:
            return State(IDLE, "screen", now, detail="the retry ended without a hook (interrupted?)")
        return None
    if has_hooks and prev.name == STARTING and not dialog and cues.find("ready", screen):
        return State(IDLE, "screen", now)
    if has_hooks and not hooks_stale:
        return None
    if dialog:
        tool = detail = None
        if cues.permission_tool:
            # One group naming the tool, or named groups: ``tool`` and the ``subject`` it is
            # about (Aider: "Create new file?" about "notes.txt"), kept as the state's detail.
            m = re.search(cues.permission_tool, screen, re.MULTILINE)
            names = m.re.groupindex if m else {}
            tool = (m.group("tool") if "tool" in names else m.group(1)) if m else None
            if m and "subject" in names:
                detail = m.group("subject").strip()[:500] or None
        return State(WAITING, "screen", now, reason="permission", detail=detail,
                     tool=tool or (prev.tool if prev.reason == "permission" else memory.last_tool))
    if question:
        return State(WAITING, "screen", now, reason="question")
    if has_hooks:
        # Hooks are authoritative for working/idle; the screen only clears a dialog it no
        # longer shows. Claude Code fires no hook at all when a permission is denied: the
        # dialog just goes and the input box comes back.
        if prev.name == WAITING and prev.reason in ("permission", "question"):
            if busy:
                return State(WORKING, "screen", now)
            if cues.find("idle", screen):
                return State(IDLE, "screen", now, detail="dialog closed without a hook (denied?)")
        return None
    if prev.name == STARTING and cues.idle and not cues.find("idle", screen):
        # Still loading (Aider is silent for seconds before its prompt): not idle yet, and
        # not working either. A CLI without an idle cue goes idle once quiet, as before.
        return None
    if busy or now - last_activity <= ACTIVITY_SECONDS:
        return State(WORKING, "screen", now)
    if cues.idle:
        # Quiet is not idle for a CLI whose prompt can be seen: Aider is silent for seconds
        # after a prompt (repo map, tokenizing) and before its spinner. Only its empty
        # prompt ends a turn; an answered dialog with no prompt back means it works on.
        if cues.find("idle", screen):
            return State(IDLE, "screen", now)
        return State(WORKING, "screen", now) if prev.name == WAITING else None
    if prev.name in (STARTING, WORKING, WAITING):
        return State(IDLE, "screen", now)
    return None


# StopFailure ``error`` values that mean "not now" rather than "broken": waiting, not error.
RATE_LIMIT_ERRORS = {"rate_limit": "rate_limit", "overloaded": "overloaded",
                     "overloaded_error": "overloaded"}
_RESET_RE = re.compile(r"(?:retry|reset)s?\s+(?:in|after)\s+(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?)\b",
                       re.IGNORECASE)


def _resume_at(payload: dict[str, Any], now: float) -> float | None:
    """When a rate-limited agent expects to go on, if the hook says (a number of seconds, or
    "retry in N s" / "resets in N min" in its message); None when unknown."""
    for key in ("retry_after", "resets_in"):
        value = payload.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return now + float(value)
    for key in ("resets_at", "resume_at"):
        value = payload.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > now:
            return float(value)
    text = payload.get("last_assistant_message")
    match = _RESET_RE.search(text) if isinstance(text, str) else None
    if match:
        unit = 60.0 if match.group(2).lower().startswith("m") else 1.0
        return now + float(match.group(1)) * unit
    return None


def _str(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


@dataclass
class Tracker:
    """Current state of every session, plus each one's hook memory."""

    states: dict[str, State] = field(default_factory=dict)
    memory: dict[str, HookMemory] = field(default_factory=dict)

    def get(self, session: str) -> State:
        return self.states.get(session) or State(STARTING, "spawn", time.time())

    def set(self, session: str, state: State) -> State | None:
        """Adopt ``state``; return it if it is a real transition, else None."""
        prev = self.states.get(session)
        if state.same_as(prev):
            return None
        self.states[session] = state
        return state

    def mem(self, session: str) -> HookMemory:
        return self.memory.setdefault(session, HookMemory())

    def on_hook(self, session: str, event: str, payload: dict[str, Any], now: float) -> State | None:
        memory = self.mem(session)
        prev = self.get(session)
        if prev.name == EXITED and prev.source in FINAL_EXIT_SOURCES:
            return None  # the process is gone: late hooks cannot revive it
        if prev.source.startswith("hook:") and now < prev.since:
            # Fired before the hook that set the state in force, stored after it (a spooled
            # event drained later, a slow hook client): stale evidence. Applied, a
            # UserPromptSubmit drained after the turn's Stop would leave the session
            # `working` for good (the screen does not overrule hooks on working/idle).
            return None
        state = decide_from_hook(event, payload, prev, memory, now)
        memory.last_hook_at = max(memory.last_hook_at, now)
        if event in PROMPT_TAKEN_HOOKS:
            memory.last_prompt_at = max(memory.last_prompt_at, now)
        if state is not None and prev.source == SELF_RETRY_SOURCE != state.source \
                and state.same_as(prev):
            # StopFailure(rate_limit) after its own retries: the CLI gave up. Same name and
            # reason, but now nothing retries: a transition, so the orchestrator queues it.
            self.states[session] = state
            return state
        return self.set(session, state) if state else None

    def on_pane(self, session: str, dead: bool, exit_status: int | None, now: float) -> State | None:
        state = decide_from_pane(dead, exit_status, self.get(session), now)
        return self.set(session, state) if state else None

    def on_screen(self, session: str, screen: str, cues: ScreenCues, has_hooks: bool,
                  last_activity: float, now: float) -> State | None:
        prev = self.get(session)
        state = decide_from_screen(screen, cues, has_hooks, prev, self.mem(session),
                                   last_activity, now)
        if state is not None and state.source == SELF_RETRY_SOURCE == prev.source \
                and state.same_as(prev):
            if attempt_in(state.detail) == attempt_in(prev.detail):
                return None  # the same countdown ticking down: nothing new
            self.states[session] = state  # the next attempt refused: a new refusal
            return state
        return self.set(session, state) if state else None

    def forget(self, session: str) -> None:
        self.states.pop(session, None)
        self.memory.pop(session, None)

    def names(self) -> Iterable[str]:
        return self.states.keys()


def with_source(state: State, source: str) -> State:
    return replace(state, source=source)
