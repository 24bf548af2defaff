"""Helpers the tests share: start agents, fire hooks the way agents do, read what was stored."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .server import HiveServer

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "samples"
if not SAMPLES.exists():  # CI clones next to shared/ too; keep a fallback for odd layouts
    SAMPLES = Path(os.environ.get("HIVE_LAB_SAMPLES", "/work/shared/samples"))
GIT_ENV = {"GIT_AUTHOR_NAME": "Agent", "GIT_AUTHOR_EMAIL": "agent@example.com",
           "GIT_COMMITTER_NAME": "Agent", "GIT_COMMITTER_EMAIL": "agent@example.com"}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` as a test author; fail the test on an error."""
    out = subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e",
                          *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at ``path`` on branch ``main`` whose first commit holds ``files``
    (relative path -> text)."""
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


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
