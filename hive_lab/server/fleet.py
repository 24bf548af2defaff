"""Fleet routes: ``GET hosts``, ``GET hosts/{name}``, ``hosts/{name}/api/{path}`` (any call
on that node, with its token, answered as the node answered) and the federated WebSocket
``fleet/stream?after=local:12,gpu1:40`` (every host's events, each marked ``host``).

Thin like the other handlers: parsing here, everything else in the facade's fleet methods.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from tornado import web
from tornado.websocket import WebSocketClosedError

from ..core.errors import BadRequest, HiveError
from ..wire import API_PREFIX
from .base import HiveHandler, api, parse_bool, parse_int
from .stream import HiveSocket

API = "/" + API_PREFIX
NAME = r"(?P<name>[^/]+)"
FLEET_STREAM_PATH = "fleet/stream"


class HostsHandler(HiveHandler):
    @api
    def get(self) -> None:
        self.reply({"hosts": self.hive.hosts()})


class HostHandler(HiveHandler):
    @api
    def get(self, name: str) -> None:
        self.reply(self.hive.host(name))


class FleetReadHandler(HiveHandler):
    @api
    async def get(self, what: str) -> None:
        self.reply(await self.hive.fleet_read(what, unread=parse_bool(self.query("unread")),
                                              by=self.get_query_argument("by", "session")))


class HostProxyHandler(HiveHandler):
    """One node's API through the control room (the node's token added here, never shown)."""

    async def _pass(self, name: str, path: str) -> None:
        params = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        body = self.json_body() if self.request.method in ("POST", "PUT", "PATCH") else None
        status, data = await self.hive.host_request(name, self.request.method or "GET", path,
                                                    params, body)
        self.reply(data, status=status)

    @api
    async def get(self, name: str, path: str) -> None:
        await self._pass(name, path)

    @api
    async def post(self, name: str, path: str) -> None:
        await self._pass(name, path)

    @api
    async def put(self, name: str, path: str) -> None:
        await self._pass(name, path)

    @api
    async def patch(self, name: str, path: str) -> None:
        await self._pass(name, path)

    @api
    async def delete(self, name: str, path: str) -> None:
        await self._pass(name, path)


class FleetStreamHandler(HiveSocket):
    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.check_read()
        q = self.get_query_argument
        try:
            heartbeat = parse_int(q("heartbeat", None), "heartbeat", 15, 1, 3600)
            self._feed = self.hive.fleet_feed(q("after", None), q("host", None), q("event", None),
                                             float(heartbeat))
        except HiveError as exc:
            raise web.HTTPError(400 if isinstance(exc, BadRequest) else 404, exc.detail) from None
        await super().get(*args, **kwargs)

    async def _pump(self) -> None:
        try:
            async for batch in self._feed:
                pending = None
                for item in batch:
                    pending = self.write_message(json.dumps(item, ensure_ascii=False))
                if pending is not None:
                    await pending
        except (WebSocketClosedError, asyncio.CancelledError):
            pass
        finally:
            await self._feed.aclose()


def fleet_handlers() -> list[tuple[str, type]]:
    return [
        (rf"{API}/hosts", HostsHandler),
        (rf"{API}/hosts/{NAME}", HostHandler),
        (rf"{API}/hosts/{NAME}/api/(?P<path>.+)", HostProxyHandler),
        (rf"{API}/{FLEET_STREAM_PATH}", FleetStreamHandler),
        (rf"{API}/fleet/(?P<what>git|usage|notifications|budgets)", FleetReadHandler),
    ]
