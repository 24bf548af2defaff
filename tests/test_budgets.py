"""Budgets: the pure parts (parsing hostile bodies, unknown prices, windows, forecast) and,
end to end, a hooked scripted agent paused at its budget, interrupted, resumed, and ended at
the ceiling with its worktree kept (``@pytest.mark.e2e``)."""
from __future__ import annotations

import math
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hive_lab.core.errors import BadRequest
from hive_lab.orchestrate.budgets import (BLOCK, DAY, BudgetConfig, BudgetUpdate, Limit, Meter,
                                          Spend, evaluate, parse_task_budget)
from hive_lab.orchestrate.errors import IllegalTransition
from hive_lab.orchestrate.tasks import PAUSED, RUNNING, TaskPatch, transition, Task
from hive_lab.usage.parse import UsageRow

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc).timestamp()


def row(t: float, tokens: int = 100, cost: float | None = 0.01, mid: str | None = "m1",
        model: str = "claude-opus-4-8") -> UsageRow:
    return UsageRow(time=datetime.fromtimestamp(t, timezone.utc), session_id="s", project="p",
                    model=model, input=tokens, output=0, cache_write_5m=0, cache_write_1h=0,
                    cache_read=0, cost=cost, message_id=mid, request_id=mid, sidechain=False,
                    source="x")


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    [1], "5", {"usd": 2}, {}, {"dollars": -1}, {"dollars": float("nan")}, {"dollars": float("inf")},
    {"dollars": True}, {"tokens": 1.5}, {"tokens": "100"}, {"minutes": 1e12},
    {"dollars": 1, "warn_at": 0}, {"dollars": 1, "warn_at": 2}, {"dollars": 1, "ceiling": 0.5},
    {"dollars": 1, "window": "day"},  # a task's budget has no window
    {"dollars": 1, "x" * 5000: 1},
])
def test_hostile_task_budgets_are_refused(body: Any) -> None:
    with pytest.raises(BadRequest):
        parse_task_budget(body)
    with pytest.raises(BadRequest):
        TaskPatch.parse({"budget": body})


def test_a_task_budget_is_normalised_and_null_clears_it() -> None:
    assert parse_task_budget({"dollars": 1, "tokens": 10.0}) == {
        "dollars": 1.0, "tokens": 10, "warn_at": 0.8, "ceiling": 1.5}
    assert parse_task_budget(None) is None
    assert TaskPatch.parse({"budget": None}).fields == frozenset({"budget"})


@pytest.mark.parametrize("config", [
    {"fleets": {}}, {"fleet": {"dollars": 1, "window": "week"}},
    {"fleet": [{"dollars": 1, "window": "day"}, {"tokens": 5, "window": "day"}]},
    {"profile": {"-rf": {"dollars": 1}}}, {"profile": {"claude": None}}, {"profile": []},
    {"task": {"dollars": 1, "window": "day"}}, {"warn_at": "high"}, "budgets",
])
def test_bad_config_is_refused(config: Any) -> None:
    with pytest.raises(BadRequest):
        BudgetConfig.parse(config)


def test_config_and_put_bodies() -> None:
    c = BudgetConfig.parse({"fleet": [{"dollars": 50, "window": "day"}, {"dollars": 15, "window": "5h"}],
                            "profile": {"claude": {"tokens": 1000}}, "task": {"dollars": 2},
                            "warn_at": 0.5})
    assert [lim.id for lim in c.fleet] == ["fleet:*:day", "fleet:*:5h"]
    assert c.profiles["claude"][0].window == "day" and c.profiles["claude"][0].warn_at == 0.5
    assert c.task_limit("t1", None) == Limit("task", "t1", "none", 2.0, None, None, 0.5, 1.5)
    assert c.task_limit("t1", {"tokens": 5}).tokens == 5
    update = BudgetUpdate.parse({"profile": {"claude": None}, "fleet": None}, c)
    assert update.fleet_cleared and update.profiles == {"claude": ()}
    for bad in ({}, [], {"fleet": {"dollars": "1"}}, {"sessions": {}}, {"profile": {"a b": {"dollars": 1}}}):
        with pytest.raises(BadRequest):
            BudgetUpdate.parse(bad, c)


def test_paused_is_a_task_state_between_running_and_running() -> None:
    task = Task(id="t", prompt="p", repo="/r", state=RUNNING)
    paused = transition(task, PAUSED, "budget: task t", 1.0)
    assert transition(paused, RUNNING, "budget raised", 2.0).state == RUNNING
    with pytest.raises(IllegalTransition):
        transition(paused, "checking", "x", 3.0)


# -- spend, windows, unknown prices -----------------------------------------------------------------
def test_a_fuller_copy_replaces_a_row_and_a_replay_counts_once() -> None:
    from hive_lab.orchestrate.budgetkeeper import BudgetKeeper

    keeper = BudgetKeeper.__new__(BudgetKeeper)  # only the counting part, no store
    keeper.meters, keeper._counted, keeper._biggest = {}, {}, {}
    keeper.ingest("s", "claude", row(T0, 100, 0.01))
    keeper.ingest("s", "claude", row(T0, 150, 0.015))  # the same response, more tokens
    keeper.ingest("s", "claude", row(T0, 150, 0.015))  # a re-read
    for scope, key in (("session", "s"), ("profile", "claude"), ("fleet", "*")):
        spend = keeper.meter(scope, key).total
        assert (spend.rows, spend.tokens) == (1, 150) and math.isclose(spend.dollars, 0.015)
    keeper.ingest("t", "claude", row(T0, 150, 0.015))  # same ids in another session: its own
    assert keeper.meter("fleet", "*").total.rows == 2


def test_an_unknown_price_is_unknown_never_zero() -> None:
    m = Meter()
    m.add(T0, None, 500)
    status = evaluate(Limit("task", "t", dollars=1.0), m.total, 0.0, T0)
    assert status.unknown_cost and status.to_json()["used"]["dollars"] is None
    assert "unknown" in status.summary()
    tokens = evaluate(Limit("task", "t", tokens=400), m.total, 0.0, T0)
    assert tokens.level == "paused" and not tokens.unknown_cost  # tokens are still counted


def test_levels_follow_warn_at_100_percent_and_the_ceiling() -> None:
    lim = Limit("session", "s", tokens=1000, warn_at=0.8, ceiling=1.5)
    levels = [evaluate(lim, Spend(tokens=n), 0, T0).level for n in (799, 800, 1000, 1499, 1500)]
    assert levels == ["ok", "warn", "paused", "paused", "ceiling"]
    minutes = evaluate(Limit("task", "t", minutes=10), Spend(), 12.0, T0)
    assert minutes.level == "paused" and minutes.by == "minutes"


def test_day_windows_are_utc_days_and_5h_blocks_roll() -> None:
    m = Meter()
    midnight = (T0 // DAY + 1) * DAY
    m.add(midnight - 60, 0.5, 10)
    m.add(midnight + 60, 0.25, 10)
    spend, start, end = m.window("day", midnight + 120)
    assert math.isclose(spend.dollars, 0.25) and start == midnight and end == midnight + DAY
    b = Meter()
    b.add(T0 + 1800, 1.0, 1)  # block starts at T0 (floored to the hour)
    b.add(T0 + BLOCK - 1, 1.0, 1)
    spend, start, _ = b.window("5h", T0 + BLOCK - 1)
    assert start == T0 and math.isclose(spend.dollars, 2.0)
    b.add(T0 + BLOCK + 3600 + 5, 0.5, 1)  # past the block: a new one, at its hour
    spend, start, _ = b.window("5h", T0 + BLOCK + 3600 + 10)
    assert start == T0 + BLOCK + 3600 and math.isclose(spend.dollars, 0.5)
    assert b.window("5h", T0 + 3 * BLOCK)[0].rows == 0  # no active block


def test_forecast_from_the_recent_burn_rate() -> None:
    m = Meter()
    for i in range(10):  # $1 per minute for 10 minutes
        m.add(T0 + 60 * i, 1.0, 1)
    now = T0 + 600
    lim = Limit("fleet", "*", "day", dollars=50.0)
    spend, start, end = m.window("day", now)
    status = evaluate(lim, spend, 0, now, m.rate(now), 0, start, end)
    assert status.forecast is not None
    assert abs(status.forecast - (now + 40 * 60)) < 60  # $40 left at ~$1/min
    assert status.to_json()["forecast"].startswith("2026-12-01T10:50")
    far = evaluate(Limit("fleet", "*", "day", dollars=1e6), spend, 0, now, m.rate(now), 0, start, end)
    assert far.forecast is None  # not reached before the day ends
    idle = evaluate(lim, spend, 0, now + 3 * 3600, m.rate(now + 3 * 3600), 0, start, end)
    assert idle.forecast is None  # nothing burnt lately


# -- end to end: a hooked scripted agent, real tmux, real git, a real Jupyter server -------------
from support import GIT_ENV, HiveServer, wait_for  # noqa: E402

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
PROFILES = {"budgeted": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                         "capabilities": ["budgeted"], "env": GIT_ENV}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("budgets"),
                     extra_config={"profiles": PROFILES, "task_interval": 0.3,
                                   "usage_interval": 0.3, "budget_grace": 1.0}).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def repo(server: HiveServer, tmp_path: Path) -> Path:
    path = server.root / f"repo-{tmp_path.name[-10:]}"
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.py").write_text("print('app')\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(["git", "-C", str(path), "-c", "user.name=T", "-c", "user.email=t@e", *args],
                       check=True, capture_output=True)
    return path


def add_task(server: HiveServer, **body: Any) -> dict[str, Any]:
    status, task = server.request("POST", "tasks", body)
    assert status == 201, task
    return task


def task_state(server: HiveServer, task_id: str) -> dict[str, Any]:
    return server.get(f"tasks/{task_id}")["state"]


def until_task(server: HiveServer, task_id: str, *names: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (s := task_state(server, task_id))["name"] in names and s,
                    timeout=timeout, what=f"task {task_id} in {names}")


def hive_events(server: HiveServer, session: str, name: str) -> list[dict[str, Any]]:
    return server.get(f"events?session={session}&event={name}&limit=10000")["events"]


def rows(server: HiveServer, session: str) -> int:
    return len(server.get(f"usage/rows?session={session}")["rows"])


def screen(server: HiveServer, session: str) -> str:
    return server.get(f"sessions/{session}/screen")["text"]


def settled_rows(server: HiveServer, session: str) -> int:
    """The row count once it stopped growing for 3 s (usage is read every 0.3 s)."""
    last = [-1, 0.0]

    def steady() -> int | None:
        n = rows(server, session)
        import time as _t
        if n != last[0]:
            last[:] = [n, _t.monotonic()]
            return None
        return n if _t.monotonic() - last[1] >= 3.0 else None
    return wait_for(steady, timeout=60, interval=0.3, what=f"usage of {session} to stop")


@pytest.mark.e2e
def test_a_task_is_paused_at_its_budget_denied_and_resumed_when_raised(
        server: HiveServer, repo: Path) -> None:
    add_task(server, id="bud", prompt="@burn 300 8", repo=str(repo), agent="budgeted",
             scope=["src/**"], check=["true"], budget={"tokens": 1000, "ceiling": 5})
    paused = until_task(server, "bud", "paused")
    assert paused["reason"].startswith("budget:") and "task bud" in paused["reason"]
    # the agent's next tool call was denied with the reason, and it stopped there
    wait_for(lambda: "denied: Hive Lab paused this agent at its budget" in screen(server, "bud"),
             timeout=30, what="the deny on the agent's screen")
    decided = hive_events(server, "bud", "HookDecided")
    assert any(e["payload"]["verdict"]["by"] == "budget" and
               e["payload"]["verdict"]["action"] == "deny" for e in decided)
    before = settled_rows(server, "bud")
    # The 4th response crossed 1000 tokens; its own tool call was the first one denied (the
    # hook-time check reads the transcript first; with only the periodic read it was the 5th+).
    assert before == 4
    session = server.get("sessions/bud")
    assert session["paused"]["reason"] == "budget" and session["paused"]["task"] == "bud"
    assert [e["event"] for e in hive_events(server, "bud", "BudgetPaused")] == ["BudgetPaused"]
    assert hive_events(server, "bud", "BudgetWarning")
    report = server.get("budgets")
    mine = [b for b in report["budgets"] if b["id"] == "task:bud:none"][0]
    assert mine["level"] == "paused" and mine["used"]["tokens"] == before * 300
    assert "bud" in report["paused"]
    # raising the limit resumes it where it stopped: the rest of the burn, then done
    status, body = server.request("PATCH", "tasks/bud", {"budget": {"tokens": 100000}})
    assert status == 200, body
    assert body["state"]["name"] in ("running", "checking", "done")
    until_task(server, "bud", "done")
    assert rows(server, "bud") == 8  # the four (or so) left were burnt after the resume
    assert hive_events(server, "bud", "BudgetResumed")
    assert server.get("sessions")["sessions"] == [] or all(
        s["paused"] is None for s in server.get("sessions")["sessions"])


@pytest.mark.e2e
def test_a_tool_call_asked_before_its_response_is_written_waits_for_it_and_is_denied(
        server: HiveServer, repo: Path) -> None:
    # Each response's line lands 0.15 s after its PreToolUse fired (Claude Code flushes its
    # transcript on a timer). Near the limit the check waits for the line: the 4th response
    # (1200 of 1000 tokens) has its own call denied. Without the wait: 5 rows.
    add_task(server, id="late", prompt="@burn 300 8 late", repo=str(repo), agent="budgeted",
             scope=["src/**"], check=["true"], budget={"tokens": 1000, "ceiling": 5})
    until_task(server, "late", "paused")
    wait_for(lambda: "denied: Hive Lab paused this agent at its budget" in screen(server, "late"),
             timeout=30, what="the deny on the agent's screen")
    assert settled_rows(server, "late") == 4
    status, body = server.request("PATCH", "tasks/late", {"state": "canceled"})
    assert status == 200, body


@pytest.mark.e2e
def test_a_paused_agent_that_keeps_working_is_interrupted_after_the_grace(
        server: HiveServer, repo: Path) -> None:
    add_task(server, id="spin", prompt="@spin 200 40", repo=str(repo), agent="budgeted",
             scope=["src/**"], check=["true"], budget={"tokens": 500, "ceiling": 10})
    until_task(server, "spin", "paused")
    wait_for(lambda: "interrupted" in screen(server, "spin"), timeout=30,
             what="the interrupt on the agent's screen")
    stopped = settled_rows(server, "spin")
    assert stopped < 40  # it did not run to the end
    assert server.get("sessions/spin")["paused"]["interrupted"] is not None
    status, body = server.request("PATCH", "tasks/spin", {"state": "canceled"})
    assert status == 200, body


@pytest.mark.e2e
def test_the_ceiling_ends_the_session_and_keeps_the_worktree(server: HiveServer, repo: Path) -> None:
    add_task(server, id="ceil", prompt="@spin 200 40 stubborn", repo=str(repo),
             agent="budgeted", scope=["src/**"], check=["true"],
             budget={"tokens": 500, "ceiling": 1.5})
    until_task(server, "ceil", "paused")
    wait_for(lambda: hive_events(server, "ceil", "BudgetCeiling"), timeout=60, what="the ceiling")
    status, _ = server.request("GET", "sessions/ceil")
    assert status == 404  # ended
    task = server.get("tasks/ceil")
    assert task["state"]["name"] == "paused" and "ceiling" in task["state"]["reason"]
    assert task["attempts"][-1]["outcome"] == "budget_ceiling"
    worktree = Path(task["worktree"])
    assert worktree.is_dir()
    branches = subprocess.run(["git", "-C", str(repo), "branch", "--list", "hive/ceil"],
                              capture_output=True, text=True).stdout
    assert "hive/ceil" in branches
    n = settled_rows(server, "ceil")
    assert 4 <= n < 40
    # raised: the task starts again (another attempt, on the same branch)
    status, body = server.request("PATCH", "tasks/ceil", {"budget": {"tokens": 10**9}})
    assert status == 200 and body["state"]["name"] in ("ready", "running"), body
    server.request("PATCH", "tasks/ceil", {"state": "canceled"})


def test_put_budgets_validates_and_survives_a_restart(server: HiveServer) -> None:
    for bad in ({"fleet": {"dollars": -1}}, {"fleet": {"dollars": 1, "window": "week"}},
                {"nope": 1}, [], {"profile": {"../x": {"dollars": 1}}}):
        status, body = server.request("PUT", "budgets", bad)
        assert status == 400 and body["error"] == "bad_request", (bad, body)
    assert [b for b in server.get("budgets")["budgets"] if b["scope"] == "fleet"] == []
    status, body = server.request("PUT", "budgets", {
        "fleet": [{"dollars": 50, "window": "day"}, {"tokens": 10**9, "window": "5h"}],
        "profile": {"budgeted": {"dollars": 20}}})
    assert status == 200, body
    ids = {b["id"] for b in body["budgets"]}
    assert {"fleet:*:day", "fleet:*:5h", "profile:budgeted:day"} <= ids
    server.restart()
    again = {b["id"]: b for b in server.get("budgets")["budgets"]}
    assert again["fleet:*:day"]["dollars"] == 50 and again["fleet:*:day"]["window_end"]
    status, body = server.request("PUT", "budgets", {"fleet": None, "profile": {"budgeted": None}})
    assert status == 200 and not [b for b in body["budgets"] if b["scope"] in ("fleet", "profile")]
