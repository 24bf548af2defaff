"""Foundation: spawn / list / input / screen / keys / kill through REST and the CLI.

Real Jupyter server (subprocess), real tmux on a private socket, real processes.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from support import HiveServer, spawn, state_of, wait_for

HOSTILE_TEXT = 'semi;colon #{session_name} $(id) `id` "dq" \'sq\' \\; end;\nline two\ttab ünïcødé 🐝 #(touch PWNED)'


def screen(server: HiveServer, name: str, lines: int | None = None) -> str:
    path = f"sessions/{name}/screen" + (f"?lines={lines}" if lines else "")
    return server.get(path)["text"]


def test_status_reports_version_tmux_socket(server: HiveServer) -> None:
    status = server.get("status")
    assert status["version"]
    assert status["tmux"].startswith("tmux ")
    assert status["socket"] == server.socket_name
    assert isinstance(status["sessions"], int)


def test_extension_listed_enabled_and_ok(server: HiveServer) -> None:
    out = subprocess.run([str(Path(os.sys.executable).parent / "jupyter"), "server", "extension",
                          "list"], capture_output=True, text=True, env=server.env)
    text = out.stdout + out.stderr
    assert "hive_lab" in text and "enabled" in text.split("hive_lab", 1)[1][:40]
    assert "hive_lab 0" in text and "OK" in text.split("hive_lab 0", 1)[1][:40]


def test_spawn_list_input_screen_keys_kill(server: HiveServer, workdir: Path) -> None:
    out = workdir / "out.txt"
    session = spawn(server, "echoer", ["sh", "-c", f"cat > {out}"], cwd=workdir)
    for key in ("name", "agent", "command", "cwd", "created", "pane_id", "pid", "state", "exit_status"):
        assert key in session
    assert session["pane_id"].startswith("%") and session["pid"] > 0
    assert session["state"]["name"] == "starting" and session["state"]["source"]
    names = [s["name"] for s in server.get("sessions")["sessions"]]
    assert names.count("echoer") == 1

    status, body = server.request("POST", "sessions/echoer/input", {"text": HOSTILE_TEXT})
    assert status == 200, body
    wait_for(lambda: out.exists() and out.read_text(encoding="utf-8") == HOSTILE_TEXT + "\n",
             what="byte-exact text in the file")
    assert not list(workdir.glob("PWNED")) and not (server.root / "PWNED").exists()

    # keys: C-d ends cat (EOF), so the pane dies with status 0
    status, body = server.request("POST", "sessions/echoer/keys", {"keys": ["C-d"]})
    assert status == 200 and body["keys"] == ["C-d"]
    wait_for(lambda: state_of(server, "echoer")["name"] == "exited", what="exited state")
    detail = server.get("sessions/echoer")
    assert detail["exit_status"] == 0 and detail["state"]["source"] == "pane"

    status, body = server.request("DELETE", "sessions/echoer")
    assert status == 200, body
    assert "echoer" not in server.tmux_sessions()
    assert server.request("GET", "sessions/echoer")[0] == 404


def test_screen_shows_output_and_lines(server: HiveServer, workdir: Path) -> None:
    spawn(server, "printer", ["sh", "-c", "for i in $(seq 1 30); do echo row-$i; done; cat"],
          cwd=workdir)
    wait_for(lambda: "row-30" in screen(server, "printer"), what="output on screen")
    last3 = screen(server, "printer", lines=3)
    assert last3.splitlines() == ["row-28", "row-29", "row-30"]
    assert server.request("GET", "sessions/printer/screen?lines=0")[0] == 400
    assert server.request("GET", "sessions/printer/screen?lines=abc")[0] == 400
    server.request("DELETE", "sessions/printer")


def test_escape_and_ctrl_c_reach_the_program(server: HiveServer, workdir: Path) -> None:
    log = workdir / "keys.log"
    # A tiny raw-mode key logger: prints the byte values it reads.
    script = ("import os,sys,tty; tty.setraw(0); f=open(%r,'a')\n"
              "while True:\n b=os.read(0,16)\n f.write(' '.join(map(str,b))+'\\n'); f.flush()\n"
              " if b==b'q': break\n") % str(log)
    spawn(server, "keylog", [os.sys.executable, "-c", script], cwd=workdir)
    wait_for(lambda: state_of(server, "keylog")["name"] != "starting" or True)
    time.sleep(0.5)
    for keys in (["Escape"], ["C-c"], ["1"], ["Enter"], ["q"]):
        status, body = server.request("POST", "sessions/keylog/keys", {"keys": keys})
        assert status == 200, body
        time.sleep(0.15)
    wait_for(lambda: log.exists() and log.read_text().split("\n")[:5] == ["27", "3", "49", "13", "113"],
             what="raw key bytes")
    server.request("DELETE", "sessions/keylog")


@pytest.mark.parametrize("keys", [["Escape; kill-server"], ["-t"], [""], "Enter", [], ["x" * 30],
                                  [";"], ["C-c", 3]])
def test_bad_keys_refused(server: HiveServer, workdir: Path, keys: object) -> None:
    if "victim" not in [s["name"] for s in server.get("sessions")["sessions"]]:
        spawn(server, "victim", ["cat"], cwd=workdir)
    status, body = server.request("POST", "sessions/victim/keys", {"keys": keys})
    assert status == 400 and body["error"] == "bad_request" and body["detail"]
    assert "victim" in server.tmux_sessions()


HOSTILE_NAMES = ["a;b", "z#(touch PWNED)", "../x", "$0", "a" * 65, "", "x y", "é", "a\nb",
                 "#{session_name}", "-t"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_refused(server: HiveServer, workdir: Path, name: str) -> None:
    before = server.tmux_sessions()
    status, body = server.request("POST", "sessions", {"name": name, "agent": "shell",
                                                       "command": ["cat"], "cwd": str(workdir)})
    assert status == 400, body
    assert set(body) >= {"error", "detail"} and "Traceback" not in json.dumps(body)
    assert server.tmux_sessions() == before
    found = subprocess.run(["find", str(server.base), "/tmp", "-maxdepth", "4", "-name", "PWNED"],
                           capture_output=True, text=True).stdout
    assert found.strip() == ""


def test_hostile_cwd_is_not_expanded(server: HiveServer, workdir: Path) -> None:
    odd = workdir / "d#(touch PWNED)#{session_name}"
    odd.mkdir()
    spawn(server, "oddcwd", ["sh", "-c", "pwd; cat"], cwd=odd)
    wait_for(lambda: str(odd) in screen(server, "oddcwd"), what="literal cwd printed")
    assert not (odd / "PWNED").exists() and not (workdir / "PWNED").exists()
    server.request("DELETE", "sessions/oddcwd")


@pytest.mark.parametrize("body,status", [
    ({"name": "ok1", "agent": "nope", "command": ["cat"]}, 400),
    ({"name": "ok1", "agent": "shell"}, 400),
    ({"name": "ok1", "agent": "shell", "command": "cat"}, 400),
    ({"name": "ok1", "agent": "shell", "command": ["cat"], "cwd": "/does/not/exist"}, 400),
    ({"name": "ok1", "agent": "shell", "command": ["cat"], "env": {"A B": "x"}}, 400),
    ({"name": "ok1", "agent": "shell", "command": ["cat"], "env": {"HIVE_LAB_DIR": "x"}}, 400),
    ({"name": "ok1", "agent": "shell", "command": ["cat"], "surprise": 1}, 400),
    ({"name": "ok1", "agent": "shell", "command": ["no-such-program-xyz"]}, 400),
    ([1, 2], 400),
])
def test_bad_spawn_bodies(server: HiveServer, body: object, status: int) -> None:
    got, reply = server.request("POST", "sessions", body)
    assert got == status, reply
    assert reply["error"] and reply["detail"]
    assert "ok1" not in server.tmux_sessions()


def test_missing_cli_names_the_program(server: HiveServer) -> None:
    status, body = server.request("POST", "sessions", {"name": "cx", "agent": "codex"})
    if status == 201:
        pytest.skip("codex happens to be installed here")
    assert status == 400 and "'codex'" in body["detail"] and body["missing_program"] == "codex"


def test_invalid_json_and_oversized_bodies(server: HiveServer) -> None:
    status, body = server.request("POST", "sessions", raw=b"{not json")
    assert status == 400 and body["error"] == "bad_request"
    status, body = server.request("POST", "sessions", raw=b"x" * (3 * 1024 * 1024))
    assert status == 413 and body["error"] == "too_large"


def test_duplicate_name_conflicts(server: HiveServer, workdir: Path) -> None:
    spawn(server, "twin", ["cat"], cwd=workdir)
    status, body = server.request("POST", "sessions", {"name": "twin", "agent": "shell",
                                                       "command": ["cat"]})
    assert status == 409 and body["error"] == "conflict"
    assert server.tmux_sessions().count("twin") == 1
    server.request("DELETE", "sessions/twin")


def test_unknown_session_404(server: HiveServer) -> None:
    for method, path in (("GET", "sessions/ghost"), ("DELETE", "sessions/ghost"),
                         ("GET", "sessions/ghost/screen"), ("POST", "sessions/ghost/keys")):
        status, body = server.request(method, path, {"keys": ["Enter"]} if method == "POST" else None)
        assert status == 404 and body["error"] == "not_found", (method, path, body)


ROUTES = [("GET", "status"), ("GET", "sessions"), ("POST", "sessions"), ("GET", "sessions/x"),
          ("DELETE", "sessions/x"), ("POST", "sessions/x/input"), ("POST", "sessions/x/keys"),
          ("GET", "sessions/x/screen"), ("GET", "events"), ("GET", "transitions"),
          ("GET", "profiles"), ("POST", "hooks")]


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_every_route_needs_auth(server: HiveServer, method: str, path: str, token: str | None) -> None:
    status, body = server.request(method, path, {} if method == "POST" else None, token=token)
    assert status == 403, (method, path, status, body)
    assert isinstance(body, dict) and "Traceback" not in json.dumps(body)


def test_websocket_needs_auth(server: HiveServer) -> None:
    import asyncio

    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    async def attempt(token: str | None) -> int:
        url = server.url.replace("http", "ws") + "hive_lab/api/events/stream"
        headers = {"Authorization": f"token {token}"} if token else {}
        try:
            conn = await websocket_connect(HTTPRequest(url, headers=headers))
            conn.close()
            return 101
        except HTTPClientError as exc:
            return exc.code

    assert asyncio.run(attempt(None)) == 403
    assert asyncio.run(attempt("nope")) == 403
    assert asyncio.run(attempt(server.token)) == 101


def test_kill_ends_setsid_and_double_forked_children(server: HiveServer, workdir: Path) -> None:
    pid1, pid2 = workdir / "setsid.pid", workdir / "daemon.pid"
    script = (f"setsid sh -c 'echo $$ > {pid1}; exec sleep 1000' & "
              f"(setsid sh -c 'echo $$ > {pid2}; exec sleep 1001' &) ; sleep 1002")
    spawn(server, "forker", ["sh", "-c", script], cwd=workdir)
    wait_for(lambda: pid1.exists() and pid2.exists() and pid1.read_text().strip()
             and pid2.read_text().strip(), what="children started")
    children = [int(pid1.read_text()), int(pid2.read_text())]
    assert all(psutil.pid_exists(p) for p in children)
    status, body = server.request("DELETE", "sessions/forker")
    assert status == 200, body
    assert set(children) <= set(body["killed"])

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(p) for p in children), what="detached children ended")


def test_exit_status_three(server: HiveServer, workdir: Path) -> None:
    spawn(server, "three", ["sh", "-c", "exit 3"], cwd=workdir)
    wait_for(lambda: server.get("sessions/three")["exit_status"] == 3, what="exit status 3")
    state = state_of(server, "three")
    assert state["name"] == "exited" and state["exit_status"] == 3 and state["source"] == "pane"
    server.request("DELETE", "sessions/three")


def test_restart_readopts_without_duplicates(server: HiveServer, workdir: Path) -> None:
    spawn(server, "keeper", ["cat"], cwd=workdir, env={"GREETING": "hi"})
    spawn(server, "quitter", ["sh", "-c", "exit 3"], cwd=workdir)
    wait_for(lambda: server.get("sessions/quitter")["exit_status"] == 3, what="quitter exits")
    before = {s["name"]: s for s in server.get("sessions")["sessions"]}
    server.restart()
    server.restart()  # twice: adoption must be idempotent
    after = server.get("sessions")["sessions"]
    names = [s["name"] for s in after]
    assert len(names) == len(set(names))
    assert {"keeper", "quitter"} <= set(names)
    by_name = {s["name"]: s for s in after}
    for name in ("keeper", "quitter"):
        for key in ("agent", "command", "cwd", "created", "pane_id"):
            assert by_name[name][key] == before[name][key], (name, key)
    assert by_name["quitter"]["exit_status"] == 3
    assert by_name["quitter"]["state"]["name"] == "exited"
    assert by_name["keeper"]["state"]["name"] != "exited"
    # the adopted live session still takes input
    status, _ = server.request("POST", "sessions/keeper/input", {"text": "still here"})
    assert status == 200
    wait_for(lambda: "still here" in screen(server, "keeper"), what="input after restart")
    for name in ("keeper", "quitter"):
        server.request("DELETE", f"sessions/{name}")


# -- the CLI, through the same API ------------------------------------------------------------
def test_cli_round_trip(server: HiveServer, workdir: Path) -> None:
    out = server.cli("spawn", "clitest", "--cwd", str(workdir), "--", "cat")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "clitest"
    listing = server.cli("ls")
    assert listing.returncode == 0 and "clitest" in listing.stdout
    assert server.cli("send", "clitest", "from the cli;").returncode == 0
    wait_for(lambda: "from the cli;" in server.cli("screen", "clitest").stdout, what="cli screen")
    piped = server.cli("send", "clitest", "-", input="piped $(id)\n")
    assert piped.returncode == 0
    wait_for(lambda: "piped $(id)" in server.cli("screen", "clitest").stdout, what="stdin text")
    assert server.cli("keys", "clitest", "C-c").returncode == 0
    wait_for(lambda: "exited" in server.cli("ls").stdout, what="cat ended by C-c")
    killed = server.cli("kill", "clitest")
    assert killed.returncode == 0 and json.loads(killed.stdout)["name"] == "clitest"
    assert "clitest" not in server.cli("ls").stdout


def test_cli_discovers_server_and_reports_errors(server: HiveServer) -> None:
    out = server.cli("ls", "--json", discover=True)
    assert out.returncode == 0, out.stderr
    assert isinstance(json.loads(out.stdout), list)
    bad = server.cli("spawn", "bad;name", "--", "cat")
    assert bad.returncode == 1 and "bad_request" in bad.stderr and "Traceback" not in bad.stderr
    missing = server.cli("screen", "nobody")
    assert missing.returncode == 1 and "not_found" in missing.stderr


def test_last_tmux_session_killed_outside_hive_lab_is_exited(tmp_path: Path) -> None:
    """With no session left, tmux 3.3a answers ``list-panes -a`` with "no current target"
    (our config keeps the server up: exit-empty off). That is an empty list, not an error
    that stops every poll: the session whose tmux session went away becomes ``exited``."""
    srv = HiveServer(tmp_path).start()
    try:
        workdir = srv.root / "w"
        workdir.mkdir()
        spawn(srv, "lonely", ["cat"], cwd=workdir)
        assert srv.tmux("kill-session", "-t", "=lonely").returncode == 0
        state = wait_for(lambda: (lambda s: s if s["name"] == "exited" else None)(
            state_of(srv, "lonely")), timeout=20, what="exited after its tmux session went away")
        assert state["source"] == "server" and state["detail"] == "tmux session gone"
        log = (srv.base / f"server-{srv.port}.log").read_text()
        assert "no current target" not in log
    finally:
        srv.stop()
        srv.kill_tmux()


def test_signal_death_reports_no_status_but_says_why(server: HiveServer, workdir: Path) -> None:
    spawn(server, "sigkilled", ["sh", "-c", "kill -9 $$"], cwd=workdir)
    state = wait_for(lambda: (lambda s: s if s["name"] == "exited" else None)(
        state_of(server, "sigkilled")), what="exited after SIGKILL")
    assert state["source"] == "pane" and "exit_status" not in state
    assert state["detail"] == "ended by a signal (no exit status)"
    server.request("DELETE", "sessions/sigkilled")


def test_dead_pane_waits_for_its_exit_status(tmp_path: Path) -> None:
    """tmux marks a pane dead before it has reaped the status. The tick must not record an
    exit without status in that window (this raced in CI: exit_status None, then 0)."""
    from hive_lab.core.bus import Broadcaster
    from hive_lab.core.recorder import Recorder
    from hive_lab.core.sessions import STATUS_GRACE, Session, SessionManager
    from hive_lab.core.status import Tracker
    from hive_lab.core.store import Store
    from hive_lab.core.tmux import PaneInfo, Tmux

    from hive_lab.core.datadir import DataDir
    from hive_lab.core.signals import Signals

    store, tracker, signals = Store(tmp_path / "db"), Tracker(), Signals()
    manager = SessionManager(Tmux("unused-socket"), store,
                             Recorder(store, Broadcaster(), tracker, signals), tracker, {},
                             DataDir(tmp_path), tmp_path, signals)
    session = Session(name="s", agent="shell", command=["x"], cwd="/", created=0, spawn_id="")

    def pane(status: int | None) -> PaneInfo:
        return PaneInfo(session="s", created=0, pane_id="%1", pid=1, dead=True,
                        dead_status=status, activity=0)

    assert manager._apply_pane(session, pane(None), now=100.0) is True
    assert tracker.get("s").name == "starting"              # held: no status yet
    manager._apply_pane(session, pane(0), now=100.2)
    assert tracker.get("s").name == "exited" and tracker.get("s").exit_status == 0
    assert session.exit_status == 0
    assert [t["name"] for t in store.transitions(session="s")] == ["exited"]  # one, with status
    other = Session(name="t", agent="shell", command=["x"], cwd="/", created=0, spawn_id="")
    p = PaneInfo(session="t", created=0, pane_id="%2", pid=1, dead=True, dead_status=None, activity=0)
    manager._apply_pane(other, p, now=200.0)
    manager._apply_pane(other, p, now=200.0 + STATUS_GRACE + 0.1)
    assert tracker.get("t").name == "exited" and tracker.get("t").exit_status is None


def test_tmux_server_started_by_someone_else_first(tmp_path: Path) -> None:
    """B4: a tmux server already running on Hive Lab's socket never reads Hive Lab's ``-f``
    config. Its options must still hold: quick exits stay visible with their exit status."""
    srv = HiveServer(tmp_path)
    pre = subprocess.run(["tmux", "-L", srv.socket_name, "-f", "/dev/null", "new-session", "-d",
                          "-s", "someone-else"], capture_output=True, text=True)
    assert pre.returncode == 0, pre.stderr
    assert srv.tmux("show-options", "-gwv", "remain-on-exit").stdout.strip() == "off"
    srv.start()
    try:
        workdir = srv.root / "w"
        workdir.mkdir()
        for name in ("ex0", "ex3"):
            code = name[-1]
            status, body = srv.request("POST", "sessions", {
                "name": name, "agent": "shell", "command": ["sh", "-c", f"exit {code}"],
                "cwd": str(workdir)})
            assert status == 201, body
        for name, code in (("ex0", 0), ("ex3", 3)):
            wait_for(lambda n=name: srv.get(f"sessions/{n}")["exit_status"] is not None,
                     timeout=30, what=f"{name} exit status")
            state = state_of(srv, name)
            assert (state["name"], state.get("exit_status"), state["source"]) == \
                ("exited", code, "pane"), state
        # the session someone else made is left alone
        assert "someone-else" in srv.tmux_sessions()
    finally:
        srv.stop()
        srv.kill_tmux()
