"""Two real control servers sharing one task board in a real PostgreSQL.

Each server is a real ``jupyter server`` with Hive Lab, its own tmux socket and data dir (its
sessions and events stay in its own SQLite); both have ``store_url`` set to one PostgreSQL
database. They compete for the same ready tasks, which the scripted stand-in agent carries
out: every task must be started exactly once, on one server, round after round. Then the
store goes away under a running task and comes back.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from support import GIT_ENV, HiveServer, git, wait_for

pytestmark = pytest.mark.e2e

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
PROFILES = {"scripted": {"command": [sys.executable, "-u", AGENT], "capabilities": ["implement"],
                         "env": GIT_ENV}}
TASKS_PER_ROUND = 6
ROUNDS = 3


def _server(base: Path, url: str) -> HiveServer:
    return HiveServer(base, extra_config={"profiles": PROFILES, "task_interval": 0.2,
                                          "store_url": url})


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, postgres):
    url = postgres.create_database("board_pair")
    servers = [_server(tmp_path_factory.mktemp(f"ctl{i}"), url) for i in range(2)]
    try:
        for srv in servers:
            srv.start()
        yield servers, postgres
    finally:
        for srv in servers:
            srv.stop()
            srv.kill_tmux()
        postgres.drop_database("board_pair")


def _repo(where: Path) -> Path:
    where.mkdir(parents=True)
    (where / "README").write_text("shared\n")
    git(where, "init", "-q", "-b", "main")
    git(where, "add", "-A")
    git(where, "commit", "-qm", "initial")
    return where


def _events(srv: HiveServer, name: str, session: str | None = None) -> list[dict[str, Any]]:
    query = f"events?event={name}&limit=10000" + (f"&session={session}" if session else "")
    return srv.get(query)["events"]


def test_two_servers_start_each_ready_task_exactly_once(pair, tmp_path: Path) -> None:
    (a, b), _ = pair
    repo = _repo(a.root / "repo-race")
    started_on: dict[str, list[str]] = {}
    for rnd in range(ROUNDS):
        ids = [f"r{rnd}-t{i}" for i in range(TASKS_PER_ROUND)]
        for i, task_id in enumerate(ids):
            srv = (a, b)[i % 2]  # tasks come in through both servers
            status, body = srv.request("POST", "tasks", {
                "id": task_id, "repo": str(repo), "scope": [f"out/{task_id}.txt"], "agent": "scripted",
                "prompt": f"@write out/{task_id}.txt {task_id}\n@commit {task_id}"})
            assert status == 201, body
        for task_id in ids:
            done = wait_for(lambda t=task_id: (x := a.get(f"tasks/{t}"))["state"]["name"]
                            in ("done", "failed") and x, timeout=90, what=f"task {task_id} ends")
            assert done["state"]["name"] == "done", (done["state"], done["attempts"])
            assert len(done["attempts"]) == 1, [  # started once, never again
                (x["n"], x.get("outcome"), x.get("reason"), x.get("started"), x.get("ended"))
                for x in done["attempts"]]
        for task_id in ids:
            where = [name for name, srv in (("a", a), ("b", b))
                     if _events(srv, "SessionCreated", task_id)]
            started_on[task_id] = where
            assert len(where) == 1, f"{task_id} started on {where}"
            # The other server saw the same board (shared store), not a task of its own.
            assert b.get(f"tasks/{task_id}")["state"]["name"] == "done"
    print("started on:", {k: v[0] for k, v in started_on.items()})
    # Every task's owner is one of the two servers' stable ids, not a per-process name.
    owners = {a.get(f"tasks/{t}")["owner"] for t in started_on}
    ids_on_disk = {(s.data_dir / "node_id").read_text().strip() for s in (a, b)}
    assert owners <= ids_on_disk


def test_the_board_is_shared_and_the_password_never_shows(pair) -> None:
    (a, b), pg = pair
    status, body = a.request("POST", "tasks", {"id": "shared-1", "prompt": "x",
                                               "repo": str(_repo(a.root / "repo-shared")),
                                               "agent": "nobody"})
    assert status == 201, body
    assert b.get("tasks/shared-1")["id"] == "shared-1"
    assert b.request("POST", "tasks", {"id": "shared-1", "prompt": "again",
                                       "repo": body["repo"]})[0] == 409  # one id, fleet-wide
    for srv in (a, b):
        store = srv.get("status")["store"]
        assert store["kind"] == "postgresql" and store["reachable"] is True
        assert pg.password not in str(srv.get("status"))
        assert pg.password not in (srv.base / f"server-{srv.port}.log").read_text(errors="replace")
    a.request("PATCH", "tasks/shared-1", {"state": "canceled"})


def test_the_store_going_away_under_a_running_task(tmp_path: Path) -> None:
    from support.postgres import PostgresServer, missing_reason

    if missing_reason():
        pytest.skip(missing_reason())
    pg = PostgresServer().start()
    srv = _server(tmp_path / "ctl", pg.create_database("board"))
    try:
        srv.start()
        repo = _repo(srv.root / "repo-outage")
        status, body = srv.request("POST", "tasks", {
            "id": "long", "repo": str(repo), "scope": ["out/**"], "agent": "scripted",
            "prompt": "@sleep 5\n@write out/long.txt done\n@commit long"})
        assert status == 201, body
        wait_for(lambda: srv.get("tasks/long")["state"]["name"] == "running", timeout=30,
                 what="the task runs")
        wait_for(lambda: "long" in srv.tmux_sessions(), timeout=30, what="its session")
        before = srv.get("status")["last_event_id"]
        pg.pause()
        down = wait_for(lambda: (s := srv.get("status")["store"])["reachable"] is False and s,
                        timeout=30, what="status says the store is unreachable")
        assert down["down_since"] and pg.password not in str(down)
        assert [e["event"] for e in _events(srv, "StoreUnreachable")] == ["StoreUnreachable"]
        status, answer = srv.request("GET", "tasks/long")
        assert status == 503 and answer["error"] == "store_unavailable", answer
        # The agent runs on and the node keeps recording what it does.
        assert "long" in srv.tmux_sessions()
        wait_for(lambda: any(e["session"] == "long" for e in srv.get(
            f"events?after={before}&limit=1000")["events"]), timeout=30,
            what="the running agent's events recorded while the store is away")
        assert (srv.get("sessions/long")["state"]["name"]) != "exited"
        pg.resume()
        wait_for(lambda: srv.get("status")["store"]["reachable"], timeout=30,
                 what="the store answers again")
        assert len(_events(srv, "StoreReachable")) == 1
        done = wait_for(lambda: (t := srv.get("tasks/long"))["state"]["name"] in ("done", "failed")
                        and t, timeout=60, what="the task finishes after the store returns")
        assert done["state"]["name"] == "done" and len(done["attempts"]) == 1, done
        assert git(repo, "log", "-1", "--format=%s", "hive/long").strip() == "long"
        assert pg.password not in (srv.base / f"server-{srv.port}.log").read_text(errors="replace")
    finally:
        srv.stop()
        srv.kill_tmux()
        pg.stop()


HOOKED = {"budgeted": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                       "capabilities": ["budgeted"], "env": GIT_ENV}}
FLEET_TOKENS = 1500  # each server's agent burns 900: under the limit alone, over it together


def test_a_fleet_budget_stops_agents_on_both_servers(tmp_path: Path, postgres) -> None:
    url = postgres.create_database("board_budget")
    servers = [HiveServer(tmp_path / f"b{i}", extra_config={
        "profiles": HOOKED, "task_interval": 0.3, "usage_interval": 0.3, "budget_grace": 1.0,
        "store_url": url, "budgets": {"fleet": {"tokens": FLEET_TOKENS, "window": "day"}}})
        for i in range(2)]
    try:
        for srv in servers:
            srv.start()
        a, b = servers
        names = ("spend-a", "spend-b")
        for srv, name in zip(servers, names):
            status, body = srv.request("POST", "sessions", {
                "name": name, "agent": "budgeted", "cwd": str(_repo(srv.root / f"repo-{name}"))})
            assert status == 201, body

        def rows(srv: HiveServer, name: str) -> int:
            return len(srv.get(f"usage/rows?session={name}")["rows"])

        def fleet_used(srv: HiveServer) -> int:
            report = srv.get("budgets")["budgets"]
            return [x for x in report if x["id"] == "fleet:*:day"][0]["used"]["tokens"]

        wait_for(lambda: "ready" in a.get(f"sessions/{names[0]}/screen")["text"].lower()
                 or a.get(f"sessions/{names[0]}")["state"]["name"] == "idle", timeout=30,
                 what="agent a up")
        assert a.request("POST", f"sessions/{names[0]}/input", {"text": "@burn 300 3"})[0] < 300
        wait_for(lambda: rows(a, names[0]) == 3, timeout=60, what="a's three responses counted")
        # A alone is under the fleet limit: nothing is paused, B sees A's spend.
        wait_for(lambda: fleet_used(b) == 900, timeout=30, what="b counts a's spend")
        assert a.get(f"sessions/{names[0]}")["paused"] is None
        assert b.request("POST", f"sessions/{names[1]}/input", {"text": "@burn 300 3"})[0] < 300
        for srv, name in zip(servers, names):
            paused = wait_for(lambda s=srv, n=name: s.get(f"sessions/{n}")["paused"], timeout=60,
                              what=f"{name} paused by the fleet budget")
            assert paused["reason"] == "budget" and "fleet:*:day" in paused["limits"], paused
            assert fleet_used(srv) >= FLEET_TOKENS
            assert [e["event"] for e in _events(srv, "BudgetPaused", name)] == ["BudgetPaused"]
    finally:
        for srv in servers:
            srv.stop()
            srv.kill_tmux()
        postgres.drop_database("board_budget")


def test_a_task_canceled_through_the_other_server_stops_where_it_runs(pair) -> None:
    (a, b), _ = pair
    repo = _repo(a.root / "repo-cancel")
    status, body = a.request("POST", "tasks", {
        "id": "cancel-me", "repo": str(repo), "scope": ["out/**"], "agent": "scripted",
        "prompt": "@sleep 60\n@write out/never.txt x\n@commit never"})
    assert status == 201, body
    wait_for(lambda: a.get("tasks/cancel-me")["state"]["name"] == "running", timeout=30,
             what="the task runs")
    wait_for(lambda: any("cancel-me" in srv.tmux_sessions() for srv in (a, b)), timeout=30,
             what="its session on one of the servers")
    owner_srv = a if "cancel-me" in a.tmux_sessions() else b
    other = b if owner_srv is a else a
    assert "cancel-me" in owner_srv.tmux_sessions() and "cancel-me" not in other.tmux_sessions()
    status, body = other.request("PATCH", "tasks/cancel-me", {"state": "canceled"})
    assert status == 200 and body["state"]["name"] == "canceled", body
    wait_for(lambda: "cancel-me" not in owner_srv.tmux_sessions(), timeout=30,
             what="the owner stops the canceled task's session")
    assert owner_srv.get("tasks/cancel-me")["state"]["name"] == "canceled"
