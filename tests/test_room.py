"""The control room's live model and views against a real server, in this process.

ipywidgets needs no kernel here; the live tasks run on an asyncio loop, as a kernel runs them.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable

import pytest

from support import HiveServer, fire_hook, spawn
from hive_lab.client import HiveClient
from hive_lab.widgets.live import LiveState


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("room")).start()
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
        await until(lambda: (live.data.session("live-a") or {}).get("state", {}).get("name")
                    == "waiting", "the waiting state in live.data")
        assert live.hook_payloads("live-a")[0]["tool_input"] == {"command": "rm -rf /tmp/x"}
        assert any("sessions" in parts for parts in seen) and any("events" in p for p in seen)
        # every REST call after the seed ran in a worker thread, never on the loop
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
