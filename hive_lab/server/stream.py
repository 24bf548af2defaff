"""WebSocket ``{base}hive_lab/api/events/stream?after=ID``: replay, then live, with no gap.

The handler subscribes to the live bus *before* replaying from the store, and skips live events
it already sent, so a client reconnecting with its last id sees every event exactly once.
Event messages are event objects (they have an ``id``); control messages have a ``type``:
``hello``, ``live`` (replay done), ``heartbeat``, ``resync`` (you fell behind: reconnect with
``after``), ``error``.
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

from ..core.bus import Lagging
from ..core.facade import Hive, parse_int
from ..core.errors import HiveError
from .handlers import AUTH_RESOURCE

REPLAY_PAGE = 500
QUEUE_SIZE = 2000


class EventStreamHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    auth_resource = AUTH_RESOURCE

    @property
    def hive(self) -> Hive:
        return self.settings["hive_lab"]

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not await _maybe_await(self.authorizer.is_authorized(self, self.current_user, "read",
                                                                AUTH_RESOURCE)):
            raise web.HTTPError(403, "not authorised to read hive_lab events")
        q = self.get_query_argument
        try:
            self.after = parse_int(q("after", None), "after", 0, 0, 2**62)
            self.heartbeat = parse_int(q("heartbeat", None), "heartbeat", 15, 1, 3600)
            self.queue_size = parse_int(q("queue", None), "queue", QUEUE_SIZE, 1, 100000)
        except HiveError as exc:
            raise web.HTTPError(400, exc.detail) from None
        self.filters = {k: v for k in ("session", "event") if (v := q(k, None))}
        await super().get(*args, **kwargs)

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

    async def _send(self, data: str | dict[str, Any]) -> None:
        await self.write_message(data if isinstance(data, str) else json.dumps(data))

    async def _replay(self, last: int) -> int:
        store = self.hive.store
        while True:
            rows = store.events(after=last, limit=REPLAY_PAGE, **self.filters)
            if not rows:
                return last
            for event in rows:
                await self._send(json.dumps(event.to_json(), ensure_ascii=False))
                last = event.id or last

    def _wanted(self, text: str) -> bool:
        if not self.filters:
            return True
        data = json.loads(text)
        return all(data.get(k) == v for k, v in self.filters.items())

    async def _pump(self) -> None:
        bus = self.hive.bus
        last = self.after
        try:
            await self._send({"type": "hello", "after": last,
                              "last_id": self.hive.store.last_event_id()})
            while True:  # replay; if we fall behind while replaying, replay again
                sub = bus.subscribe(self.queue_size)
                last = await self._replay(last)
                if not sub.lagging:
                    break
                bus.unsubscribe(sub)
            await self._send({"type": "live", "last_id": last})
            while True:
                item = await sub.get(timeout=self.heartbeat)
                if item is None:
                    await self._send({"type": "heartbeat", "last_id": last})
                    continue
                # Write everything already queued, and wait for the socket once per batch:
                # awaiting every message gave one message per loop pass (seconds behind).
                batch = [item, *sub.drain()]
                pending = None
                for event_id, text in batch:
                    if event_id <= last:
                        continue
                    if self._wanted(text):
                        pending = self.write_message(text)
                    last = event_id
                if pending is not None:
                    await pending
        except Lagging:
            await self._send({"type": "resync", "after": last,
                              "detail": "client fell behind; reconnect with after"})
            self.close(4000, "resync")
        except (WebSocketClosedError, asyncio.CancelledError):
            pass
        finally:
            try:
                bus.unsubscribe(sub)
            except UnboundLocalError:
                pass


async def _maybe_await(value: Any) -> Any:
    return await value if hasattr(value, "__await__") else value
