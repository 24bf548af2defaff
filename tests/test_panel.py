"""The HiveOS panel against a real server, in this process (ipywidgets needs no kernel).

Live behaviour runs the panel's tasks on an asyncio loop here, as a kernel would run them.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from support import HiveServer, fire_hook, spawn, wait_for
from hive_lab.client import HiveClient
from hive_lab.widgets import SessionsPanel


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("panel"), extra_config={
        "profiles": {"ghost": {"command": ["no-such-agent-cli-hive"]}}}).start()
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


def names(server: HiveServer) -> list[str]:
    return [s["name"] for s in server.get("sessions")["sessions"]]


def test_live_panel_never_calls_the_server_from_the_loop_and_coalesces(server: HiveServer) -> None:
    """Issue 9 B3: each event ran four blocking REST calls on the kernel's loop."""
    spawn(server, "busy", None, cwd=server.root, agent="hooked")
    flips = 40
    client = ThreadNotingClient(server.url, server.token)

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        panel = SessionsPanel(client)
        assert panel.running
        built = len(client.calls)
        start = server.get("status")["last_event_id"]

        def fire_all() -> None:
            for i in range(flips):
                event = "UserPromptSubmit" if i % 2 == 0 else "Stop"
                assert fire_hook(server, "busy", {"hook_event_name": event,
                                                  "session_id": "s"}).returncode == 0

        await asyncio.to_thread(fire_all)
        last = server.get("status")["last_event_id"]
        assert last - start >= 2 * flips  # a hook event and a StateChanged each
        await until(lambda: panel.drawn_id >= last, "the panel to draw every event")
        row = next(s for s in panel.sessions if s["name"] == "busy")
        assert row["state"]["name"] == "idle"  # the last flip was a Stop
        assert "busy" in panel.table.value and "idle" in panel.table.value
        live_calls = client.calls[built:]
        assert live_calls, "the live panel fetched something"
        on_loop = [(m, p) for m, p, thread in live_calls if thread == loop_thread]
        assert on_loop == [], f"REST calls made on the event loop: {on_loop}"
        # redraws are coalesced: far fewer fetches than the events that asked for one
        assert panel.fetches < flips / 2, (panel.fetches, flips)
        panel.stop_live()

    run(scenario)
    server.request("DELETE", "sessions/busy")


def test_screen_box_shows_only_the_selected_sessions_screen(server: HiveServer,
                                                           tmp_path: Path) -> None:
    spawn(server, "scr-a", ["cat"], cwd=server.root)
    spawn(server, "scr-b", ["cat"], cwd=server.root)
    server.request("POST", "sessions/scr-a/input", {"text": "only-in-a"})
    wait_for(lambda: "only-in-a" in server.get("sessions/scr-a/screen")["text"], what="a's text")
    panel = SessionsPanel(HiveClient(server.url, server.token), live=False)
    panel.target.value = "scr-a"
    panel.show_screen()
    assert "only-in-a" in panel.screen.value and "scr-a" in panel.screen.value
    # b goes away behind the panel's back; asking for its screen fails...
    server.request("DELETE", "sessions/scr-b")
    panel.target.value = "scr-b"
    panel.show_screen()
    # ...and the box must not keep showing a's screen under b's name
    assert "only-in-a" not in panel.screen.value
    assert "scr-b" in panel.screen.value and "failed" in panel.message.value
    # choosing another session clears a screen shown for the previous one
    panel.target.value = "scr-a"
    panel.show_screen()
    panel.refresh()
    spawn(server, "scr-c", ["cat"], cwd=server.root)
    panel.refresh()
    panel.target.value = "scr-c"
    assert "only-in-a" not in panel.screen.value
    for name in ("scr-a", "scr-c"):
        server.request("DELETE", f"sessions/{name}")


def test_stop_asks_first_and_leaves_a_trace(server: HiveServer) -> None:
    spawn(server, "to-stop", ["cat"], cwd=server.root)
    panel = SessionsPanel(HiveClient(server.url, server.token), live=False)
    panel.target.value = "to-stop"
    panel.stop_button.click()
    assert "to-stop" in names(server), "Stop must ask before stopping"
    assert panel.confirm_box.layout.display != "none" and "to-stop" in panel.confirm_text.value
    panel.cancel_button.click()
    assert "to-stop" in names(server) and panel.confirm_box.layout.display == "none"
    panel.stop_button.click()
    panel.confirm_button.click()
    assert "to-stop" not in names(server)
    assert "to-stop" not in panel.table.value
    assert "to-stop" in panel.stopped_box.value and "stopped at" in panel.stopped_box.value
    # a session removed elsewhere leaves a trace too
    spawn(server, "gone-elsewhere", ["cat"], cwd=server.root)
    panel.refresh()
    server.request("DELETE", "sessions/gone-elsewhere")
    panel.refresh()
    assert "gone-elsewhere" in panel.stopped_box.value


def test_start_form_speaks_plainly_and_passes_environment(server: HiveServer) -> None:
    panel = SessionsPanel(HiveClient(server.url, server.token), live=False)
    before = names(server)

    def start(**fields: str) -> str:
        for key in ("name", "command", "cwd", "prompt", "env"):
            getattr(panel, f"new_{key}").value = fields.get(key, "")
        panel.new_agent.value = fields.get("agent", "shell")
        panel.start_session()
        return panel.message.value

    message = start(name="no-cmd")
    assert "Command:" in message and "argv" not in message and "list of" not in message
    assert "Name:" in start(name="-bad name", command="cat")
    assert "not installed" in start(name="missing-prog", command="no-such-program-hive -x")
    assert "Environment, line 1" in start(name="bad-env", command="cat", env="not a pair")
    assert "Cwd:" in start(name="bad-cwd", command="cat", cwd="/no/such/dir/hive")
    assert names(server) == before, "a refused form starts nothing"
    # agents whose CLI is missing say so in the menu, and are refused in words
    labels = dict(panel.new_agent.options)
    assert labels["ghost (not installed)"] == "ghost"
    assert "shell" in labels and "hooked" in labels
    assert "Agent: ghost is not installed" in start(name="ghosted", agent="ghost")
    # environment variables reach the agent
    spawned = start(name="with-env", command="sh -c 'echo \"got:$HIVE_T_A:$HIVE_T_B\"; exec cat'",
                    env="HIVE_T_A=one two\n\n# a comment\nHIVE_T_B=x=y")
    assert "done" in spawned, spawned
    wait_for(lambda: "got:one two:x=y" in server.get("sessions/with-env/screen")["text"],
             what="the environment given in the form")
    server.request("DELETE", "sessions/with-env")


class GatedClient(HiveClient):
    """The real client, whose next ``sessions()`` from a worker thread holds its (by then old)
    answer until the test lets it go: the live painter's fetch, overtaken by a button's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.armed = False
        self.holding = threading.Event()
        self.release = threading.Event()

    def sessions(self) -> list[dict[str, Any]]:
        answer = super().sessions()
        if self.armed and threading.current_thread() is not threading.main_thread():
            self.armed = False
            self.holding.set()
            self.release.wait(30)
        return answer


def test_a_fetch_overtaken_by_the_start_buttons_does_not_undo_it(server: HiveServer) -> None:
    """CI: a session started from the panel lost its place as the talk target: the painter's
    fetch, begun before the start, landed after the start's refresh and dropped the session."""
    client = GatedClient(server.url, server.token)

    async def scenario() -> None:
        panel = SessionsPanel(client)
        client.armed = True
        panel._stale.add("sessions")
        assert panel._wake is not None
        panel._wake.set()
        await asyncio.to_thread(client.holding.wait, 30)  # the old answer is in hand
        fetches = panel.fetches
        panel.new_name.value, panel.new_command.value = "overtaken", "cat"
        assert panel.start_session() is not None
        assert panel.target.value == "overtaken"
        client.release.set()
        await until(lambda: panel.fetches > fetches, "the held fetch to land")
        await asyncio.sleep(0.2)
        assert "overtaken" in [s["name"] for s in panel.sessions]
        assert panel.target.value == "overtaken"
        assert not any(s["name"] == "overtaken" for s in panel.stopped)  # not "stopped" either
        panel.stop_live()

    run(scenario)
    server.request("DELETE", "sessions/overtaken")
