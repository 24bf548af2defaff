"""A client for one node: its REST API over HTTP(S) and its event stream over a WebSocket.

The token is read from the host's token file at each connection and sent only in the
``Authorization`` header (never in a URL, so it is in no log line or error message). Transport
failures become :class:`NodeUnreachable`; a node's own answers (any status) are returned as they
are, so the control room can pass them through.
"""
from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any, AsyncIterator

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from .hosts import Host, HostConfigError
from .tunnel import SshTunnel, TunnelError

MAX_MESSAGE = 16 * 1024 * 1024


class NodeUnreachable(Exception):
    """The node did not answer (refused, timed out, connection lost, bad token file)."""


class NodeClient:
    """REST and stream access to ``{host.url}hive_lab/api/``."""

    def __init__(self, host: Host, timeout: float = 5.0) -> None:
        self.host = host
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._tunnel: SshTunnel | None = None
        if host.ssh is not None:
            parts = urllib.parse.urlsplit(host.url)
            self._tunnel = SshTunnel(host.ssh, parts.hostname or "127.0.0.1", parts.port or 80,
                                     timeout)

    async def api_url(self) -> str:
        """The node's API root from here: its URL, or the local end of its SSH tunnel."""
        if self._tunnel is None:
            return self.host.api_url
        try:
            port = await self._tunnel.local_port()
        except TunnelError as exc:
            raise NodeUnreachable(str(exc)) from None
        path = urllib.parse.urlsplit(self.host.url).path.rstrip("/")
        return f"http://127.0.0.1:{port}{path}/hive_lab/api/"

    async def _lost(self) -> None:
        if self._tunnel is not None:
            await self._tunnel.reset()

    def __repr__(self) -> str:
        return f"NodeClient({self.host.name!r})"

    def _headers(self) -> dict[str, str]:
        try:
            token = self.host.token()
        except HostConfigError as exc:
            raise NodeUnreachable(str(exc)) from None
        return {"Authorization": f"token {token}"} if token else {}

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      body: Any = None) -> tuple[int, Any]:
        """``(status, parsed JSON body)``; raises :class:`NodeUnreachable` on transport failure."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                           trust_env=False)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        content = json.dumps(body).encode() if body is not None else None
        base = await self.api_url()
        try:
            resp = await self._http.request(method, base + path, params=query,
                                            content=content, headers={
                                                **self._headers(),
                                                "Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            await self._lost()
            raise NodeUnreachable(f"{self.host.name}: {exc.__class__.__name__}") from None
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = {"error": "bad_gateway",
                    "detail": f"host {self.host.name!r} answered {resp.status_code} without JSON"}
        return resp.status_code, data

    async def stream(self, after: int, heartbeat: float = 5.0) -> AsyncIterator[dict[str, Any]]:
        """The node's events after ``after`` (replay, then live) until the stream ends.

        Ends quietly on ``resync`` (the caller reconnects with its last id); raises
        :class:`NodeUnreachable` when the node cannot be reached, closes, or does not answer
        our pings for two heartbeats.
        """
        url = (await self.api_url()).replace("http", "ws", 1) + "events/stream"
        url += f"?after={int(after)}&heartbeat={max(1, int(heartbeat))}"
        try:
            # Our pings find a silent peer (a cut link gives no error, only silence).
            async with ws_connect(url, additional_headers=self._headers(), open_timeout=self.timeout,
                                  ping_interval=max(1.0, heartbeat), ping_timeout=2 * max(1.0, heartbeat),
                                  max_size=MAX_MESSAGE, max_queue=4096, compression=None,
                                  proxy=None) as ws:
                async for message in ws:
                    data = json.loads(message)
                    if "type" in data and "id" not in data:
                        if data["type"] == "resync":
                            return
                        continue
                    yield data
            raise NodeUnreachable(f"{self.host.name}: stream closed")
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            await self._lost()
            raise NodeUnreachable(f"{self.host.name}: {exc.__class__.__name__}") from None

    async def close(self) -> None:
        if self._tunnel is not None:
            await self._tunnel.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
