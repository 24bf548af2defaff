"""A minimal SSH server (asyncssh) for a host that only offers SSH: key auth for one user,
local port forwarding to 127.0.0.1 only, nothing else (no shell, no exec).

    python sshd.py LISTEN_HOST PORT HOST_KEY AUTHORIZED_KEYS
"""
from __future__ import annotations

import asyncio
import sys

import asyncssh


class ForwardOnly(asyncssh.SSHServer):
    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        return dest_host in ("127.0.0.1", "localhost")

    def session_requested(self) -> bool:
        return False


async def main(host: str, port: int, host_key: str, authorized: str) -> None:
    await asyncssh.listen(host, port, server_factory=ForwardOnly, server_host_keys=[host_key],
                          authorized_client_keys=authorized, allow_pty=False,
                          x11_forwarding=False, agent_forwarding=False)
    print("listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
