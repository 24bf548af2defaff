"""A tunnel to a node that only offers SSH: a local port forwarded to the node's loopback.

Like ``ssh -N -L PORT:127.0.0.1:8888 host``, but kept by the control room (asyncssh): opened on
first use, on 127.0.0.1 and an ephemeral port only, torn down and re-opened when the
connection dies. Host keys are checked against the ``known_hosts`` file the host record names
(never skipped); the client key comes from ``key_file``.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


class TunnelError(Exception):
    """The SSH connection or the forwarding could not be made (no secrets in the message)."""


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str
    key_file: str
    known_hosts: str
    port: int = 22

    @classmethod
    def parse(cls, data: Any, what: str) -> "SshTarget":
        if not isinstance(data, dict):
            raise ValueError(f"{what}: ssh must be {{host, user, key_file, known_hosts, port}}")
        unknown = set(data) - {"host", "user", "key_file", "known_hosts", "port"}
        if unknown:
            raise ValueError(f"{what}: unknown ssh field(s) {', '.join(sorted(unknown))}")
        for key in ("host", "user", "key_file", "known_hosts"):
            if not isinstance(data.get(key), str) or not data[key] or data[key].startswith("-"):
                raise ValueError(f"{what}: ssh.{key} must be a non-empty string")
        port = data.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"{what}: ssh.port must be a TCP port")
        return cls(data["host"], data["user"], data["key_file"], data["known_hosts"], port)

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user}


class SshTunnel:
    """One forwarded local port to ``remote_host:remote_port`` as seen from the SSH host."""

    def __init__(self, target: SshTarget, remote_host: str, remote_port: int,
                 timeout: float = 5.0) -> None:
        self.target = target
        self.remote = (remote_host, remote_port)
        self.timeout = timeout
        self._conn: Any = None
        self._listener: Any = None
        self._lock = asyncio.Lock()

    async def local_port(self) -> int:
        """The forwarded port on 127.0.0.1, connecting (again) if need be."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return int(self._listener.get_port())
            await self._drop()
            import asyncssh

            t = self.target
            try:
                self._conn = await asyncssh.connect(
                    t.host, t.port, username=t.user, client_keys=[t.key_file],
                    known_hosts=t.known_hosts, connect_timeout=self.timeout,
                    keepalive_interval=max(1.0, self.timeout), keepalive_count_max=2,
                    agent_path=None, config=[])
                self._listener = await self._conn.forward_local_port(
                    "127.0.0.1", 0, self.remote[0], self.remote[1])
            except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                await self._drop()
                raise TunnelError(f"ssh {t.user}@{t.host}:{t.port}: "
                                  f"{getattr(exc, 'reason', '') or exc.__class__.__name__}") from None
            return int(self._listener.get_port())

    async def reset(self) -> None:
        """Forget the connection (it looked dead); the next use opens a new one."""
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass
            self._conn = None

    async def close(self) -> None:
        await self.reset()
