"""A scripted local Gemini API that stands in for the real model in the Gemini CLI e2e tests.

Nothing here is Google's model: it is a tiny HTTP server speaking just enough of the Gemini
``generativelanguage`` REST protocol for the unmodified ``gemini`` CLI (``@google/gemini-cli``)
to run against it. The CLI is pointed at it with ``GOOGLE_GEMINI_BASE_URL`` (which makes the CLI
pick its ``gateway`` auth type; 0.61.0 bundle, ``getAuthTypeFromEnv``) and a dummy
``GEMINI_API_KEY`` (see :meth:`FakeGemini.env`). It answers

* ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse`` with server-sent events, one
  ``data: <GenerateContentResponse JSON>`` per chunk;
* ``POST /v1beta/models/<model>:generateContent`` with one JSON response (the CLI's side calls:
  model routing, next-speaker checks; JSON-mode requests get a JSON object they can parse);
* ``POST /v1beta/models/<model>:countTokens`` with an estimate.

What the "model" does is chosen by the newest user text in ``contents`` that holds
``SCENARIO:<name> <args>``; one step per model turn since that prompt:

``write <path> <content...>``  call ``write_file`` {file_path, content}, then say "Wrote <path>."
``shell <command...>``         call ``run_shell_command`` {command}, then quote the result.
``text <words...>``            answer ``words``.
``wait <seconds>``             the model takes ``seconds`` before it answers "Waited."
``steps <step> ;; <step> ...`` one step (``write ...`` / ``shell ...`` / ``text ...``) per model
                               turn, whatever the tool results were (a denied step is passed).

Without a scenario the answer is ``OK.``. Every request is logged in :attr:`FakeGemini.calls`;
every answer carries a ``usageMetadata`` (:func:`usage_for`), logged in :attr:`FakeGemini.sent`.
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
_PATH_RE = re.compile(r"^/v1(?:beta|alpha)?/models/([^:/]+):(\w+)")


@dataclass
class Call:
    """One request the CLI made (what tests look at to see what the CLI sent)."""

    path: str
    method: str
    model: str
    body: dict[str, Any] = field(default_factory=dict)


def _parts(content: dict[str, Any]) -> list[dict[str, Any]]:
    parts = content.get("parts") or []
    return [p for p in parts if isinstance(p, dict)]


def _user_texts(content: dict[str, Any]) -> str:
    return "\n".join(str(p["text"]) for p in _parts(content) if "text" in p)


def plan(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of the next model turn for this conversation."""
    scen_idx, match = -1, None
    for i in range(len(contents) - 1, -1, -1):
        c = contents[i]
        if c.get("role") == "user":
            m = _SCENARIO_RE.search(_user_texts(c))
            if m:
                scen_idx, match = i, m
                break
    if match is None:
        return [{"text": "OK."}]
    name, args = match.group(1), match.group(2).strip()
    later = contents[scen_idx + 1:]
    step = sum(1 for c in later if c.get("role") == "model")
    results = [p["functionResponse"] for c in later for p in _parts(c) if "functionResponse" in p]
    if name == "steps":
        todo = [x.strip() for x in args.split(";;") if x.strip()]
        if step < len(todo):
            sub, _, rest = todo[step].partition(" ")
            return _step(sub, rest, 0, results)
        return [{"text": f"All {len(todo)} steps done. Last result: "
                         f"{json.dumps(results[-1:])[:300]}"}]
    return _step(name, args, step, results)


def _step(name: str, args: str, step: int, results: list[Any]) -> list[dict[str, Any]]:
    if name == "write":
        path, _, text = args.partition(" ")
        if step == 0:
            return [{"functionCall": {"name": "write_file",
                                      "args": {"file_path": path, "content": text}}}]
        return [{"text": f"Wrote {path}. Result: {json.dumps(results[-1:])[:300]}"}]
    if name == "shell":
        if step == 0:
            return [{"functionCall": {"name": "run_shell_command",
                                      "args": {"command": args, "description": "scripted"}}}]
        return [{"text": f"Ran it. Result: {json.dumps(results[-1:])[:300]}"}]
    if name == "wait":
        return [{"text": "Waited."}]
    if name == "text":
        return [{"text": args or "OK."}]
    return [{"text": f"unknown scenario {name!r}"}]


def _wait_of(contents: list[dict[str, Any]]) -> float:
    """Seconds to wait when the newest user turn asks ``SCENARIO:wait <seconds>``."""
    users = [c for c in contents if c.get("role") == "user"]
    m = _SCENARIO_RE.search(_user_texts(users[-1])) if users else None
    if m and m.group(1) == "wait":
        try:
            return min(float(m.group(2).split()[0]), 120.0)
        except (ValueError, IndexError):
            return 0.0
    return 0.0


def usage_for(n_in: int, parts: list[dict[str, Any]]) -> dict[str, int]:
    """The ``usageMetadata`` of one answer: known numbers a test can add up.

    As the real API counts: ``promptTokenCount`` includes ``cachedContentTokenCount``,
    ``candidatesTokenCount`` excludes ``thoughtsTokenCount``, the total is their sum.
    """
    n_out = max(1, sum(len(json.dumps(p)) for p in parts) // 4)
    cached, thoughts = n_in // 4, 3
    return {"promptTokenCount": n_in, "candidatesTokenCount": n_out,
            "cachedContentTokenCount": cached, "thoughtsTokenCount": thoughts,
            "totalTokenCount": n_in + n_out + thoughts}


def _response(parts: list[dict[str, Any]], model: str, usage: dict[str, int],
              finish: bool = True) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = "STOP"
    return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model,
            "responseId": "fake-resp"}


def _stream_chunks(parts: list[dict[str, Any]], model: str,
                   usage: dict[str, int]) -> list[dict[str, Any]]:
    """A text answer comes in two chunks, the first with a partial ``usageMetadata`` (the
    real API repeats usage in every chunk; only the last one is final). A function call
    comes whole in one chunk."""
    if len(parts) == 1 and "text" in parts[0] and len(parts[0]["text"]) > 1:
        text = str(parts[0]["text"])
        half = len(text) // 2
        partial = {"promptTokenCount": usage["promptTokenCount"], "candidatesTokenCount": 1,
                   "totalTokenCount": usage["promptTokenCount"] + 1}
        return [_response([{"text": text[:half]}], model, partial, finish=False),
                _response([{"text": text[half:]}], model, usage)]
    return [_response(parts, model, usage)]


@dataclass
class Sent:
    """The final ``usageMetadata`` of one answer, as the fake API sent it."""

    model: str
    verb: str
    usage: dict[str, int]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.server.owner.calls.append(Call(self.path, "GET", ""))
        self._send_json(404, {"error": {"code": 404, "message": "not here", "status": "NOT_FOUND"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        m = _PATH_RE.match(self.path)
        model, verb = (m.group(1), m.group(2)) if m else ("", "")
        owner = self.server.owner
        with owner.lock:
            owner.calls.append(Call(self.path, "POST", model, body))
        contents = body.get("contents") or []
        n_in = max(1, len(raw) // 4)
        if verb == "countTokens":
            self._send_json(200, {"totalTokens": n_in})
            return
        if verb == "generateContent":
            cfg = body.get("generationConfig") or body.get("config") or {}
            # Side calls (model routing, next-speaker checks) carry no tools and want JSON.
            if not body.get("tools") or "json" in str(cfg.get("responseMimeType", "")):
                text = json.dumps({"reasoning": "scripted", "next_speaker": "user",
                                   "model_choice": "flash"})
                parts = [{"text": text}]
            else:
                parts = plan(contents)
            usage = usage_for(n_in, parts)
            with owner.lock:
                owner.sent.append(Sent(model, verb, usage))
            self._send_json(200, _response(parts, model, usage))
            return
        if verb == "streamGenerateContent":
            delay = _wait_of(contents)
            if delay:
                time.sleep(delay)
            parts = plan(contents)
            usage = usage_for(n_in, parts)
            with owner.lock:
                owner.sent.append(Sent(model, verb, usage))
            data = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n"
                            for c in _stream_chunks(parts, model, usage))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._send_json(404, {"error": {"code": 404, "message": f"no {self.path}",
                                        "status": "NOT_FOUND"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "FakeGemini"


class FakeGemini:
    """Run the scripted API on a free local port (a context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.calls: list[Call] = []
        self.sent: list[Sent] = []  # one per answer, what the CLI should account
        self.lock = threading.Lock()
        self._srv = _Server((host, port), _Handler)
        self._srv.owner = self
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._srv.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """What a ``gemini`` process needs in its environment to talk to this server."""
        return {"GOOGLE_GEMINI_BASE_URL": self.base_url, "GEMINI_API_KEY": "fake-key"}

    def __enter__(self) -> "FakeGemini":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._srv.shutdown()
        self._srv.server_close()
