"""The scripted API for budget and recovery tests: a known price per response and a plan that
survives an interruption.

:class:`MeteredAPI` is :class:`~tests.claude_support.fake_api.FakeAnthropic` with two changes,
both additive (nothing in ``fake_api`` is edited):

- every main-loop response carries the same usage, :data:`MAIN_USAGE` (priced by FACTS.md for
  ``claude-opus-4-8`` at exactly :data:`COST_PER_RESPONSE` dollars), so a dollar budget is
  crossed after a known number of responses;
- ``SCENARIO:burn <n>`` is *sticky*: it is the plan of the whole conversation, not of the
  newest prompt. Each response runs the next ``echo burn-<k>`` Bash call until ``n`` of them
  succeeded, then ends the turn. A denied call (is_error) is tried again at once, as a model
  that ignores "stop here" would; a later prompt without a SCENARIO (Hive Lab's "your budget
  was raised, continue") carries on from the calls that succeeded.
"""
from __future__ import annotations

import re
from typing import Any

from .fake_api import FakeAnthropic, Reply, ToolCall, _is_prompt, _texts

#: The usage of every main-loop response: $0.01 for claude-opus-4-8 ($5 / $25 per MTok).
MAIN_USAGE = {"input_tokens": 1000, "output_tokens": 200, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0,
              "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
              "service_tier": "standard"}
COST_PER_RESPONSE = (1000 * 5 + 200 * 25) / 1e6
SIDE_USAGE = {"input_tokens": 50, "output_tokens": 10, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0, "service_tier": "standard"}

_BURN_RE = re.compile(r"SCENARIO:burn[ \t]+(\d+)")


class _FixedUsage:
    def make(self, kind: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        src = MAIN_USAGE if kind == "messages" else SIDE_USAGE
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in src.items()}


def burn_progress(messages: list[dict[str, Any]]) -> tuple[int | None, int, int]:
    """(the plan's n, Bash calls that succeeded, calls refused) over the whole conversation."""
    goal = None
    for m in messages:
        if _is_prompt(m):
            for t in _texts(m.get("content")):
                found = _BURN_RE.findall(t)
                if found:
                    goal = int(found[-1])
    ok = refused = 0
    for m in messages:
        c = m.get("content")
        if m.get("role") != "user" or not isinstance(c, list):
            continue
        for b in c:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                if b.get("is_error"):
                    refused += 1
                else:
                    ok += 1
    return goal, ok, refused


class MeteredAPI(FakeAnthropic):
    """FakeAnthropic with fixed usage per response and the sticky ``burn`` plan."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._usage = _FixedUsage()  # type: ignore[assignment]

    def _reply_for(self, call: Any, body: dict[str, Any]) -> Reply:
        down = self._outage_reply(call)
        if down is not None:
            return down
        messages = body.get("messages") or []
        if call.kind == "messages":
            goal, ok, refused = burn_progress(messages)
            if goal is not None:
                call.scenario, call.step = "burn", ok + refused
                if ok < goal:
                    cmd = f"echo burn-{ok + 1}"
                    return Reply(tools=[ToolCall("Bash", {"command": cmd,
                                                          "description": f"Burn step {ok + 1}"})])
                return Reply(text=f"Burnt {goal}.")
        return super()._reply_for(call, body)
