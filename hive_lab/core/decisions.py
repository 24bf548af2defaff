"""The hook-decision path: how policy (scopes, budgets) answers an agent's hook in time.

A hook that can block (Claude Code's PreToolUse and UserPromptSubmit, Gemini CLI's
BeforeTool) waits for the server's answer. Policies register a :data:`Decider`; each is asked
in turn with the hook's context and may return a :class:`Verdict`. The strongest verdict wins
(deny > ask > allow), and :func:`hook_answer` turns it into what that agent CLI understands
(JSON on stdout, or exit 2 with the reason on stderr). A decider that raises is logged and
ignored: the guard fails open, and the audit after each git refresh is the backstop.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal

log = logging.getLogger("hive_lab.decisions")

Action = Literal["allow", "deny", "ask"]
_STRENGTH = {"allow": 0, "ask": 1, "deny": 2}

# Hook events whose answer the agent waits for and obeys, per hook kind.
BLOCKING_EVENTS = {
    "claude": {"PreToolUse", "UserPromptSubmit", "Stop"},
    "codex": {"PreToolUse", "UserPromptSubmit"},
    "gemini": {"BeforeTool", "BeforeAgent"},
}


@dataclass(frozen=True)
class HookContext:
    """What a decider sees: the session, its hook kind, the event and its payload."""

    session: str
    kind: str | None  # the profile's hooks kind: claude | codex | gemini | None
    event: str
    payload: dict[str, Any]
    cwd: str  # the session's working directory (its worktree, for a task)

    @property
    def tool(self) -> str | None:
        tool = self.payload.get("tool_name")
        return tool if isinstance(tool, str) else None

    @property
    def tool_input(self) -> dict[str, Any]:
        value = self.payload.get("tool_input")
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str
    by: str  # which policy decided: "scope", "budget", ...

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "by": self.by}


Decider = Callable[[HookContext], "Verdict | None"]
# Awaited before the deciders are asked: may wait (briefly) for what a decision needs, e.g.
# the budget keeper waiting for the agent to write the response that asked for the tool.
Preparer = Callable[[HookContext], Awaitable[None]]


class Deciders:
    """The registered policies; asked in order, strongest answer wins."""

    def __init__(self) -> None:
        self._deciders: list[Decider] = []
        self._preparers: list[Preparer] = []

    def __len__(self) -> int:
        return len(self._deciders)

    def register(self, decider: Decider) -> Callable[[], None]:
        self._deciders.append(decider)
        return lambda: self._deciders.remove(decider) if decider in self._deciders else None

    def register_preparer(self, preparer: Preparer) -> Callable[[], None]:
        self._preparers.append(preparer)
        return lambda: self._preparers.remove(preparer) if preparer in self._preparers else None

    async def prepare(self, ctx: HookContext) -> None:
        """Await every preparer of a blocking hook; one that raises is logged and skipped."""
        if ctx.kind is None or ctx.event not in BLOCKING_EVENTS.get(ctx.kind, ()):
            return
        for preparer in list(self._preparers):
            try:
                await preparer(ctx)
            except Exception:
                log.exception("hook preparer %r failed on %s of %s", preparer, ctx.event,
                              ctx.session)

    def decide(self, ctx: HookContext) -> Verdict | None:
        if ctx.kind is None or ctx.event not in BLOCKING_EVENTS.get(ctx.kind, ()):
            return None
        best: Verdict | None = None
        for decider in list(self._deciders):
            try:
                verdict = decider(ctx)
            except Exception:  # fail open: the backstop audit still sees the result
                log.exception("hook decider %r failed on %s of %s", decider, ctx.event, ctx.session)
                continue
            if verdict is not None and (best is None or
                                        _STRENGTH[verdict.action] > _STRENGTH[best.action]):
                best = verdict
        return best


@dataclass(frozen=True)
class HookAnswer:
    output: dict[str, Any] | None = None
    exit_code: int = 0
    stderr: str = ""


def hook_answer(kind: str | None, event: str, verdict: Verdict | None) -> HookAnswer:
    """What the hook client prints and exits with, in the dialect of ``kind``."""
    if verdict is None:
        return HookAnswer()
    if kind == "codex":
        # Codex CLI 0.169.0 refuses PreToolUse's permissionDecision "allow" and "ask"
        # ("unsupported permissionDecision:ask": a failed hook, and the tool runs anyway).
        # Only a deny is understood. An allow is silence (its own approval policy rules); an
        # ask, which must not let the call through unasked, becomes a deny that tells the
        # model a person has to decide.
        if verdict.action == "allow" or event != "PreToolUse":
            return _generic(event, verdict)
        reason = verdict.reason
        if verdict.action == "ask":
            reason += (" Codex cannot show Hive Lab's question, so this call was refused: ask "
                       "the user (or for more scope) before trying it again.")
        return HookAnswer(output={"hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": "deny",
            "permissionDecisionReason": reason}})
    if verdict.action == "allow":
        # An explicit allow skips the CLI's own permission dialog (Claude Code's PreToolUse);
        # elsewhere silence already means "go on".
        if event == "PreToolUse" and kind == "claude":
            return HookAnswer(output={"hookSpecificOutput": {
                "hookEventName": "PreToolUse", "permissionDecision": "allow",
                "permissionDecisionReason": verdict.reason}})
        return HookAnswer()
    if kind == "gemini":  # Gemini CLI: exit 2 blocks, stderr is the reason the model reads
        if verdict.action == "deny":
            return HookAnswer(exit_code=2, stderr=verdict.reason)
        if verdict.action == "ask" and event == "BeforeTool":
            # 0.61.0: {"decision": "ask"} forces the CLI's confirmation dialog even where its
            # policy (auto_edit, yolo, an allowed tool) would have run the tool unasked.
            return HookAnswer(output={"decision": "ask", "systemMessage": verdict.reason})
        return HookAnswer()
    return _generic(event, verdict)


def _generic(event: str, verdict: Verdict) -> HookAnswer:
    """Claude Code's dialect (Codex's too, where it has the same words)."""
    if verdict.action == "allow":
        return HookAnswer()
    if event in ("PreToolUse",):
        return HookAnswer(output={"hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": verdict.action,
            "permissionDecisionReason": verdict.reason}})
    if verdict.action == "deny":  # UserPromptSubmit, Stop: block with the reason
        return HookAnswer(output={"decision": "block", "reason": verdict.reason})
    return HookAnswer()
