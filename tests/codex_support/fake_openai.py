"""A scripted local OpenAI Responses API that stands in for the real model in the Codex CLI tests.

Nothing here is OpenAI's model: it is a tiny HTTP server speaking just enough of the
Responses API for the unmodified ``codex`` CLI (``@openai/codex``) to run against it. Codex is
pointed at it by a custom model provider in ``$CODEX_HOME/config.toml`` (``base_url`` =
:attr:`FakeOpenAI.base_url` + ``/v1``, ``wire_api = "responses"``, ``env_key`` naming a
variable holding a dummy key; see ``tests/codex_support/cli.py``). It answers

* ``POST /v1/responses`` (``"stream": true``) with server-sent events: ``response.created``,
  one ``response.output_item.done`` per output item (a ``message`` or a ``function_call``),
  then ``response.completed`` carrying ``usage`` (input, cached, output, reasoning tokens);
* ``GET /v1/models`` with one model (Codex's model list refresh).

What the "model" does is chosen by the newest user text in ``input`` holding
``SCENARIO:<name> <args>``; one step per model turn since that prompt:

``shell <command...>``          call the shell tool (this version's name for it, found in the
                                request's ``tools``), then quote its output.
``ask <command...>``            the same, asking to run it outside the sandbox
                                (``sandbox_permissions: require_escalated``, with a
                                justification): Codex shows its approval question.
``write <path> <content...>``   call ``apply_patch`` adding ``path``, then say "Wrote <path>."
``text <words...>``             answer ``words``.
``wait <seconds>``              the model takes ``seconds`` before it answers "Waited."
``steps <step> ;; <step> ...``  one step per model turn, whatever the tool results were.

Without a scenario the answer is ``OK.``. Every request is logged in :attr:`FakeOpenAI.calls`;
every usage it reported is in :attr:`FakeOpenAI.usages` with the Codex thread it was for
(what the tests check Codex's rollout accounting against). Codex's side request for a thread
title gets a title (:func:`kind_of`).
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
MODEL = "gpt-5.1-codex"


@dataclass
class Call:
    """One request the CLI made."""

    path: str
    method: str
    body: dict[str, Any] = field(default_factory=dict)


def _text_of(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def tool_names(body: dict[str, Any]) -> list[str]:
    """The names of the tools a request offers (function and custom tools alike)."""
    out = []
    for t in body.get("tools") or []:
        if isinstance(t, dict):
            out.append(str(t.get("name") or t.get("type")))
    return out


TITLE_ASK = "Generate a concise, single-line task title"


def kind_of(body: dict[str, Any]) -> str:
    """``title`` for Codex's side request naming a new thread (read-only, only
    ``apply_patch`` offered, never in the rollout's accounting), else ``turn``."""
    items = [i for i in body.get("input") or [] if isinstance(i, dict)]
    last_user = next((i for i in reversed(items) if i.get("role") == "user"), None)
    return "title" if last_user and TITLE_ASK in _text_of(last_user) else "turn"


def plan(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The output items of the next model turn for this request."""
    if kind_of(body) == "title":
        return [_message("Scripted test title")]
    items = [i for i in body.get("input") or [] if isinstance(i, dict)]
    idx, match = -1, None
    for i in range(len(items) - 1, -1, -1):
        it = items[i]
        if it.get("type", "message") == "message" and it.get("role") == "user":
            m = _SCENARIO_RE.search(_text_of(it))
            if m:
                idx, match = i, m
                break
    if match is None:
        return [_message("OK.")]
    name, args = match.group(1), match.group(2).strip()
    later = items[idx + 1:]
    step = sum(1 for it in later if it.get("type") in ("function_call", "custom_tool_call"))
    results = [it.get("output") for it in later
               if it.get("type") in ("function_call_output", "custom_tool_call_output")]
    if name == "steps":
        todo = [x.strip() for x in args.split(";;") if x.strip()]
        if step < len(todo):
            sub, _, rest = todo[step].partition(" ")
            return _step(sub, rest, 0, results, body, step)
        return [_message(f"All {len(todo)} steps done. Last result: "
                         f"{json.dumps(results[-1:])[:300]}")]
    return _step(name, args, step, results, body, step)


def _step(name: str, args: str, step: int, results: list[Any], body: dict[str, Any],
          n: int) -> list[dict[str, Any]]:
    tools = tool_names(body)
    if name in ("shell", "ask"):
        if step == 0:
            return [_shell_call(args, tools, n, escalate=name == "ask")]
        return [_message(f"Ran it. Result: {json.dumps(results[-1:])[:300]}")]
    if name == "write":
        path, _, text = args.partition(" ")
        if step == 0:
            return [_patch_call(path, text, tools, n)]
        return [_message(f"Wrote {path}. Result: {json.dumps(results[-1:])[:300]}")]
    if name == "wait":
        return [_message("Waited.")]
    if name == "text":
        return [_message(args or "OK.")]
    return [_message(f"unknown scenario {name!r}")]


def _message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "id": f"msg_{time.monotonic_ns()}",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def _shell_call(command: str, tools: list[str], n: int, escalate: bool = False
                ) -> dict[str, Any]:
    call_id = f"call_sh_{n}_{time.monotonic_ns()}"
    if "exec_command" in tools:
        args: dict[str, Any] = {"cmd": command}
        if escalate:
            args.update(sandbox_permissions="require_escalated",
                        justification=f"Scripted test: may I run {command}?")
        name = "exec_command"
    else:
        args = {"command": ["bash", "-lc", command]}
        name = "shell_command" if "shell_command" in tools else "shell"
        if name == "shell_command":
            args = {"command": command}
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name,
            "arguments": json.dumps(args), "status": "completed"}


def _patch_call(path: str, text: str, tools: list[str], n: int) -> dict[str, Any]:
    call_id = f"call_ap_{n}_{time.monotonic_ns()}"
    patch = f"*** Begin Patch\n*** Add File: {path}\n+{text}\n*** End Patch\n"
    # apply_patch is a freeform (custom) tool in recent Codex, a JSON function in older ones.
    return {"type": "custom_tool_call", "id": f"ctc_{call_id}", "call_id": call_id,
            "name": "apply_patch", "input": patch, "status": "completed"}


def _wait_of(body: dict[str, Any]) -> float:
    items = [i for i in body.get("input") or [] if isinstance(i, dict)
             and i.get("role") == "user"]
    m = _SCENARIO_RE.search(_text_of(items[-1])) if items else None
    if m and m.group(1) == "wait":
        try:
            return min(float(m.group(2).split()[0]), 120.0)
        except (ValueError, IndexError):
            return 0.0
    return 0.0


@dataclass
class Usage:
    """What one response reported, for which Codex thread (its session id), of what kind."""

    usage: dict[str, Any]
    thread: str
    kind: str  # "turn" | "title"


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
        owner = self.server.owner
        with owner.lock:
            owner.calls.append(Call(self.path, "GET"))
        if self.path.split("?")[0].rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}]})
            return
        self._send_json(404, {"error": {"message": f"no {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        owner = self.server.owner
        with owner.lock:
            owner.calls.append(Call(self.path, "POST", body))
        if not self.path.split("?")[0].endswith("/responses"):
            self._send_json(404, {"error": {"message": f"no {self.path}", "type": "not_found"}})
            return
        delay = _wait_of(body)
        if delay:
            time.sleep(delay)
        items = plan(body)
        n_in = max(1, len(raw) // 4)
        n_out = max(1, sum(len(json.dumps(i)) for i in items) // 4)
        with owner.lock:
            owner.seq += 1
            rid = f"resp_{owner.seq}"
            # A stable cached share so that the cache-read price shows up in the cost.
            usage = {"input_tokens": n_in,
                     "input_tokens_details": {"cached_tokens": n_in // 2},
                     "output_tokens": n_out,
                     "output_tokens_details": {"reasoning_tokens": 7},
                     "total_tokens": n_in + n_out}
            meta = body.get("client_metadata") if isinstance(body.get("client_metadata"),
                                                               dict) else {}
            owner.usages.append(Usage(usage, str(meta.get("thread_id") or ""), kind_of(body)))
        model = body.get("model") or MODEL
        events = [("response.created", {"type": "response.created", "response": {
            "id": rid, "object": "response", "model": model, "status": "in_progress",
            "output": []}})]
        for n, item in enumerate(items):
            events.append(("response.output_item.added", {
                "type": "response.output_item.added", "output_index": n, "item": item}))
            events.append(("response.output_item.done", {
                "type": "response.output_item.done", "output_index": n, "item": item}))
        events.append(("response.completed", {"type": "response.completed", "response": {
            "id": rid, "object": "response", "model": model, "status": "completed",
            "output": items, "usage": usage}}))
        data = b"".join(f"event: {name}\ndata: {json.dumps(ev)}\n\n".encode()
                        for name, ev in events)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "FakeOpenAI"


class FakeOpenAI:
    """Run the scripted API on a free local port (a context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.calls: list[Call] = []
        self.usages: list[Usage] = []
        self.seq = 0
        self.lock = threading.Lock()
        self._srv = _Server((host, port), _Handler)
        self._srv.owner = self
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._srv.server_address[:2]
        return f"http://{host}:{port}"

    def responses(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == "POST" and "responses" in c.path]

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._srv.shutdown()
        self._srv.server_close()
