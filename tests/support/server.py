"""A real `jupyter server` subprocess with Hive Lab on a private tmux socket.

Shared by the tests (through conftest) and the benchmarks: one harness, one way to start,
restart, query and stop a server. No pytest here, so benchmarks can import it too.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hive_lab.client import HiveClient

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class HiveServer:
    """A `jupyter server` subprocess with Hive Lab enabled, restartable on the same data."""

    base: Path
    socket_name: str = field(default_factory=lambda: f"hivetest-{secrets.token_hex(4)}")
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    extra_args: list[str] = field(default_factory=list)
    # Optional: more HiveLab config (merged into the one written below), directories put
    # first on the server's PATH (where it finds agent CLIs), variables added to its env and
    # prefixes of variables removed from it (e.g. an outer Claude Code's CLAUDE*/ANTHROPIC_*).
    extra_config: dict[str, Any] = field(default_factory=dict)
    extra_path: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    drop_env_prefixes: tuple[str, ...] = ()
    # How to start the server (e.g. under cProfile) and how often it polls.
    launcher: list[str] = field(default_factory=lambda: [str(BIN / "jupyter"), "server"])
    poll_interval: float = 0.3
    spool_interval: float = 0.5
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        for sub in ("data", "runtime", "config", "root"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        # A profile that behaves like a hooked agent (Claude-style hooks) but runs `cat`.
        config = {"HiveLab": {"profiles": {"hooked": {"command": ["cat"], "hooks": "claude"}}}}
        for key, value in self.extra_config.items():
            if key == "profiles":
                config["HiveLab"]["profiles"].update(value)
            else:
                config["HiveLab"][key] = value
        (self.base / "config" / "jupyter_server_config.json").write_text(json.dumps(config))

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def data_dir(self) -> Path:
        return self.base / "data" / "hive_lab"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def env(self) -> dict[str, str]:
        drop = ("JPY_", "JUPYTER_", *self.drop_env_prefixes)
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(JUPYTER_DATA_DIR=str(self.base / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.base / "runtime"),
                   JUPYTER_CONFIG_DIR=str(self.base / "config"),
                   PATH=os.pathsep.join([*self.extra_path, str(BIN), env.get("PATH", "")]))
        env.update(self.extra_env)
        return env

    def start(self) -> "HiveServer":
        self.port = free_port()
        argv = [*self.launcher, "--allow-root", "--no-browser",
                f"--port={self.port}", "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", f"--HiveLab.tmux_socket={self.socket_name}",
                f"--HiveLab.poll_interval={self.poll_interval}",
                f"--HiveLab.spool_interval={self.spool_interval}", *self.extra_args]
        self.log = open(self.base / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=60, what=f"jupyter server on {self.port} (log {self.log.name})")
        return self

    def _ready(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"server died: {(self.base / f'server-{self.port}.log').read_text()[-3000:]}")
        try:
            self.get("status")
            return (self.data_dir / "server.json").exists()
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> "HiveServer":
        self.stop()
        return self.start()

    def kill_tmux(self) -> None:
        where = self.tmux("display-message", "-p", "#{socket_path}").stdout.strip()
        subprocess.run(["tmux", "-L", self.socket_name, "kill-server"], capture_output=True)
        if where.endswith("/" + self.socket_name):  # tmux 3.3a leaves the socket file behind
            try:
                os.unlink(where)
            except OSError:
                pass

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket_name, *args], capture_output=True,
                              text=True)

    def tmux_sessions(self) -> list[str]:
        out = self.tmux("list-sessions", "-F", "#{session_name}")
        return out.stdout.split() if out.returncode == 0 else []

    # -- HTTP -------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, token: str | None = "default",
                raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """HTTP call to ``hive_lab/api/<path>`` (or ``/<path>`` from the server root).

        Returns (status, parsed JSON or text)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        url = self.url + path[1:] if path.startswith("/") else f"{self.url}hive_lab/api/{path}"
        req = urllib.request.Request(url, data=data, method=method)
        tok = self.token if token == "default" else token
        if tok:
            req.add_header("Authorization", f"token {tok}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, (status, body)
        return body

    def client(self) -> HiveClient:
        return HiveClient(self.url, self.token)

    def cli(self, *args: str, input: str | None = None, discover: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real ``hive-lab`` console script against this server."""
        argv = [str(BIN / "hive-lab")]
        if not discover:
            argv += ["--url", self.url, "--token", self.token]
        return subprocess.run([*argv, *args], capture_output=True, text=True, env=self.env,
                              input=input, timeout=60)
