"""Shared fixtures: a real Jupyter server (subprocess) with Hive Lab on a private tmux socket."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server_process import BIN, HiveServer, free_port, wait_for  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples"
if not SAMPLES.exists():  # CI clones next to shared/ too; keep a fallback for odd layouts
    SAMPLES = Path(os.environ.get("HIVE_LAB_SAMPLES", "/work/shared/samples"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("hive")).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def kernel(server: HiveServer):
    """A kernel started by the server itself (as JupyterLab does), driven over its WebSocket."""
    from kernel_exec import RemoteKernel

    asyncio.set_event_loop(asyncio.new_event_loop())
    k = RemoteKernel(server)
    yield k
    k.close()


@pytest.fixture
def workdir(server: HiveServer, tmp_path: Path) -> Path:
    """A scratch directory under the server's root, unique per test."""
    d = server.root / f"w-{secrets.token_hex(4)}"
    d.mkdir()
    return d


def spawn(server: HiveServer, name: str, command: list[str], cwd: Path | None = None,
          **extra: Any) -> dict[str, Any]:
    body = {"name": name, "agent": extra.pop("agent", "shell"), "command": command, **extra}
    if cwd is not None:
        body["cwd"] = str(cwd)
    status, session = server.request("POST", "sessions", body)
    assert status == 201, session
    return session


def fire_hook(server: HiveServer, session: str | None, payload: bytes | dict[str, Any] | str,
              agent: str = "claude", install: str | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """Run the real hook client exactly as an agent would (same argv as installed)."""
    from hive_lab.core.installers import COMPILED_NAME, hook_argv

    body = payload if isinstance(payload, bytes) else (
        payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
    env = {"PATH": os.environ.get("PATH", ""), "HIVE_LAB_DIR": str(server.data_dir),
           "HIVE_LAB_AGENT": agent}
    if session:
        env["HIVE_LAB_SESSION"] = session
    script = server.data_dir / "bin" / COMPILED_NAME  # what the server installs in settings
    return subprocess.run(hook_argv(agent, install, script=script), input=body, env=env,
                          capture_output=True, timeout=timeout)


def hook_events(server: HiveServer, session: str) -> list[dict[str, Any]]:
    """All stored events of ``session`` that came from the agent (not Hive Lab's own)."""
    from hive_lab.client import HiveClient

    return [e for e in HiveClient(server.url, server.token).all_events(session=session)
            if e["agent"] != "hive"]


def state_of(server: HiveServer, name: str) -> dict[str, Any]:
    return server.get(f"sessions/{name}")["state"]
