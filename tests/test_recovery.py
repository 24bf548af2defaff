"""Recovery from failures through the REST API, one class at a time (orchestrate/recovery.py).

A real Jupyter server, real tmux, real git, and the scripted stand-in agent: ``@exit`` crashes
it, ``@hush`` makes it silent while working, ``@repeat`` fires the same PreToolUse again and
again, ``@stopfail`` fires the StopFailure hook Claude Code fires when the API refuses (what the
real CLI does is in tests/claude_support/NOTES.md, "API errors"). The "guarded" profile has
Claude-style hooks, so its provider is ``claude``.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hive_lab.core.agents import CLAUDE_CUES
from support import HiveServer, make_repo, wait_for
from test_tasks_api import GIT_ENV, add, events, task, until_state

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
PROFILES = {
    "crashy": {"command": [sys.executable, "-u", AGENT], "capabilities": ["crash"], "env": GIT_ENV},
    "guarded": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                "capabilities": ["hooked"], "env": GIT_ENV},
    # Claude-style hooks and Claude Code's own retry countdown cue (its provider: claude)
    "retrier": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                "capabilities": ["retrier"], "env": GIT_ENV,
                "cues": {"retrying": list(CLAUDE_CUES.retrying)}},
}
RECOVERY = {"restart_backoff_base": 1.0, "restart_backoff_cap": 8.0,
            "fleet_restarts_per_hour": 100, "stall_minutes": 0.05, "loop_repeats": 3,
            "resume_stagger": 2.0, "rate_limit_probe": 3.0}


def make_server(base: Path, **overrides: Any) -> HiveServer:
    return HiveServer(base, extra_config={"profiles": PROFILES, "task_interval": 0.3,
                                          **RECOVERY, **overrides}).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = make_server(tmp_path_factory.mktemp("recovery"))
    yield srv
    srv.stop()
    srv.kill_tmux()


def new_repo(server: HiveServer, name: str) -> Path:
    path = server.root / f"repo-{name}"
    return make_repo(path, {"src/app.py": "print('app')\n"})


def all_events(server: HiveServer, name: str) -> list[dict[str, Any]]:
    return server.get(f"events?event={name}&limit=10000")["events"]


def reasons(server: HiveServer, task_id: str) -> list[tuple[float, str]]:
    from hive_lab.core.events import iso  # noqa: F401  (the stream's time format)

    out = []
    for e in events(server, task_id, "TaskChanged"):
        out.append((e["payload"]["task"]["state"]["since"], e["payload"]["reason"]))
    return out


# -- the CLI retrying by itself (Claude Code's countdown; NOTES.md "API errors") ----------------
COUNTDOWN = ("@run for i in 8 7 6 5 4 3 2 1; do printf '\\342\\234\\273 API error \\302\\267 Retrying"
             " in %ss \\302\\267 attempt 1/10\\n' $i > /dev/tty; sleep 1; done;"
             " printf '\\033[2J\\033[H' > /dev/tty")


def test_a_self_retrying_session_is_never_told_and_holds_the_parked_ones_back(
        server: HiveServer) -> None:
    """One session's CLI gave up on a rate limit (StopFailure: parked, probed after 3 s);
    another's retries by itself, counting down 8 s on its screen. The countdown is waiting
    (rate_limit) with a resume_at; nothing is typed into it; and its retry is the probe: the
    parked session is told to continue only after the countdown ended, once."""
    repo = new_repo(server, "selfretry")
    add(server, id="gaveup", prompt="@stopfail rate_limit", repo=str(repo), agent="guarded",
        scope=["src/g/**"])
    add(server, id="retries", prompt=COUNTDOWN, repo=str(repo), agent="retrier",
        scope=["src/r/**"])
    for tid in ("gaveup", "retries"):
        done = until_state(server, tid, "done", "failed", timeout=90)
        assert done["state"]["name"] == "done", done
    states = [e["payload"]["record"] for e in events(server, "retries", "StateChanged")]
    counting = [r for r in states if r["source"] == "screen:retrying"]
    assert counting and all((r["name"], r["reason"]) == ("waiting", "rate_limit") and
                            0 < r["resume_at"] - r["since"] <= 8 for r in counting), states
    assert len(counting) == 1  # one attempt: one transition, not one per second
    changes = events(server, "retries", "TaskChanged")
    assert not [e for e in changes if e["payload"]["reason"].startswith("told to continue")]
    continued = [e["id"] for e in changes
                 if e["payload"]["reason"] == "the agent continued by itself after the limit"]
    told = [e["id"] for e in events(server, "gaveup", "TaskChanged")
            if e["payload"]["reason"].startswith("told to continue")]
    assert len(told) == 1 and continued and told[0] > continued[0], (told, continued)
    parked = [e for e in all_events(server, "ProviderParked")
              if e["session"] in ("gaveup", "retries")]
    resumed = [e for e in all_events(server, "ProviderResumed") if e["id"] > parked[0]["id"]]
    assert len(parked) == 1 and len(resumed) == 1, (parked, resumed)
    assert resumed[0]["payload"]["resumed"] == ["gaveup"]


# -- crash: backoff, max_attempts, the fleet cap ----------------------------------------------
def test_a_crashing_agent_is_restarted_with_growing_backoff_then_fails(server: HiveServer) -> None:
    repo = new_repo(server, "crash")
    add(server, id="crash3", prompt="@exit 3", repo=str(repo), agent="crashy", max_attempts=3)
    failed = until_state(server, "crash3", "failed", timeout=60)
    attempts = failed["attempts"]
    assert [a["outcome"] for a in attempts] == ["died", "died", "died"]
    assert "3 of 3" in failed["state"]["reason"] and "status 3" in failed["state"]["reason"]
    gaps = [attempts[i]["started"] - attempts[i - 1]["ended"] for i in (1, 2)]
    gaps = [g if isinstance(g, (int, float)) else 0 for g in gaps]
    why = [r for _, r in reasons(server, "crash3") if r.startswith("restarts at")]
    assert len(why) == 2 and "backoff 1 s, attempt 2 of 3" in why[0] \
        and "backoff 2 s, attempt 3 of 3" in why[1], why
    restarted = [e for e in all_events(server, "AgentRestarted") if e["session"] == "crash3"]
    assert [e["payload"]["attempt"] for e in restarted] == [2, 3]
    times = [e["payload"]["at"] for e in restarted]
    assert times[1] - times[0] >= 2.0  # the second backoff (2 s) is twice the first


def test_an_auth_failure_fails_at_once_with_a_notification(server: HiveServer) -> None:
    repo = new_repo(server, "auth")
    add(server, id="badkey", prompt="@stopfail authentication_failed", repo=str(repo),
        agent="guarded", max_attempts=3)
    failed = until_state(server, "badkey", "failed", timeout=40)
    assert len(failed["attempts"]) == 1 and failed["attempts"][0]["outcome"] == "auth"
    assert "not retried" in failed["state"]["reason"]
    auth = [e for e in all_events(server, "AuthFailed") if e["session"] == "badkey"]
    assert len(auth) == 1 and auth[0]["payload"]["provider"] == "claude"


# -- stall and loop --------------------------------------------------------------------------
def test_a_silent_working_agent_is_flagged_stalled(server: HiveServer) -> None:
    repo = new_repo(server, "stall")
    add(server, id="quiet", prompt="@hush 60", repo=str(repo), agent="guarded")
    until_state(server, "quiet", "running")
    stalled = wait_for(lambda: [e for e in all_events(server, "SessionStalled")
                                if e["session"] == "quiet"], timeout=30, what="SessionStalled")
    assert stalled[0]["payload"]["quiet_minutes"] >= 0.05
    assert "stalled" in task(server, "quiet")["flags"]
    server.request("PATCH", "tasks/quiet", {"state": "canceled"})


def test_the_same_tool_call_again_and_again_is_flagged_looping(server: HiveServer) -> None:
    repo = new_repo(server, "loop")
    add(server, id="loopy", prompt="@repeat 4 Bash ls -la\n@hush 30", repo=str(repo),
        agent="guarded")
    looping = wait_for(lambda: [e for e in all_events(server, "SessionLooping")
                                if e["session"] == "loopy"], timeout=30, what="SessionLooping")
    assert len(looping) == 1 and looping[0]["payload"]["tool"] == "Bash"
    flags = task(server, "loopy")["flags"]
    assert flags["looping"]["repeats"] == 3
    server.request("PATCH", "tasks/loopy", {"state": "canceled"})


def test_the_fleet_restart_cap_holds_with_many_crashing_agents(tmp_path: Path) -> None:
    srv = make_server(tmp_path, fleet_restarts_per_hour=3, restart_backoff_base=0.2)
    try:
        repo = new_repo(srv, "fleet")
        for i in range(5):
            add(srv, id=f"storm{i}", prompt="@exit 1", repo=str(repo), agent="crashy",
                max_attempts=4)
        capped = wait_for(lambda: [t for t in srv.get("tasks")["tasks"]
                                   if "fleet restart cap" in (t.get("why") or "")],
                          timeout=60, what="a task held by the fleet cap")
        assert capped
        time.sleep(3)  # more ticks: nothing else may restart within the hour
        assert len(all_events(srv, "AgentRestarted")) == 3
        srv.stop(signal.SIGKILL)
        srv.start()  # the restarts of the last hour are remembered
        time.sleep(3)
        assert len(all_events(srv, "AgentRestarted")) == 3
        held = [t for t in srv.get("tasks")["tasks"] if "fleet restart cap" in (t.get("why") or "")]
        assert held, [(t["id"], t["state"], t.get("why")) for t in srv.get("tasks")["tasks"]]
    finally:
        srv.stop()
        srv.kill_tmux()


# -- rate limits: parked provider, staggered resume, once each, across a restart --------------
def test_a_rate_limit_parks_the_provider_and_resumes_staggered_once_across_a_restart(
        tmp_path: Path) -> None:
    srv = make_server(tmp_path, rate_limit_probe=6.0, resume_stagger=2.0)
    try:
        repo = new_repo(srv, "limits")
        for i in (1, 2):
            add(srv, id=f"lim{i}", prompt="@stopfail rate_limit", repo=str(repo),
                agent="guarded", scope=[f"src/l{i}/**"])
        for i in (1, 2):
            parked = until_state(srv, f"lim{i}", "waiting", timeout=40)
            assert "provider claude parked until" in parked["why"], parked
            assert srv.get(f"sessions/lim{i}")["state"]["reason"] == "rate_limit"
        assert len(all_events(srv, "ProviderParked")) == 1  # one parking for the fleet
        add(srv, id="later", prompt="nothing to do", repo=str(repo), agent="guarded",
            scope=["src/later/**"])
        why = wait_for(lambda: (w := task(srv, "later").get("why") or "").startswith(
            "provider claude parked until") and w, timeout=20, what="the parked why")
        assert "rate limit" in why
        srv.stop(signal.SIGKILL)  # mid-parking
        srv.start()
        assert task(srv, "later")["state"]["name"] == "ready"
        try:
            for i in (1, 2):
                until_state(srv, f"lim{i}", "done", timeout=60)
        except AssertionError:
            for e in srv.get("events?limit=10000")["events"]:
                if e["session"] in ("lim1", "lim2", "claude"):
                    print(e["id"], e["session"], e["event"], e["summary"][:160])
            print(task(srv, "lim1"))
            raise
        until_state(srv, "later", "done", timeout=60)
        told = {i: [s for s, r in reasons(srv, f"lim{i}") if r.startswith("told to continue")]
                for i in (1, 2)}
        assert [len(v) for v in told.values()] == [1, 1], told  # none resumed twice
        first, second = sorted(told[1] + told[2])
        assert second - first >= 2.0  # staggered, not all at once
        assert len(all_events(srv, "ProviderResumed")) == 1
        assert len(all_events(srv, "ProviderParked")) == 1
    finally:
        srv.stop()
        srv.kill_tmux()
