"""Notifications end to end: real server, real hook client, real apprise, a real HTTP endpoint.

The endpoint is a small HTTP server in the test; Hive Lab reaches it through apprise's own
``json://`` scheme, with a password in the URL that must never show in the server log or in
any API answer. "Nothing more arrived" is shown with a barrier, not a sleep: a later
notification is delivered after any earlier one would have been (one delivery thread, in id
order), so once the barrier's post is in, the count for the first is final.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from support import HiveServer, fire_hook, spawn, wait_for

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
SECRET = "pw-Zq81x7TopSecret"  # the URL's password
PATH_TOKEN = "tok9Xr2Lq8VbW3"  # a webhook token in the URL's path
HEADER_SECRET = "hdr-Kk42Secret"  # a header apprise adds (json://...?+X-Token=...)
# apprise and urllib3 log at DEBUG into the server log, so the test sees what they would print
LOGGING = {"handlers": {"everything": {"class": "logging.StreamHandler", "level": "DEBUG",
                                       "stream": "ext://sys.stderr"}},
           "loggers": {name: {"level": "DEBUG", "handlers": ["everything"], "propagate": False}
                       for name in ("apprise", "urllib3")}}
PROFILES = {"scripted": {"command": [sys.executable, "-u", AGENT], "capabilities": ["implement"]}}


class Endpoint:
    """Receives apprise's JSON posts; answers ``status`` (500 to make delivery fail)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []  # accepted (200) only
        self.refused = 0
        self.status = 200
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    status = outer.status
                    if status == 200:
                        outer.posts.append({"path": self.path, "auth": self.headers.get(
                            "Authorization"), "token": self.headers.get("X-Token"),
                            **json.loads(body)})
                    else:
                        outer.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return (f"json://hive:{SECRET}@127.0.0.1:{self.port}/notify/{PATH_TOKEN}"
                f"?+X-Token={HEADER_SECRET}")

    def about(self, needle: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.posts if needle in p.get("title", "")]

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()


def make_server(base: Path, endpoint: Endpoint, **config: Any) -> HiveServer:
    cfg = {"notify_urls": [endpoint.url], "notify_escalate_after": 0, "profiles": PROFILES,
           "task_interval": 0.3, **config}
    srv = HiveServer(base, extra_config=cfg)
    path = srv.base / "config" / "jupyter_server_config.json"
    written = json.loads(path.read_text())
    written["ServerApp"] = {"logging_config": LOGGING}
    path.write_text(json.dumps(written))
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, endpoint: Endpoint) -> Iterator[HiveServer]:
    srv = make_server(tmp_path_factory.mktemp("notify"), endpoint).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


def ask_permission(server: HiveServer, name: str, command: str, pre: bool = True) -> None:
    """What Claude Code sends before a permission dialog (see shared/samples)."""
    tool_input = {"command": command, "description": "Clean the build"}
    pre_tool = {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": tool_input}
    for payload in (
        *([pre_tool] if pre else []),
        {"hook_event_name": "PermissionRequest", "tool_name": "Bash", "tool_input": tool_input,
         "permission_suggestions": []},
        {"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash",
         "notification_type": "permission_prompt"},
    ):
        done = fire_hook(server, name, {"session_id": f"sid-{name}", "cwd": str(server.root),
                                        **payload})
        assert done.returncode == 0, done.stderr


def hooked(server: HiveServer, name: str) -> None:
    spawn(server, name, None, cwd=server.root, agent="hooked")


def notifications(server: HiveServer, query: str = "") -> list[dict[str, Any]]:
    return server.get("notifications" + query)["notifications"]


def barrier(server: HiveServer, endpoint: Endpoint, name: str) -> None:
    """A later notification, delivered: every earlier one has had its delivery."""
    hooked(server, name)
    ask_permission(server, name, f"echo {name}")
    wait_for(lambda: endpoint.about(name), timeout=30, what=f"barrier {name} delivered")


# -- one per transition, with the question ------------------------------------------------------
def test_a_permission_request_is_notified_once_with_tool_and_command(
        server: HiveServer, endpoint: Endpoint) -> None:
    hooked(server, "perm1")
    ask_permission(server, "perm1", "rm -rf build/")
    posts = wait_for(lambda: endpoint.about("perm1"), timeout=30, what="a post for perm1")
    assert "permission" in posts[0]["title"] and "Bash" in posts[0]["title"]
    assert "rm -rf build/" in posts[0]["message"] and "Clean the build" in posts[0]["message"]
    assert posts[0]["path"] == f"/notify/{PATH_TOKEN}"
    # the same state again (the dialog's hooks once more): no new transition, no notification
    ask_permission(server, "perm1", "rm -rf build/", pre=False)
    barrier(server, endpoint, "perm1-barrier")
    assert len(endpoint.about("perm1 ")) == 1
    mine = [n for n in notifications(server) if n["session"] == "perm1"]
    assert len(mine) == 1 and mine[0]["kind"] == "permission" and mine[0]["read"] is None
    assert "rm -rf build/" in mine[0]["body"]
    wait_for(lambda: not [n for n in notifications(server) if n["session"] == "perm1"][0]["pending"],
             what="delivery recorded")
    delivered = [n for n in notifications(server) if n["session"] == "perm1"][0]["delivered"]
    assert "stream" in delivered and any(d.startswith("json://") for d in delivered)
    # it is on the event stream too, as a NotificationRaised event of agent "hive"
    events = server.get("events?session=perm1&event=NotificationRaised&limit=100")["events"]
    ours = [e for e in events if e["agent"] == "hive"]
    assert len(ours) == 1 and "rm -rf build/" in ours[0]["payload"]["notification"]["body"]


def test_a_new_request_after_an_answer_is_a_new_notification(
        server: HiveServer, endpoint: Endpoint) -> None:
    hooked(server, "perm2")
    ask_permission(server, "perm2", "make clean")
    wait_for(lambda: endpoint.about("perm2"), timeout=30, what="first post for perm2")
    assert fire_hook(server, "perm2", {"hook_event_name": "PostToolUse", "tool_name": "Bash",
                                       "tool_input": {"command": "make clean"}}).returncode == 0
    ask_permission(server, "perm2", "make install")
    posts = wait_for(lambda: len(endpoint.about("perm2")) >= 2 and endpoint.about("perm2"),
                     timeout=30, what="second post for perm2")
    assert "make install" in posts[1]["message"]


def test_a_question_comes_with_its_numbered_choices(server: HiveServer, endpoint: Endpoint) -> None:
    hooked(server, "asker")
    question = {"questions": [{"question": "Which database should I use?", "header": "DB",
                               "multiSelect": False,
                               "options": [{"label": "SQLite", "description": "one file"},
                                           {"label": "PostgreSQL", "description": "a server"}]}]}
    for event in ("PreToolUse", "PermissionRequest"):
        assert fire_hook(server, "asker", {"hook_event_name": event, "session_id": "sid-asker",
                                           "tool_name": "AskUserQuestion",
                                           "tool_input": question}).returncode == 0
    post = wait_for(lambda: endpoint.about("asker"), timeout=30, what="the question")[0]
    assert "asks a question" in post["title"]
    assert "Which database should I use?" in post["message"]
    assert "1. SQLite: one file" in post["message"] and "2. PostgreSQL: a server" in post["message"]
    assert [n["kind"] for n in notifications(server) if n["session"] == "asker"] == ["question"]


def test_hostile_text_is_cleaned(server: HiveServer, endpoint: Endpoint) -> None:
    hooked(server, "hostile")
    ask_permission(server, "hostile", "echo \x1b[31mred\x1b[0m \u202eevil\x07")
    post = wait_for(lambda: endpoint.about("hostile"), timeout=30, what="the hostile post")[0]
    assert "\x1b" not in post["message"] and "\u202e" not in post["message"]
    assert "\x07" not in post["message"] and "echo red evil" in post["message"]


def test_a_failing_task_notifies_once(server: HiveServer, endpoint: Endpoint) -> None:
    repo = server.root / "repo-fail"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e",
                        *args], check=True, capture_output=True)
    status, _ = server.request("POST", "tasks", {"id": "crashy", "prompt": "@exit 3",
                                                 "repo": str(repo), "agent": "scripted",
                                                 "max_attempts": 1})
    assert status == 201
    post = wait_for(lambda: endpoint.about("Task crashy"), timeout=60, what="task failure post")[0]
    assert "failed" in post["title"] and "status 3" in post["message"]
    barrier(server, endpoint, "task-barrier")
    assert len(endpoint.about("Task crashy")) == 1
    assert [n["kind"] for n in notifications(server) if n["task"] == "crashy"] == ["task_failed"]


# -- the API -------------------------------------------------------------------------------------
def test_read_unread_first_and_bad_input(server: HiveServer, endpoint: Endpoint) -> None:
    hooked(server, "reader")
    ask_permission(server, "reader", "ls -la /")
    first = wait_for(lambda: [n for n in notifications(server) if n["session"] == "reader"],
                     what="reader's notification")[0]
    status, body = server.request("POST", f"notifications/{first['id']}/read")
    assert status == 200 and body["read"] is not None
    again = server.request("POST", f"notifications/{first['id']}/read")[1]
    assert again["read"] == body["read"]  # idempotent: the first reading is kept
    listing = notifications(server)
    reads = [n["read"] is not None for n in listing]
    assert reads == sorted(reads), "unread first"
    assert all(n["read"] is None for n in notifications(server, "?unread=1"))
    assert first["id"] not in {n["id"] for n in notifications(server, "?unread=1")}
    assert len(notifications(server, "?limit=1")) == 1
    before = notifications(server)
    for method, path, code in (("POST", "notifications/abc/read", 400),
                               ("POST", "notifications/999999/read", 404),
                               ("GET", "notifications?limit=0", 400),
                               ("GET", "notifications?limit=x", 400)):
        status, body = server.request(method, path)
        assert status == code and "error" in body, (path, status, body)
    assert notifications(server) == before  # nothing changed


def test_the_python_api_and_the_frame_show_the_same_notifications(server: HiveServer,
                                                                 endpoint: Endpoint) -> None:
    from hive_lab import frames
    from hive_lab.client import HiveClient

    hooked(server, "framed")
    ask_permission(server, "framed", "git status")
    wait_for(lambda: any(n["session"] == "framed" for n in notifications(server)),
             what="framed's notification")
    client = HiveClient(server.url, server.token)
    rows = client.notifications(limit=1000)
    frame = frames.notifications(client)
    assert list(frame["id"]) == [n["id"] for n in rows]
    assert str(frame["kind"].dtype) == "category" and str(frame["created"].dtype).startswith(
        "datetime64[ns, UTC]")
    mine = frame[frame["session"] == "framed"].iloc[0]
    assert mine["kind"] == "permission" and "git status" in mine["body"]
    read = client.read_notification(int(mine["id"]))
    assert read["read"] is not None
    assert int(mine["id"]) not in {n["id"] for n in client.notifications(unread=True)}


def test_the_secret_is_never_logged_nor_returned(server: HiveServer, endpoint: Endpoint) -> None:
    # a failing delivery makes apprise (and us) log about the endpoint
    with endpoint.lock:
        endpoint.status = 500
    try:
        hooked(server, "secretive")
        ask_permission(server, "secretive", "cat ~/.netrc")
        wait_for(lambda: endpoint.refused and [n for n in notifications(server)
                                               if n["session"] == "secretive" and n["attempts"]],
                 timeout=30, what="a failed delivery")
    finally:
        with endpoint.lock:
            endpoint.status = 200
    wait_for(lambda: endpoint.about("secretive"), timeout=60, what="the retry delivered")
    channels = server.get("notifications/channels")
    assert channels["channels"][0]["label"] == (
        f"json://hive:****@127.0.0.1:{endpoint.port}/notify/****")
    answers = [json.dumps(server.get(p)) for p in (
        "notifications/channels", "notifications", "events?limit=10000", "status")]
    answers += [json.dumps(server.get("events?event=NotificationRaised&limit=10000"))]
    for text in answers:
        for secret in (SECRET, PATH_TOKEN, HEADER_SECRET):
            assert secret not in text
    logs = "".join(p.read_text(errors="replace") for p in server.base.glob("server-*.log"))
    assert "not delivered" in logs  # our own warning was written (redacted)
    assert "JSON POST URL" in logs and "Failed to send" in logs  # apprise's own, at DEBUG
    assert f"JSON POST URL: http://127.0.0.1:{endpoint.port}/****/****" in logs  # scrubbed
    assert "Loaded JSON URL" in logs and '"POST /****/**** HTTP/1.1" 500' in logs  # urllib3's
    for secret in (SECRET, PATH_TOKEN, HEADER_SECRET):
        assert secret not in logs, secret
    # the endpoint did get the credentials: the secrets were used, just never shown
    post = endpoint.about("secretive")[0]
    assert post["auth"].startswith("Basic ") and post["token"] == HEADER_SECRET


# -- escalation and restarts (each on its own server) -------------------------------------------
def test_escalation_once_then_restart_sends_nothing_twice(
        tmp_path: Path, endpoint: Endpoint) -> None:
    srv = make_server(tmp_path, endpoint, notify_escalate_after=0.04).start()  # 2.4 s
    try:
        hooked(srv, "esc1")
        ask_permission(srv, "esc1", "git push --force")
        posts = wait_for(lambda: len(endpoint.about("esc1")) >= 2 and endpoint.about("esc1"),
                         timeout=60, what="the escalation")
        assert posts[1]["title"].startswith("Still waiting") and "git push --force" in posts[1]["message"]
        assert notifications(srv)[0]["escalated"] is not None
        # answered in time: no escalation
        hooked(srv, "esc2")
        ask_permission(srv, "esc2", "true")
        wait_for(lambda: endpoint.about("esc2"), timeout=30, what="esc2 first post")
        assert fire_hook(srv, "esc2", {"hook_event_name": "PostToolUse", "tool_name": "Bash",
                                       "tool_input": {"command": "true"}}).returncode == 0
        wait_for(lambda: [n for n in notifications(srv) if n["session"] == "esc2"][0]["resolved"],
                 timeout=30, what="esc2 seen as answered")
        srv.stop(signal.SIGKILL)
        srv.start()
        barrier(srv, endpoint, "esc-barrier")
        assert len(endpoint.about("esc1 ")) == 2 and len(endpoint.about("esc2")) == 1
    finally:
        srv.stop()
        srv.kill_tmux()


def test_restart_before_delivery_delivers_once(tmp_path: Path, endpoint: Endpoint) -> None:
    srv = make_server(tmp_path, endpoint).start()
    try:
        with endpoint.lock:
            endpoint.status = 500
        hooked(srv, "crash1")
        ask_permission(srv, "crash1", "rm -rf /tmp/x")
        wait_for(lambda: [n for n in notifications(srv) if n["session"] == "crash1"
                          and n["attempts"] >= 1], timeout=30, what="a failed attempt")
        srv.stop(signal.SIGKILL)  # before delivery finished
        with endpoint.lock:
            endpoint.status = 200
        srv.start()
        wait_for(lambda: endpoint.about("crash1"), timeout=60, what="delivered after restart")
        srv.stop(signal.SIGKILL)  # after delivery
        srv.start()
        barrier(srv, endpoint, "crash-barrier")
        assert len(endpoint.about("crash1")) == 1
        assert [n["kind"] for n in notifications(srv) if n["session"] == "crash1"] == ["permission"]
    finally:
        with endpoint.lock:
            endpoint.status = 200
        srv.stop()
        srv.kill_tmux()


def test_states_present_at_start_are_not_notified(tmp_path: Path, endpoint: Endpoint) -> None:
    first = make_server(tmp_path, endpoint, notify_on=["task_failed"]).start()
    try:
        hooked(first, "already")
        ask_permission(first, "already", "shutdown now")
        wait_for(lambda: first.get("sessions/already")["state"]["name"] == "waiting",
                 what="already waiting")
        assert notifications(first) == []
    finally:
        first.stop()
    # the same data and tmux, now with every kind on: the waiting found at start is old news
    again = HiveServer(tmp_path, socket_name=first.socket_name,
                       extra_config={"notify_urls": [endpoint.url], "notify_escalate_after": 0.02})
    again.start()
    try:
        assert again.get("sessions/already")["state"]["name"] == "waiting"
        barrier(again, endpoint, "start-barrier")
        assert endpoint.about("already") == []
        assert [n["session"] for n in notifications(again)] == ["start-barrier"]
    finally:
        again.stop()
        again.kill_tmux()
