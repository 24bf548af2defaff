"""The hook-decision path, driven through the facade in-process (real tmux, no server)."""
from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from hive_lab.core.agents import load_profiles
from hive_lab.core.decisions import Deciders, HookContext, Verdict, hook_answer
from hive_lab.core.facade import Hive, HiveConfig


def test_strongest_verdict_wins_and_a_failing_decider_fails_open() -> None:
    deciders = Deciders()
    ctx = HookContext("s", "claude", "PreToolUse", {"tool_name": "Write"}, "/w")
    deciders.register(lambda c: Verdict("ask", "shell writes outside", "scope"))
    deciders.register(lambda c: 1 / 0)
    assert deciders.decide(ctx).action == "ask"
    deciders.register(lambda c: Verdict("deny", "budget spent", "budget"))
    assert deciders.decide(ctx) == Verdict("deny", "budget spent", "budget")
    # events the agent does not wait on are never decided
    assert deciders.decide(HookContext("s", "claude", "PostToolUse", {}, "/w")) is None
    assert deciders.decide(HookContext("s", None, "PreToolUse", {}, "/w")) is None


def test_answers_in_each_cli_dialect() -> None:
    deny = Verdict("deny", "src/** only", "scope")
    claude = hook_answer("claude", "PreToolUse", deny)
    assert claude.exit_code == 0 and claude.output["hookSpecificOutput"] == {
        "hookEventName": "PreToolUse", "permissionDecision": "deny",
        "permissionDecisionReason": "src/** only"}
    assert hook_answer("claude", "UserPromptSubmit", deny).output == {
        "decision": "block", "reason": "src/** only"}
    gemini = hook_answer("gemini", "BeforeTool", deny)
    assert (gemini.exit_code, gemini.stderr, gemini.output) == (2, "src/** only", None)
    assert hook_answer("claude", "PreToolUse", None).output is None
    allow = hook_answer("claude", "PreToolUse", Verdict("allow", "inside the scope", "scope"))
    assert allow.output["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert hook_answer("gemini", "BeforeTool", Verdict("allow", "", "x")) == hook_answer(
        "gemini", "BeforeTool", None)
    # Gemini CLI 0.61.0 has an "ask" in BeforeTool: it forces its own confirmation dialog.
    ask = hook_answer("gemini", "BeforeTool", Verdict("ask", "writes outside src/**", "scope"))
    assert (ask.exit_code, ask.output) == (0, {"decision": "ask",
                                               "systemMessage": "writes outside src/**"})
    assert hook_answer("gemini", "BeforeAgent", Verdict("ask", "x", "scope")).output is None


@pytest.fixture
def hive(tmp_path: Path):
    socket = f"hivetest-{secrets.token_hex(4)}"
    profiles = load_profiles({"hooked": {"command": ["cat"], "hooks": "claude"}})
    h = Hive(HiveConfig(data_dir=tmp_path / "data", tmux_socket=socket, profiles=profiles,
                        default_cwd=tmp_path))
    yield h
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    h.store.close()


def test_a_registered_policy_answers_the_hook_and_the_verdict_is_an_event(hive: Hive,
                                                                         tmp_path: Path) -> None:
    seen: list[HookContext] = []

    def guard(ctx: HookContext) -> Verdict | None:
        seen.append(ctx)
        path = ctx.tool_input.get("file_path", "")
        return Verdict("deny", f"{path} is outside src/**", "scope") if "docs" in path else None

    hive.deciders.register(guard)
    work = tmp_path / "w"
    work.mkdir()

    async def run() -> tuple[dict, dict]:
        await hive.spawn({"name": "a1", "agent": "hooked", "cwd": str(work), "worktree": False})
        secret = (hive.paths.session_secret("a1")).read_text()
        headers = {"X-Hive-Session": "a1", "X-Hive-Secret": secret, "X-Hive-Agent": "hooked",
                   "X-Hive-Fired": "1.0"}

        def body(path: str) -> bytes:
            return json.dumps({"hook_event_name": "PreToolUse", "session_id": "x",
                               "tool_name": "Write", "tool_input": {"file_path": path}}).encode()

        denied = await hive.ingest_hook(body(f"{work}/docs/x.md"),
                                        {**headers, "X-Hive-Key": secrets.token_hex(16)})
        allowed = await hive.ingest_hook(body(f"{work}/src/a.py"),
                                         {**headers, "X-Hive-Key": secrets.token_hex(16)})
        await hive.kill("a1")
        return denied, allowed

    denied, allowed = asyncio.run(run())
    assert denied["output"]["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "outside src/**" in denied["output"]["hookSpecificOutput"]["permissionDecisionReason"]
    assert allowed["output"] is None and allowed["exit_code"] == 0
    assert [c.cwd for c in seen] == [str(work)] * 2 and seen[0].kind == "claude"
    decided = [e for e in hive.store.events(event="HookDecided")]
    assert len(decided) == 1 and decided[0].payload["verdict"]["by"] == "scope"
    assert decided[0].payload["event_id"] == denied["id"]
