"""A fleet across hosts, with real parts: two nodes in their own network namespaces (veth
pairs, 10.77.N.2), each a real Jupyter server with Hive Lab, its own tmux socket and data
dir; a control room in the root namespace federating them. Skipped, with the reason, where
network namespaces cannot be made."""
from __future__ import annotations

import asyncio
import json
import shlex
import socket
import signal
import subprocess
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from support import BIN, HiveServer, git, wait_for
from support.netns import Netns, NetnsNode, free_indexes, unavailable

WHY = unavailable()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"no network namespaces: {WHY}"),
              pytest.mark.timeout(240)]
HOOK = Path(__file__).resolve().parents[1] / "hive_lab" / "hook.py"
SSHD = Path(__file__).resolve().parent / "support" / "sshd.py"


def ticker(every: float = 0.25) -> list[str]:
    """An agent that reports a PostToolUse hook event every ``every`` s, through the real hook
    client, on its own node (so the node records events while the control room is cut off)."""
    payload = json.dumps({"hook_event_name": "PostToolUse", "session_id": "t", "tool_name": "Bash",
                          "tool_input": {"command": "true"}, "tool_response": {}})
    hook = shlex.join([sys.executable, "-S", "-E", "-s", str(HOOK), "--agent", "hooked"])
    return ["sh", "-c", f"while true; do printf '%s' {shlex.quote(payload)} | {hook}; "
                        f"sleep {every}; done"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    made: list[Any] = []
    try:
        nodes = {}
        indexes = free_indexes(2)
        for index, (name, labels) in zip(indexes, (("n1", ["gpu"]), ("n2", ["big-repo"]))):
            ns = Netns(index).create()
            made.append(ns)
            node = NetnsNode(tmp_path_factory.mktemp(name), netns=ns, extra_config={
                "profiles": {"sleeper": {"command": ["sh", "-c", "sleep 600"], "hooks": "claude"}}})
            made.append(node)
            node.start()
            nodes[name] = (node, labels)
        # n1 from c.HiveLab.hosts, n2 from the hosts file the real `hive-lab hosts add` writes
        n1, n2 = nodes["n1"][0], nodes["n2"][0]
        hosts_file = tmp_path_factory.mktemp("hostsfile") / "hosts.json"
        added = subprocess.run(
            [str(BIN / "hive-lab"), "hosts", "--file", str(hosts_file), "add", "n2", n2.url,
             "--token-file", str(n2.token_file()), "--label", "big-repo", "--capacity", "4"],
            capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        assert n2.token not in hosts_file.read_text()
        room = HiveServer(tmp_path_factory.mktemp("room"), extra_config={
            "hosts": [{"name": "n1", "url": n1.url, "token_file": str(n1.token_file()),
                       "labels": ["gpu"], "capacity": 4}],
            "hosts_file": str(hosts_file), "fleet_interval": 0.5, "fleet_timeout": 2.0})
        made.append(room)
        room.start()
        wait_for(lambda: all(h["state"] == "ok" for h in room.get("hosts")["hosts"]),
                 what="both nodes ok")
        yield {"n1": nodes["n1"][0], "n2": nodes["n2"][0], "room": room,
               "ns1": nodes["n1"][0].netns, "hosts_file": hosts_file}
    finally:
        for thing in reversed(made):
            if isinstance(thing, HiveServer):
                thing.stop()
                if thing.port:
                    thing.kill_tmux()
            else:
                thing.destroy()


def _spawn(room: HiveServer, body: dict[str, Any]) -> dict[str, Any]:
    status, data = room.request("POST", "sessions", body)
    assert status == 201, data
    return data


def test_nodes_listen_on_their_own_address_and_refuse_without_token(fleet) -> None:
    n1 = fleet["n1"]
    assert n1.url.startswith(f"http://{fleet['ns1'].address}:") and fleet["ns1"].address != "127.0.0.1"
    for path in ("status", "sessions", "events", "tasks", "hosts", "git", "usage",
                 "notifications", "budgets"):
        for token in (None, "wrong-" + n1.token[:6]):
            status, _ = n1.request("GET", path, token=token)
            assert status == 403, (path, token, status)
    status, _ = n1.request("POST", "sessions", {"name": "x", "agent": "shell"}, token=None)
    assert status == 403

    async def stream_without_token() -> int:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            async with connect(n1.url.replace("http", "ws") + "hive_lab/api/events/stream",
                               proxy=None):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code
    assert asyncio.run(stream_without_token()) == 403


def test_placement_by_label_merged_sessions_and_one_stream(fleet) -> None:
    room, n1, n2 = fleet["room"], fleet["n1"], fleet["n2"]
    placed = _spawn(room, {"name": "tick1", "agent": "hooked", "command": ticker(),
                           "labels": ["gpu"]})
    assert placed["host"] == "n1" and "gpu" in placed["placement"]
    assert _spawn(room, {"name": "tick2", "agent": "hooked", "command": ticker(),
                         "host": "n2"})["host"] == "n2"
    assert "tick1" in n1.tmux_sessions() and "tick1" not in n2.tmux_sessions()
    status, refused = room.request("POST", "sessions", {"name": "x", "agent": "shell",
                                                        "labels": ["linux-arm"]})
    assert status == 409 and "linux-arm" in refused["detail"], refused

    rows = wait_for(lambda: {(s["host"], s["name"]) for s in room.get("sessions")["sessions"]}
                    >= {("n1", "tick1"), ("n2", "tick2")} and room.get("sessions")["sessions"],
                    what="both nodes' sessions in one list")
    assert {s["host"] for s in rows} == {"n1", "n2"}
    assert [s["name"] for s in room.get("sessions?host=n2")["sessions"]] == ["tick2"]
    # A node's own API, through the control room, with the node's token added there.
    screen = room.get("hosts/n1/api/sessions/tick1")
    assert screen["name"] == "tick1"

    got = asyncio.run(_collect(room, "", lambda seen: {"n1", "n2"} <= {e["host"] for e in seen
                                                                        if e["agent"] != "hive"}))
    assert {e["host"] for e in got} >= {"n1", "n2"}


def test_bad_fleet_requests_are_refused_and_change_nothing(fleet) -> None:
    room, n1 = fleet["room"], fleet["n1"]
    before = {s["name"] for s in n1.get("sessions")["sessions"]}
    for body, status in (
            ({"name": "b1", "agent": "shell", "host": "nowhere"}, 404),
            ({"name": "b1", "agent": "shell", "host": "-x"}, 400),
            ({"name": "b1", "agent": "shell", "labels": "gpu;rm"}, 400),
            ({"name": "b1", "agent": "shell", "labels": ["linux-arm"]}, 409),
            ({"name": "b1", "agent": "shell", "labels": [1]}, 400),
            ({"name": "-b1", "agent": "shell", "labels": ["gpu"]}, 400),  # refused by n1
    ):
        got, answer = room.request("POST", "sessions", body)
        assert got == status and answer["error"] and answer["detail"], (body, got, answer)
    assert {s["name"] for s in n1.get("sessions")["sessions"]} == before
    assert room.request("GET", "hosts/nowhere")[0] == 404
    assert room.request("GET", "sessions?host=nowhere")[0] == 404
    assert room.request("GET", "hosts/n1/api/hooks")[0] == 400
    assert room.request("GET", "hosts/local/api/status")[0] == 400

    async def stream_status(query: str) -> int:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            async with connect(room.url.replace("http", "ws") + "hive_lab/api/fleet/stream?"
                               + query, additional_headers={"Authorization": f"token {room.token}"},
                               proxy=None):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code
    assert asyncio.run(stream_status("after=n1:x")) == 400
    assert asyncio.run(stream_status("after=ghost:3")) == 400
    assert asyncio.run(stream_status("host=ghost")) == 404


async def _collect(room: HiveServer, after: str, done: Any, timeout: float = 30.0,
                   sink: list[dict[str, Any]] | None = None,
                   stop: threading.Event | None = None) -> list[dict[str, Any]]:
    from websockets.asyncio.client import connect

    seen: list[dict[str, Any]] = sink if sink is not None else []
    url = room.url.replace("http", "ws") + f"hive_lab/api/fleet/stream?after={after}&heartbeat=1"
    async with connect(url, additional_headers={"Authorization": f"token {room.token}"},
                       proxy=None, max_size=None) as ws:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end and not (stop and stop.is_set()):
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except asyncio.TimeoutError:
                continue
            if "id" in msg:
                seen.append(msg)
                if done(seen):
                    break
    return seen


def test_a_cut_node_is_unreachable_not_exited_and_reconciles(fleet) -> None:
    room, n1, ns1 = fleet["room"], fleet["n1"], fleet["ns1"]
    if not any(s["name"] == "tick1" for s in n1.get("sessions")["sessions"]):
        _spawn(room, {"name": "tick1", "agent": "hooked", "command": ticker(), "host": "n1"})
    repo = n1.root / "repo"
    repo.mkdir(exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-qm", "a")
    status, task = room.request("POST", "tasks", {"id": "t-gpu", "prompt": "go", "repo": str(repo),
                                                  "agent": "sleeper", "labels": ["gpu"]})
    assert status == 201 and task["host"] == "n1", task
    wait_for(lambda: any(t["id"] == "t-gpu" and t["state"]["name"] == "running"
                         for t in room.get("tasks?host=n1")["tasks"]), what="task running on n1")
    first = max(e["id"] for e in n1.client().all_events())
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(target=lambda: asyncio.run(_collect(
        room, f"n1:{first},n2:999999999,local:999999999", lambda s: False, 120, seen, stop)))
    reader.start()
    try:
        wait_for(lambda: any(e["host"] == "n1" for e in seen), what="live n1 events")
        ns1.link_down()
        host = wait_for(lambda: next((h for h in room.get("hosts")["hosts"]
                                      if h["name"] == "n1" and h["state"] == "unreachable"), None),
                        what="n1 unreachable")
        assert host["last_seen"] and host["unreachable_since"]
        rows = [s for s in room.get("sessions")["sessions"] if s["host"] == "n1"]
        assert rows and all(s["stale"] and s["state"]["name"] not in ("exited", "error") for s in rows), rows
        assert next(s for s in rows if s["name"] == "tick1")["state"]["name"] in ("working", "idle",
                                                                          "starting")
        waiting = next(t for t in room.get("tasks")["tasks"] if t["id"] == "t-gpu")
        assert waiting["state"]["name"] == "running" and "unreachable" in waiting["why"]
        status, answer = room.request("GET", "hosts/n1/api/sessions")
        assert status == 504 and answer["error"] == "host_unreachable", (status, answer)
        assert "tick1" in n1.tmux_sessions()  # still running over there
        cut_at = _last_id(n1)
        recorded = wait_for(lambda: _last_id(n1) > cut_at + 3 and _last_id(n1),
                            what="the node recording while cut off")
        ns1.link_up()
        wait_for(lambda: next(h for h in room.get("hosts")["hosts"]
                              if h["name"] == "n1")["state"] == "ok", what="n1 back")
        wait_for(lambda: any(e["id"] >= recorded for e in seen if e["host"] == "n1"),
                 timeout=30, what="events recorded during the outage reach the stream")
    finally:
        stop.set()
        reader.join(10)
        ns1.link_up()
    ids = [e["id"] for e in seen if e["host"] == "n1"]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    on_node = [e["id"] for e in n1.client().all_events(after=first) if e["id"] <= max(ids)]
    assert ids == on_node, "the stream lost or reordered events of n1"
    # Nothing ran twice: one attempt, on n1 only.
    tasks = [t for t in room.get("tasks")["tasks"] if t["id"] == "t-gpu"]
    assert len(tasks) == 1 and tasks[0]["host"] == "n1" and len(tasks[0]["attempts"]) == 1
    # The control room said so in its own stream.
    kinds = [e["event"] for e in room.client().all_events(session="n1")]
    assert "HostUnreachable" in kinds and "HostReachable" in kinds


def test_a_crashed_node_restarted_on_its_data_dir_reconciles(fleet) -> None:
    """The node's server is killed (its agents live on in tmux) and started again on the
    same data dir: unreachable meanwhile, nothing exited; its events, the spooled ones
    included, reach the federated stream once each."""
    room, n2 = fleet["room"], fleet["n2"]
    if not any(s["name"] == "tick2" for s in n2.get("sessions")["sessions"]):
        _spawn(room, {"name": "tick2", "agent": "hooked", "command": ticker(), "host": "n2"})
    first = max(e["id"] for e in n2.client().all_events())
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(target=lambda: asyncio.run(_collect(
        room, f"n2:{first},n1:999999999,local:999999999", lambda s: False, 120, seen, stop)))
    reader.start()
    try:
        wait_for(lambda: any(e["host"] == "n2" for e in seen), what="live n2 events")
        n2.stop(signal.SIGKILL)
        wait_for(lambda: next((h for h in room.get("hosts")["hosts"]
                               if h["name"] == "n2" and h["state"] == "unreachable"), None),
                 what="n2 unreachable")
        rows = [s for s in room.get("sessions")["sessions"] if s["host"] == "n2"]
        assert rows and all(s["stale"] and s["state"]["name"] not in ("exited", "error")
                            for s in rows), rows
        assert "tick2" in n2.tmux_sessions()  # the agent outlived its server
        spool = n2.data_dir / "spool"
        wait_for(lambda: any(spool.glob("session-tick2*.jsonl")), what="hooks spooling")
        n2.start()
        wait_for(lambda: next(h for h in room.get("hosts")["hosts"]
                              if h["name"] == "n2")["state"] == "ok", what="n2 back")
        newest = wait_for(lambda: not any(spool.glob("session-tick2*.jsonl")) and _last_id(n2),
                          what="the spool drained")
        wait_for(lambda: any(e["id"] >= newest for e in seen if e["host"] == "n2"),
                 timeout=30, what="n2's events after the restart in the stream")
    finally:
        stop.set()
        reader.join(10)
    ids = [e["id"] for e in seen if e["host"] == "n2"]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    on_node = [e["id"] for e in n2.client().all_events(after=first) if e["id"] <= max(ids)]
    assert ids == on_node, "the stream lost or reordered events of n2"
    assert any(e["event"] == "PostToolUse" and e["id"] > first for e in seen)


def test_the_kernel_client_resumes_the_fleet_stream_per_host(fleet) -> None:
    """``HiveClient.fleet_stream``: stop after some events, start again from the positions
    they give: what follows is exactly what each node stored next."""
    room, n1, n2 = fleet["room"], fleet["n1"], fleet["n2"]
    for name, host in (("tick1", "n1"), ("tick2", "n2")):
        node = fleet[host]
        if not any(s["name"] == name for s in node.get("sessions")["sessions"]):
            _spawn(room, {"name": name, "agent": "hooked", "command": ticker(), "host": host})
    start = {"n1": _last_id(n1), "n2": _last_id(n2), "local": 10**12}

    async def take(after: dict[str, int], count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        stream = room.client().fleet_stream(after=after)
        async for ev in stream:
            out.append(ev)
            if sum(1 for e in out if e["host"] in ("n1", "n2")) >= count:
                break
        await stream.aclose()
        return out

    first = asyncio.run(take(start, 6))
    cursor = dict(start)
    for ev in first:
        cursor[ev["host"]] = max(cursor[ev["host"]], ev["id"])
    second = asyncio.run(take(cursor, 6))
    for host, node in (("n1", n1), ("n2", n2)):
        got = [e["id"] for e in first + second if e["host"] == host]
        assert len(got) == len(set(got)), "an event arrived twice"
        if got:
            stored = [e["id"] for e in node.client().all_events(after=start[host])
                      if e["id"] <= max(got)]
            assert got == stored, (host, got, stored)


def test_an_ssh_only_node_through_a_managed_tunnel(fleet, tmp_path: Path) -> None:
    """A node that listens on its own loopback only, on a host that offers nothing but SSH
    (key auth, local forwarding to 127.0.0.1): added with `hive-lab hosts add --ssh`, the
    control room keeps the tunnel itself."""
    asyncssh = pytest.importorskip("asyncssh")
    room, hosts_file = fleet["room"], fleet["hosts_file"]
    ns = Netns(free_indexes(1)[0]).create()
    node = NetnsNode(tmp_path / "n3", netns=ns, loopback_only=True)
    sshd = None
    cli = [str(BIN / "hive-lab"), "hosts", "--file", str(hosts_file)]
    try:
        node.start()
        host_key, client_key = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))
        host_key.write_private_key(str(tmp_path / "host_key"))
        client_key.write_private_key(str(tmp_path / "client_key"))
        client_key.write_public_key(str(tmp_path / "client_key.pub"))
        known = tmp_path / "known_hosts"
        known.write_text(f"[{ns.address}]:2222 " + host_key.export_public_key().decode())
        sshd = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, sys.executable, str(SSHD), ns.address, "2222",
             str(tmp_path / "host_key"), str(tmp_path / "client_key.pub")],
            stdout=subprocess.PIPE, text=True)
        assert sshd.stdout is not None and sshd.stdout.readline().strip() == "listening"
        with pytest.raises(OSError):  # nothing but SSH from outside
            socket.create_connection((ns.address, node.port), timeout=2).close()
        added = subprocess.run([*cli, "add", "n3", node.url, "--token-file", str(node.token_file()),
                                "--ssh", f"hive@{ns.address}:2222", "--ssh-key",
                                str(tmp_path / "client_key"), "--known-hosts", str(known)],
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stdout + added.stderr
        wait_for(lambda: any(h["name"] == "n3" and h["state"] == "ok"
                             for h in room.get("hosts")["hosts"]), timeout=30, what="n3 over ssh")
        placed = _spawn(room, {"name": "over-ssh", "agent": "shell", "command": ["cat"],
                               "host": "n3"})
        assert placed["host"] == "n3" and "over-ssh" in node.tmux_sessions()
        assert room.get("hosts/n3/api/sessions/over-ssh")["name"] == "over-ssh"
        got = asyncio.run(_collect(room, f"n3:0,n1:{10**12},n2:{10**12},local:{10**12}",
                                   lambda seen: any(e["host"] == "n3" and e["session"] == "over-ssh"
                                                    for e in seen)))
        assert any(e["host"] == "n3" for e in got)
        row = next(h for h in room.get("hosts")["hosts"] if h["name"] == "n3")
        assert row["ssh"] == {"host": ns.address, "port": 2222, "user": "hive"}
    finally:
        subprocess.run([*cli, "rm", "n3"], capture_output=True, timeout=60)
        if sshd is not None:
            sshd.terminate()
            sshd.wait(10)
        node.stop()
        node.kill_tmux()
        ns.destroy()


def _last_id(node: NetnsNode) -> int:
    """The node's newest event id, read from its database (the file system is shared; the
    network to it may be cut)."""
    with sqlite3.connect(f"file:{node.data_dir / 'hive.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT max(id) FROM events").fetchone()[0] or 0)


def test_node_tokens_never_in_the_control_rooms_answers_or_log(fleet) -> None:
    room = fleet["room"]
    tokens = [fleet["n1"].token, fleet["n2"].token]
    answers = [room.request("GET", p)[1] for p in (
        "hosts", "hosts/n1", "hosts/n2", "sessions", "tasks", "hosts/n1/api/sessions",
        "hosts/n2/api/status", "events?limit=10000", "fleet/git", "fleet/usage",
        "fleet/notifications", "fleet/budgets")]
    for view in ("git", "usage", "notifications", "budgets"):
        got = room.get(f"fleet/{view}")
        assert set(got["hosts"]) == {"local", "n1", "n2"} and got["unreachable"] == {}, got
    assert room.request("GET", "fleet/screens")[0] == 404
    text = json.dumps(answers)
    assert "<redacted>" in text
    for token in tokens:
        assert token not in text
    log = b"".join(p.read_bytes() for p in room.base.glob("server-*.log")).decode(errors="replace")
    assert "n1" in log or "hive_lab" in log  # the log is there and in use
    for token in tokens:
        assert token not in log
