"""WebSocket ``{base}hive_lab/api/events/stream?after=ID``: replay, then live, with no gap.

The ordering logic lives in the core (:func:`hive_lab.core.feed.event_feed`); this handler
authenticates, parses the query, and writes what the feed yields. Event messages are event
objects (they have an ``id``); control messages have a ``type``: ``hello``, ``live`` (replay
done), ``heartbeat``, ``resync`` (you fell behind: reconnect with ``after``), ``error``.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..core.errors import HiveError
from ..core.facade import Hive
from ..wire import AUTH_RESOURCE, MSG_RESYNC
from .base import parse_int

QUEUE_SIZE = 2000


class HiveSocket(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """A read-only Hive Lab WebSocket: Jupyter auth plus the ``read`` permission, then
    :meth:`_pump` writes until the client leaves. Subclasses parse their query in ``get``."""

    auth_resource = AUTH_RESOURCE

    @property
    def hive(self) -> Hive:
        return self.settings["hive_lab"]

    async def check_read(self) -> None:
        if not await _maybe_await(self.authorizer.is_authorized(self, self.current_user, "read",
                                                                AUTH_RESOURCE)):
            raise web.HTTPError(403, "not authorised to read hive_lab events")

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self._task = asyncio.ensure_future(self._pump())

    def on_message(self, message: str | bytes) -> None:
        """Clients only listen; anything they send is ignored."""

    def on_close(self) -> None:
        super().on_close()
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()

    async def _pump(self) -> None:
        raise NotImplementedError


class EventStreamHandler(HiveSocket):
    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.check_read()
        q = self.get_query_argument
        try:
            self.after = parse_int(q("after", None), "after", 0, 0, 2**62)
            self.heartbeat = parse_int(q("heartbeat", None), "heartbeat", 15, 1, 3600)
            self.queue_size = parse_int(q("queue", None), "queue", QUEUE_SIZE, 1, 100000)
        except HiveError as exc:
            raise web.HTTPError(400, exc.detail) from None
        self.filters = {k: v for k in ("session", "event") if (v := q(k, None))}
        await super().get(*args, **kwargs)

    async def _pump(self) -> None:
        feed = self.hive.feed(self.after, self.filters, self.queue_size, self.heartbeat)
        try:
            async for item in feed:
                if item.control is not None:
                    await self.write_message(json.dumps(item.control))
                    if item.control["type"] == MSG_RESYNC:
                        self.close(4000, "resync")
                        return
                    continue
                # Write everything already queued, and wait for the socket once per batch:
                # awaiting every message gave one message per loop pass (seconds behind).
                pending = self.write_message(item.text or "")
                if item.batch_end:
                    await pending
        except (WebSocketClosedError, asyncio.CancelledError):
            pass
        finally:
            await feed.aclose()


async def _maybe_await(value: Any) -> Any:
    return await value if hasattr(value, "__await__") else value
