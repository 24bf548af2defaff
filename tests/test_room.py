"""The control room's live model and views against a real server, in this process.

ipywidgets needs no kernel here; the live tasks run on an asyncio loop, as a kernel runs them.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable

import pytest

from support import HiveServer, fire_hook, spawn, state_of, wait_for
from hive_lab.client import HiveClient
from hive_lab.widgets import needs
from hive_lab.widgets.live import LiveState
from hive_lab.widgets.room import ControlRoom
from hive_lab.widgets.views import split_diff

ASKER = {"command": ["cat"], "hooks": "claude",
         "cues": {"permission": [r"Proceed\? \(y/n\)"]},
         "answers": {"approve": ["y", "Enter"], "deny": ["n", "Enter"]}}
ASK_SCRIPT = 'printf "Proceed? (y/n) "; read a; echo "answer:[$a]"; exec cat'
HOSTILE = '<img src=x onerror="window.__hivePwned=1">'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("room"),
                     extra_config={"profiles": {"asker": ASKER}}).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


class ThreadNotingClient(HiveClient):
    """The real client; notes which thread made each REST call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str, int]] = []

    def request(self, method: str, path: str, body: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        self.calls.append((method, path, threading.get_ident()))
        return super().request(method, path, body, params)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 90))


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_live_state_follows_the_stream_off_the_loop_and_keeps_hooks(server: HiveServer) -> None:
    spawn(server, "live-a", None, cwd=server.root, agent="hooked")
    client = ThreadNotingClient(server.url, server.token)

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        live = LiveState(client)
        seen: list[set[str]] = []
        live.on_change(lambda parts: seen.append(parts))
        assert [s["name"] for s in live.data.sessions] == ["live-a"]
        assert set(live.data.budgets) >= {"budgets"} and isinstance(live.data.tasks, list)
        client.calls.clear()
        payload = {"hook_event_name": "PermissionRequest", "session_id": "sid-live",
                   "tool_name": "Bash", "tool_input": {"command": "rm -rf /tmp/x"}}
        await asyncio.to_thread(fire_hook, server, "live-a", payload)
        # (data changes before the views are told, and a round may still be fetching)
        await until(lambda: (live.data.session("live-a") or {}).get("state", {}).get("name")
                    == "waiting" and any("sessions" in p for p in seen), "the views told")
        assert live.hook_payloads("live-a")[0]["tool_input"] == {"command": "rm -rf /tmp/x"}
        assert any("sessions" in parts for parts in seen) and any("events" in p for p in seen), (
            seen, live.paints, live.errors, [t.exception() if t.done() else "running" for t in live._tasks])
        # every REST call after the seed ran in a worker thread, never on the loop (the hook's
        # StateChanged carried the state, so a round may have needed no fetch: ask for one)
        fetches = live.fetches
        live.mark_stale("sessions", "tasks")
        await until(lambda: live.fetches > fetches, "a fetch after mark_stale")
        assert client.calls and all(t != loop_thread for _, _, t in client.calls)
        await until(lambda: live.drawn_id >= live.data.events[-1]["id"], "drawn_id to catch up")
        live.stop()

    run(scenario)
    server.request("DELETE", "sessions/live-a")


def test_a_raising_view_does_not_stop_the_others(server: HiveServer) -> None:
    live = LiveState(HiveClient(server.url, server.token), start=False)
    got: list[set[str]] = []

    def broken(parts: set[str]) -> None:
        raise RuntimeError("view bug")

    live.on_change(broken)
    live.on_change(got.append)
    live.refresh({"sessions"})
    assert got == [{"sessions"}] and live.errors == 1


def ask(server: HiveServer, name: str, tool: str = "Bash", tool_input: Any = None) -> None:
    """A session whose screen shows a permission dialog and whose hooks say so."""
    spawn(server, name, ["sh", "-c", ASK_SCRIPT], cwd=server.root, agent="asker")
    wait_for(lambda: "Proceed?" in server.get(f"sessions/{name}/screen")["text"],
             what="the dialog on screen")
    payload = {"hook_event_name": "PermissionRequest", "session_id": f"sid-{name}",
               "tool_name": tool, "tool_input": tool_input or {"command": "make deploy"}}
    assert fire_hook(server, name, payload).returncode == 0
    wait_for(lambda: state_of(server, name).get("reason") == "permission", what="waiting")


def test_needs_card_says_what_is_asked_and_approve_is_one_call(server: HiveServer) -> None:
    ask(server, "ask-ok", "Write", {"file_path": "/tmp/x.py", "content": f"print(1)\n{HOSTILE}"})
    room = ControlRoom(HiveClient(server.url, server.token), start=False)
    card = next(c for c in room.needs.cards if c["session"] == "ask-ok")
    assert card["kind"] == "permission" and card["answers"] == ["approve", "deny"]
    assert card["path"] == "/tmp/x.py" and HOSTILE in card["content"]  # data, escaped by the view
    assert card["title"] == "ask-ok asks permission: Write"
    outcome = room.answer(card["key"], "approve")
    assert outcome.ok, outcome.message
    wait_for(lambda: "answer:[y]" in server.get("sessions/ask-ok/screen")["text"], what="y typed")
    # the agent goes on (its tool ran): the same card again is refused, nothing is typed
    assert fire_hook(server, "ask-ok", {"hook_event_name": "PostToolUse", "session_id": "sid-ask-ok",
                                        "tool_name": "Write"}).returncode == 0
    wait_for(lambda: state_of(server, "ask-ok")["name"] != "waiting", what="working again")
    again = room.answer(card["key"], "approve")
    assert not again.ok and "no longer open" in again.message
    server.request("DELETE", "sessions/ask-ok")


def test_a_stale_card_is_refused_when_a_new_question_replaced_it(server: HiveServer) -> None:
    ask(server, "ask-stale")
    live = LiveState(HiveClient(server.url, server.token), start=False)
    old = next(c for c in needs.cards(live.data, live.hook_payloads) if c["session"] == "ask-stale")
    # the agent moves on and asks again: same session, same reason, a new question
    for payload in ({"hook_event_name": "PostToolUse", "tool_name": "Bash"},
                    {"hook_event_name": "PermissionRequest", "tool_name": "Bash",
                     "tool_input": {"command": "rm -rf build"}}):
        assert fire_hook(server, "ask-stale", {"session_id": "sid-ask-stale", **payload}).returncode == 0
    wait_for(lambda: state_of(server, "ask-stale")["since"] != old["since"]
             and state_of(server, "ask-stale").get("reason") == "permission", what="the new question")
    outcome = needs.answer(live.client, old, "deny")
    assert not outcome.ok and "no longer open" in outcome.message
    assert "answer:" not in server.get("sessions/ask-stale/screen")["text"]  # nothing typed
    server.request("DELETE", "sessions/ask-stale")


def test_question_card_has_numbered_choices(server: HiveServer) -> None:
    spawn(server, "asks-q", None, cwd=server.root, agent="hooked")
    payload = {"hook_event_name": "PreToolUse", "session_id": "sid-q", "tool_name": "AskUserQuestion",
               "tool_input": {"questions": [{"question": f"Which DB? {HOSTILE}", "options": [
                   {"label": "SQLite", "description": "one file"}, {"label": "Postgres"}]}]}}
    assert fire_hook(server, "asks-q", payload).returncode == 0
    assert fire_hook(server, "asks-q", {"hook_event_name": "Notification", "session_id": "sid-q",
                                        "notification_type": "elicitation_dialog",
                                        "message": "Claude has a question"}).returncode == 0
    wait_for(lambda: state_of(server, "asks-q").get("name") == "waiting", what="waiting")
    live = LiveState(HiveClient(server.url, server.token), start=False)
    card = next(c for c in needs.cards(live.data, live.hook_payloads) if c["session"] == "asks-q")
    assert card["kind"] == "question" and card["question"] == f"Which DB? {HOSTILE}"
    assert [(c["n"], c["label"]) for c in card["choices"]] == [(1, "SQLite"), (2, "Postgres")]
    assert card["answers"] == ["choice", "reply"]
    bad = needs.answer(live.client, card, "choice", 7)
    assert not bad.ok and "one of [1, 2]" in bad.message
    assert needs.answer(live.client, card, "choice", 2).ok
    wait_for(lambda: "2" in server.get("sessions/asks-q/screen")["text"], what="2 typed to cat")
    server.request("DELETE", "sessions/asks-q")


def test_raise_call_keeps_the_other_limits_of_the_scope() -> None:
    report = {"budgets": [
        {"id": "fleet:*:day", "scope": "fleet", "key": "*", "window": "day", "dollars": 5.0,
         "tokens": None, "minutes": None, "warn_at": 0.8, "ceiling": 1.5},
        {"id": "fleet:*:5h", "scope": "fleet", "key": "*", "window": "5h", "dollars": None,
         "tokens": 1000, "minutes": None, "warn_at": 0.8, "ceiling": 1.5},
        {"id": "task:t1:none", "scope": "task", "key": "t1", "window": "none", "dollars": 1.0,
         "warn_at": 0.8, "ceiling": 1.5}]}
    how, body = needs.raise_call(report, "fleet:*:day", {"dollars": 10.0})
    assert how == "budgets" and body == {"fleet": [
        {"window": "day", "dollars": 10.0, "warn_at": 0.8, "ceiling": 1.5},
        {"window": "5h", "tokens": 1000, "warn_at": 0.8, "ceiling": 1.5}]}
    assert needs.raise_call(report, "task:t1:none", {"dollars": 3}) == ("task", ("t1", {"dollars": 3}))
    for bad in ({"dollars": -1}, {"dollars": float("nan")}, {"euros": 3}, {"dollars": True}):
        with pytest.raises(ValueError):
            needs.raise_call(report, "fleet:*:day", bad)
    with pytest.raises(ValueError):
        needs.raise_call(report, "profile:x:day", {"dollars": 1})


def test_screen_with_ansi_keeps_colours(server: HiveServer) -> None:
    spawn(server, "colours", ["sh", "-c", r"printf '\033[31mred\033[0m plain\n'; exec cat"],
          cwd=server.root)
    wait_for(lambda: "red plain" in server.get("sessions/colours/screen")["text"], what="printed")
    client = HiveClient(server.url, server.token)
    assert "\x1b[31mred" in client.screen("colours", ansi=True)
    assert "\x1b" not in client.screen("colours")
    server.request("DELETE", "sessions/colours")


def test_split_diff_per_file() -> None:
    text = ("diff --git a/a.py b/a.py\nindex 1..2 100644\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n"
            "-x = 1\n+x = 2\ndiff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n"
            "+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n")
    files = split_diff(text)
    assert [(f["path"], f["added"], f["removed"]) for f in files] == [("a.py", 1, 1), ("new.txt", 1, 0)]
    assert files[0]["lines"] == ["@@ -1 +1 @@", "-x = 1", "+x = 2"]


def test_a_state_change_is_applied_from_the_event_without_a_fetch(server: HiveServer) -> None:
    """At 20 events/s a GET sessions per StateChanged kept the room ~100 ms behind."""
    spawn(server, "live-b", None, cwd=server.root, agent="hooked")
    client = ThreadNotingClient(server.url, server.token)

    async def scenario() -> None:
        live = LiveState(client)
        client.calls.clear()
        payload = {"hook_event_name": "UserPromptSubmit", "session_id": "sid-b", "prompt": "go"}
        await asyncio.to_thread(fire_hook, server, "live-b", payload)
        await until(lambda: (live.data.session("live-b") or {}).get("state", {}).get("name")
                    == "working", "working in live.data")
        assert ("GET", "sessions") not in [(m, p) for m, p, _ in client.calls]
        # an exit brings its status with the session record: that one is fetched
        await asyncio.to_thread(server.request, "DELETE", "sessions/live-b")
        await until(lambda: live.data.session("live-b") is None, "the session gone")
        assert ("GET", "sessions") in [(m, p) for m, p, _ in client.calls]
        live.stop()

    run(scenario)


def test_clean_up_finished_worktrees_removes_merged_and_keeps_unmerged(server: HiveServer) -> None:
    import subprocess
    from pathlib import Path

    repo = server.root / "cleanup-repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e"]
    (repo / "a.txt").write_text("a\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    paths = {}
    for name in ("done-one", "open-one"):
        paths[name] = spawn(server, name, ["cat"], cwd=repo)["worktree"]["path"]
        wt = ["git", "-C", paths[name], "-c", "user.name=T", "-c", "user.email=t@e"]
        (Path(paths[name]) / f"{name}.txt").write_text("work\n")
        subprocess.run([*wt, "add", "-A"], check=True, capture_output=True)
        subprocess.run([*wt, "commit", "-qm", name], check=True, capture_output=True)
    subprocess.run([*git, "merge", "-q", "hive/done-one"], check=True, capture_output=True)
    for name in paths:
        server.request("DELETE", f"sessions/{name}")  # worktrees with commits are kept
    room = ControlRoom(HiveClient(server.url, server.token), start=False)
    asyncio.run(room._bulk("cleanup", []))
    assert not Path(paths["done-one"]).exists() and Path(paths["open-one"]).exists()
    assert "cleaned up 1 finished worktree(s) of 2" in room.message.value
    assert "kept open-one" in room.message.value


def test_a_fetch_overtaken_by_a_refresh_does_not_undo_it(server: HiveServer) -> None:
    """The painter's fetch, begun before a button's blocking refresh, lands after it: the
    older answer must not put back a fleet without the session just started."""
    from test_panel import GatedClient

    client = GatedClient(server.url, server.token)

    async def scenario() -> None:
        live = LiveState(client)
        client.armed = True
        live.mark_stale("sessions")
        await asyncio.to_thread(client.holding.wait, 30)  # the old answer is in hand
        fetches = live.fetches
        await asyncio.to_thread(spawn, server, "overtaken-r", ["cat"], server.root)
        live.refresh({"sessions"})
        assert live.data.session("overtaken-r") is not None
        client.release.set()
        await until(lambda: live.fetches > fetches, "the held fetch to land")
        assert live.data.session("overtaken-r") is not None
        live.stop()

    run(scenario)
    server.request("DELETE", "sessions/overtaken-r")
