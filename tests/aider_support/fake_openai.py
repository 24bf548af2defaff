"""A scripted local OpenAI-compatible API that stands in for the real model in the Aider tests.

Nothing here is OpenAI's model: it is a tiny HTTP server speaking just enough of the
``/v1/chat/completions`` protocol for the unmodified ``aider`` (aider-chat, through litellm) to
run against it. Aider is pointed at it with ``--openai-api-base http://127.0.0.1:<port>/v1
--openai-api-key <any> --model openai/<name>`` (see :meth:`FakeOpenAI.args`). It answers

* ``POST /v1/chat/completions`` with ``"stream": true`` as server-sent events
  (``data: <chat.completion.chunk>`` lines, a last chunk with ``usage`` when
  ``stream_options.include_usage`` asks for it, then ``data: [DONE]``), else one JSON
  ``chat.completion`` with ``usage``;
* ``GET /v1/models`` with the one model.

Usage is exact and known: ``prompt_tokens`` is ``len(request body) // 4`` and
``completion_tokens`` is ``len(answer) // 4`` (at least 1 each), so a test can check what
aider reports and logs against what the "model" said it billed (:attr:`FakeOpenAI.billed`).

What the "model" does is chosen by the newest user message holding ``SCENARIO:<name> <args>``;
one step per model turn since that message (aider's own follow-up turns, e.g. after files were
added to the chat, count as turns):

``write <path> <content...>``  a SEARCH/REPLACE block (aider's ``diff`` edit format, the one
                               it asks ``openai/gpt-4.1-mini`` for) creating ``path``.
``shell <command...>``         suggest a shell command in a ```bash block (aider asks
                               "Run shell command?").
``mention <path>``             name a repo file that is not in the chat (aider asks "Add file
                               to the chat?").
``text <words...>``            answer ``words``.
``wait <seconds>``             take ``seconds`` before answering "Waited." (to see `working`).

Without a scenario, or after the scenario's one step, the answer is ``OK.``. Every request is
kept in :attr:`FakeOpenAI.calls`.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SCENARIO_RE = re.compile(r"SCENARIO:([A-Za-z][\w-]*)[ \t]*([^\n]*)")
MODEL = "gpt-4.1-mini"


@dataclass
class Call:
    """One request aider made."""

    path: str
    body: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    usage: dict[str, int] = field(default_factory=dict)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def plan(messages: list[dict[str, Any]]) -> str:
    """The assistant's answer for this conversation."""
    idx, match = -1, None
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            m = _SCENARIO_RE.search(_text(messages[i]))
            if m:
                idx, match = i, m
                break
    if match is None:
        return "OK."
    step = sum(1 for m in messages[idx + 1:] if m.get("role") == "assistant")
    if step:
        return "OK."
    name, args = match.group(1), match.group(2).strip()
    if name == "write":
        path, _, content = args.partition(" ")
        return (f"I will create {path}.\n\n{path}\n```\n<<<<<<< SEARCH\n=======\n"
                f"{content}\n>>>>>>> REPLACE\n```\n")
    if name == "shell":
        return f"Run this:\n\n```bash\n{args}\n```\n"
    if name == "mention":
        return f"To do that I need to see {args} first. Please add it to the chat."
    if name == "wait":
        return "Waited."
    if name == "text":
        return args or "OK."
    return f"unknown scenario {name!r}"


def _wait_of(messages: list[dict[str, Any]]) -> float:
    users = [m for m in messages if m.get("role") == "user"]
    m = _SCENARIO_RE.search(_text(users[-1])) if users else None
    if m and m.group(1) == "wait":
        try:
            return min(float(m.group(2).split()[0]), 120.0)
        except (ValueError, IndexError):
            return 0.0
    return 0.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [
                {"id": MODEL, "object": "model", "owned_by": "hive-lab-tests"}]}).encode())
            return
        self._send(404, json.dumps({"error": {"message": "not here"}}).encode())

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not self.path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
            self._send(404, json.dumps({"error": {"message": f"no {self.path}"}}).encode())
            return
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        delay = _wait_of(messages)
        if delay:
            time.sleep(delay)
        answer = plan(messages)
        usage = {"prompt_tokens": max(1, len(raw) // 4),
                 "completion_tokens": max(1, len(answer) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        owner = self.server.owner
        with owner.lock:
            owner.calls.append(Call(self.path, body, answer, usage))
        rid, created = f"chatcmpl-fake{len(owner.calls)}", int(time.time())
        model = str(body.get("model") or MODEL)
        if not body.get("stream"):
            self._send(200, json.dumps({
                "id": rid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
                "usage": usage}).encode())
            return
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        pieces = [answer[i:i + 40] for i in range(0, len(answer), 40)] or [""]
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]}]
        chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p},
                                         "finish_reason": None}]} for p in pieces]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})
        data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
        self._send(200, data + b"data: [DONE]\n\n", "text/event-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "FakeOpenAI"


class FakeOpenAI:
    """Run the scripted API on a free local port (a context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self._srv = _Server((host, port), _Handler)
        self._srv.owner = self
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._srv.server_address[:2]
        return f"http://{host}:{port}/v1"

    def args(self) -> list[str]:
        """Aider's arguments that point it here."""
        return ["--openai-api-base", self.base_url, "--openai-api-key", "fake-key",
                "--model", f"openai/{MODEL}"]

    def billed(self, since: int = 0) -> dict[str, int]:
        """Tokens the "model" reported in ``usage`` for the calls from index ``since`` on."""
        with self.lock:
            calls = self.calls[since:]
        return {k: sum(c.usage[k] for c in calls)
                for k in ("prompt_tokens", "completion_tokens", "total_tokens")}

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._srv.shutdown()
        self._srv.server_close()
