"""Run code in a kernel that the Jupyter server itself started, over its WebSocket channels.

This is how a notebook in JupyterLab runs: the kernel inherits the server's environment
(JPY_PARENT_PID, runtime dir), so it is the honest way to test "the kernel finds its server".
"""
from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


@dataclass
class Result:
    stdout: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""


class RemoteKernel:
    def __init__(self, server: Any) -> None:
        self.server = server
        status, body = server.request("POST", "/api/kernels", {"name": "python3"})
        assert status == 201, body
        self.kernel_id = body["id"]
        self.session = uuid.uuid4().hex
        self.conn: Any = None

    async def _connect(self) -> None:
        if self.conn is None:
            url = (self.server.url.replace("http", "ws")
                   + f"api/kernels/{self.kernel_id}/channels?session_id={self.session}")
            self.conn = await websocket_connect(HTTPRequest(
                url, headers={"Authorization": f"token {self.server.token}"}))

    async def _execute(self, code: str, timeout: float) -> Result:
        await self._connect()
        msg_id = uuid.uuid4().hex
        msg = {"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                          "session": self.session, "version": "5.3",
                          "date": datetime.now(timezone.utc).isoformat()},
               "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
               "content": {"code": code, "silent": False, "store_history": True,
                           "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}
        await self.conn.write_message(json.dumps(msg))
        result = Result()
        got_reply = got_idle = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (got_reply and got_idle):
            raw = await asyncio.wait_for(self.conn.read_message(), max(0.1, deadline - loop.time()))
            if raw is None:
                raise AssertionError("kernel websocket closed")
            if isinstance(raw, bytes):
                continue  # binary frames carry widget buffers; not needed here
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = reply["header"]["msg_type"], reply["content"]
            if kind == "stream":
                result.stdout += content["text"]
            elif kind == "error":
                result.errors.append(content)
            elif kind in ("execute_result", "display_data"):
                result.data.append(content["data"])
            elif kind == "status" and content["execution_state"] == "idle":
                got_idle = True
            elif kind == "execute_reply":
                got_reply, result.status = True, content["status"]
        return result

    def run(self, code: str, timeout: float = 60) -> Result:
        return asyncio.get_event_loop().run_until_complete(self._execute(code, timeout))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.request("DELETE", f"/api/kernels/{self.kernel_id}")
