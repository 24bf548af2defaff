"""Several hosts on one machine: network namespaces joined to the root one by veth pairs.

Each :class:`NetnsNode` is a real ``jupyter server`` with Hive Lab started inside its own
namespace (``ip netns exec``), listening on that namespace's address only (10.77.N.2, the
explicitly configured case; nothing else can reach it but the root namespace through the
veth pair), with its own tmux socket and data dir. ``link_down``/``link_up`` cut and restore
the wire while the node keeps running. Everything is removed at teardown, even on failure.
"""
from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .server import BIN, HiveServer, wait_for

PORT = 8888


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(("netns", "exec", ns, "ip") if ns else ()), *args]
    out = subprocess.run(argv, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")
    return out


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can (tried for real)."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"hvprobe-{secrets.token_hex(3)}"
    out = _ip("netns", "add", name, check=False)
    if out.returncode != 0:
        return f"`ip netns add` failed: {out.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


def free_indexes(count: int) -> list[int]:
    """``count`` subnet numbers N (10.77.N.0/24) no interface uses now (other test runs may
    have namespaces up at the same time)."""
    import random

    used = set(re.findall(r"inet 10\.77\.(\d+)\.", _ip("-o", "-4", "addr", "show").stdout))
    free = [n for n in range(10, 250) if str(n) not in used]
    start = random.randrange(len(free))
    return (free[start:] + free[:start])[:count]


@dataclass
class Netns:
    """One namespace with a veth pair: 10.77.N.1 on the root side, 10.77.N.2 inside."""

    index: int
    name: str = ""
    tag: str = field(default_factory=lambda: secrets.token_hex(2))

    def __post_init__(self) -> None:
        self.name = self.name or f"hive-{self.tag}-{self.index}"
        self.outer = f"hv{self.tag}{self.index}o"  # <= 15 characters
        self.inner = f"hv{self.tag}{self.index}i"

    @property
    def address(self) -> str:
        return f"10.77.{self.index}.2"

    def create(self) -> "Netns":
        _ip("netns", "add", self.name)
        atexit.register(self.destroy)  # even when a test run is interrupted
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.name)
        _ip("addr", "add", f"10.77.{self.index}.1/24", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        _ip("addr", "add", f"{self.address}/24", "dev", self.inner, ns=self.name)
        _ip("link", "set", self.inner, "up", ns=self.name)
        _ip("link", "set", "lo", "up", ns=self.name)
        return self

    def link_down(self) -> None:
        """Cut the wire: the inner end goes down, so the outer end loses its carrier but keeps
        its route (packets are dropped, as on a pulled cable). Taking the outer end down would
        remove the route and send the node's traffic to the default gateway instead."""
        _ip("link", "set", self.inner, "down", ns=self.name)

    def link_up(self) -> None:
        _ip("link", "set", self.inner, "up", ns=self.name)

    def destroy(self) -> None:
        _ip("link", "del", self.outer, check=False)
        _ip("netns", "del", self.name, check=False)


@dataclass
class NetnsNode(HiveServer):
    """A Hive Lab node inside a namespace, on its own address."""

    netns: Netns | None = None
    loopback_only: bool = False  # listen on the namespace's own 127.0.0.1 (an SSH-only host)

    @property
    def listen_ip(self) -> str:
        assert self.netns is not None
        return "127.0.0.1" if self.loopback_only else self.netns.address

    @property
    def url(self) -> str:
        return f"http://{self.listen_ip}:{self.port}/"

    def _ready(self) -> bool:
        if not self.loopback_only:
            return super()._ready()
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"node died: {(self.base / f'server-{self.port}.log').read_text()[-3000:]}")
        return (self.data_dir / "server.json").exists()  # written once the port is bound

    def token_file(self) -> Path:
        path = self.base / "node.token"
        if not path.exists():
            path.write_text(self.token + "\n")
            path.chmod(0o600)
        return path

    def start(self) -> "NetnsNode":
        assert self.netns is not None
        self.port = PORT
        argv = ["ip", "netns", "exec", self.netns.name, str(BIN / "jupyter"), "server",
                "--allow-root", "--no-browser", f"--port={self.port}",
                f"--ip={self.listen_ip}", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", f"--HiveLab.tmux_socket={self.socket_name}",
                f"--HiveLab.poll_interval={self.poll_interval}",
                f"--HiveLab.spool_interval={self.spool_interval}", *self.extra_args]
        self.log = open(self.base / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=60, what=f"node {self.netns.name} (log {self.log.name})")
        return self
