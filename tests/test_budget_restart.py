"""Wall-clock minutes of a profile survive a SIGKILL of the server (issue 11: "Hive Lab itself
restarts: budgets ... survive").

Real server, real tmux: sessions of the ``hooked`` profile (``cat`` with Claude-style hooks).
A session that lived and was removed before the kill still counts after the restart; one
alive across it (re-adopted) counts once, from its start; a limit crossed before the kill
pauses a session started after it; one whose agent died while the server was down counts up
to its last heartbeat, not up to the restart.
"""
from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from support import HiveServer, wait_for
from support.helpers import spawn

pytestmark = pytest.mark.e2e

LIMIT_ID = "profile:hooked:day"


def profile_budget(server: HiveServer, limit: str = LIMIT_ID) -> dict[str, Any]:
    return [b for b in server.get("budgets")["budgets"] if b["id"] == limit][0]


def minutes(server: HiveServer, limit: str = LIMIT_ID) -> float:
    return float(profile_budget(server, limit)["used"]["minutes"])


def steady_minutes(server: HiveServer) -> float:
    """The profile's minutes once no live session adds to them (two reads 1 s apart agree)."""
    last = [-1.0]

    def same() -> float | None:
        m, prev = minutes(server), last[0]
        last[0] = m
        return m if m == prev else None
    return wait_for(same, timeout=30, interval=1.0, what="the profile's minutes to settle")


def paused(server: HiveServer, name: str) -> Any:
    return server.get(f"sessions/{name}")["paused"]


def test_profile_minutes_survive_a_sigkill_and_a_limit_crossed_before_still_pauses(
        tmp_path: Path) -> None:
    doomed_profile = {"doomed": {"command": ["cat"], "hooks": "claude"}}
    srv = HiveServer(tmp_path, extra_config={"task_interval": 0.3, "budget_grace": 60.0,
                                             "profiles": doomed_profile}).start()
    work = srv.root / "w"
    work.mkdir()
    try:
        status, body = srv.request("PUT", "budgets", {"profile": {"hooked": {"minutes": 100},
                                                                  "doomed": {"minutes": 100}}})
        assert status == 200, body
        spawn(srv, "early", ["cat"], cwd=work, agent="hooked")
        wait_for(lambda: minutes(srv) >= 0.05, timeout=30, interval=0.3,
                 what="3 s of the early session")
        assert srv.request("DELETE", "sessions/early")[0] == 200
        used_early = steady_minutes(srv)
        assert used_early >= 0.05

        alive = spawn(srv, "alive", ["cat"], cwd=work, agent="hooked")
        born = datetime.fromisoformat(alive["created"].replace("Z", "+00:00")).timestamp()
        # Crossed by the early session alone (the young one adds well under half of it).
        status, body = srv.request("PUT", "budgets", {
            "profile": {"hooked": {"minutes": used_early * 0.5, "ceiling": 100}}})
        assert status == 200, body
        wait_for(lambda: paused(srv, "alive"), timeout=30, interval=0.2, what="alive paused")
        doomed = spawn(srv, "doomed", ["cat"], cwd=work, agent="doomed")
        doomed_born = datetime.fromisoformat(doomed["created"].replace("Z", "+00:00")).timestamp()
        wait_for(lambda: minutes(srv, "profile:doomed:day") > 0, timeout=30, interval=0.2,
                 what="the doomed session counted")

        srv.stop(signal.SIGKILL)
        killed = time.time()
        assert srv.tmux("kill-session", "-t", "=doomed").returncode == 0  # dies while down
        time.sleep(1.0)
        srv.start()

        before = time.time()
        used = minutes(srv)
        after = time.time()
        # The early session's minutes are still there, and the re-adopted one counts once,
        # from its start (not from the restart, not twice): used = early + alive's age.
        assert used_early + (before - born) / 60 - 1e-4 <= used, (used, used_early)
        assert used <= used_early + (after - born) / 60 + 1e-4, (used, used_early)
        # The one that died while the server was down: not counted up to the restart.
        doomed_used = minutes(srv, "profile:doomed:day")
        assert 0 <= doomed_used <= (killed - doomed_born) / 60, (doomed_used, killed - doomed_born)
        # The limit crossed before the kill still holds the session it paused.
        assert profile_budget(srv)["level"] == "paused"
        assert paused(srv, "alive")
        # A limit only the minutes from before the restart cross keeps it paused (counting
        # only what this server saw, it would resume it), and pauses a session started now.
        status, body = srv.request("PUT", "budgets", {"profile": {"hooked": {
            "minutes": minutes(srv) - used_early / 2, "ceiling": 100}}})
        assert status == 200 and "alive" in body["paused"], body
        spawn(srv, "late", ["cat"], cwd=work, agent="hooked")
        wait_for(lambda: paused(srv, "late"), timeout=30, interval=0.2,
                 what="the late session paused by the minutes from before the restart")
        for name in ("alive", "late"):
            srv.request("DELETE", f"sessions/{name}")
    finally:
        srv.stop()
        srv.kill_tmux()
