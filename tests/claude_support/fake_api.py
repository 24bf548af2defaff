"""A scripted Anthropic Messages API for driving the real Claude Code CLI in tests.

The CLI talks to ``$ANTHROPIC_BASE_URL``; this server answers ``POST /v1/messages``
(the CLI adds ``?beta=true``) with the streaming server-sent-events protocol of the
Messages API::

    message_start            (message with empty content, usage so far)
    ping
    content_block_start      (text block, or tool_use block with empty input)
    content_block_delta ...  (text_delta / input_json_delta with partial_json)
    content_block_stop
    ...                      (one start/delta/stop group per content block)
    message_delta            (stop_reason + cumulative usage)
    message_stop

and with a plain JSON message when the request does not ask for ``stream``.
Every response carries a ``request-id`` header (the CLI stores it as ``requestId``).

What the "model" does is chosen by the newest prompt in the conversation: a user
message containing ``SCENARIO:<name> <args>`` runs that script, one step per API
round trip (a step is one assistant message; after the last step the model ends the
turn with text). Scripts:

``write <path> <content...>``   Write ``content`` to ``path`` (relative to the cwd the
                                CLI reports in its system prompt), then end the turn.
``edit <path> <old> <new>``     Read ``path``, Edit ``old`` -> ``new``, end the turn.
``read <path>``                 Read ``path``, end the turn.
``bash <command...>``           Bash ``command``, end the turn (quoting the output).
``multi``                       one message with a text block and two Bash tool_use
                                blocks (``ls``, ``pwd``), end the turn.
``slow <seconds>``              Bash ``sleep <seconds>``, end the turn.
``wait <seconds>``              the model itself takes ``seconds`` before answering.
``ask <question...>``           AskUserQuestion with two options, end the turn.
``text <words...>``             answer ``words``.
``error <status> [type]``       answer with an HTTP error (``x-should-retry: false``).
``flaky <n> <status> [retry_after|-] [retry|noretry]``
                                the first ``n`` main-loop requests of this prompt answer
                                ``status`` (with ``retry-after`` seconds unless ``-``, and
                                ``x-should-retry`` true/false), then the model answers text.

:meth:`FakeAnthropic.outage` does the same for *every* ``/v1/messages`` request whatever the
prompt ("the API is down for N requests / until T, then recovers"): it is how tests script a
provider-wide 429/529/401 and its end.
``steps <step> ;; <step> ...``  a multi-step plan, one step per assistant message, whatever
                                the tool results were (a denied step is simply passed):
                                ``write <path> <content...>``, ``bash <command...>``,
                                ``read <path>``, ``stop`` (end the turn here) and
                                ``text <words...>`` (say ``words`` and end the turn).
                                The plan *resumes* at the next prompt that carries no
                                ``SCENARIO:`` of its own (e.g. a message an orchestrator
                                types: "your scope now includes ..."), with the step after
                                the ``stop``. After the last step the turn ends with text.

Requests without ``tools`` (or with ``"tools": []``) are side calls -- the interactive CLI
asks ``claude-haiku-4-5-*`` for a session title (JSON ``{"title": ...}``) at the first
prompt: they get a short text answer. ``/v1/messages/count_tokens`` gets an estimate.

A "prompt" is the newest user message with typed text. When it has no ``SCENARIO:`` the
newest earlier one counts if its script is *resumable* (:attr:`FakeAnthropic.resumable`,
``steps`` by default); otherwise the answer is ``OK.``. After a denied tool the CLI
sends the rejected ``tool_result``, ``[Request interrupted by user for tool use]`` and
the next prompt together in one user message; that message counts as the prompt.

Usage figures are pseudo-random but deterministic per server (``seed``), differ on
every response, and include the 5m / 1h cache-write split. Every request and the
usage sent back are logged in :attr:`FakeAnthropic.calls`, so tests can compute the
totals and cost they expect the CLI to report.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "ApiCall",
    "FakeAnthropic",
    "Reply",
    "ScriptContext",
    "ToolCall",
    "SCENARIOS",
]


# --------------------------------------------------------------------------- replies


@dataclass
class ToolCall:
    """One ``tool_use`` block the model emits."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: "toolu_" + uuid.uuid4().hex[:24])


@dataclass
class Reply:
    """One assistant message: optional text, then tool calls (in this order)."""

    text: str | None = None
    tools: list[ToolCall] = field(default_factory=list)
    delay: float = 0.0  #: seconds to wait before the first byte (the model "thinks")
    error: tuple[int, str, str] | None = None  #: (HTTP status, error type, message)
    error_headers: dict[str, str] = field(default_factory=lambda: {"x-should-retry": "false"})

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tools else "end_turn"

    def blocks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.text:
            out.append({"type": "text", "text": self.text})
        for t in self.tools:
            out.append({"type": "tool_use", "id": t.id, "name": t.name, "input": t.input})
        return out


@dataclass
class ScriptContext:
    """What a script sees of the request it answers."""

    args: str  #: text after ``SCENARIO:<name>`` on the same line
    step: int  #: assistant messages already sent since the prompt (0 = first answer)
    cwd: str | None  #: working directory the CLI announced in its system prompt
    messages: list[dict[str, Any]]
    tool_results: list[dict[str, Any]]  #: ``tool_result`` blocks of the last user message
    prompt: str = ""  #: text of the newest prompt (may be a later one than the SCENARIO's)

    def path(self, p: str) -> str:
        """``p`` made absolute against the CLI's cwd (the file tools want absolute paths)."""
        if os.path.isabs(p) or not self.cwd:
            return p
        return os.path.normpath(os.path.join(self.cwd, p))

    @property
    def denied(self) -> bool:
        """True when the last tool result is an error (denied or failed)."""
        return any(r.get("is_error") for r in self.tool_results)

    def result_text(self) -> str:
        parts: list[str] = []
        for r in self.tool_results:
            c = r.get("content")
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):
                parts.extend(b.get("text", "") for b in c if isinstance(b, dict))
        return "\n".join(parts)


Script = Callable[[ScriptContext], "Reply | None"]


def _finish(ctx: ScriptContext, done: str) -> Reply:
    if ctx.denied:
        return Reply(text="Understood, I did not do that.")
    return Reply(text=done)


def _split_args(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError:
        return args.split()


def _write(ctx: ScriptContext) -> Reply | None:
    path, _, content = ctx.args.strip().partition(" ")
    if ctx.step == 0:
        return Reply(
            text=f"I'll create {path}.",
            tools=[ToolCall("Write", {"file_path": ctx.path(path), "content": content})],
        )
    return _finish(ctx, f"Created {path}.")


def _edit(ctx: ScriptContext) -> Reply | None:
    a = _split_args(ctx.args)
    path, old, new = (a + ["", "", ""])[:3]
    if ctx.step == 0:
        return Reply(tools=[ToolCall("Read", {"file_path": ctx.path(path)})])
    if ctx.step == 1 and not ctx.denied:
        return Reply(
            text=f"Replacing {old!r} in {path}.",
            tools=[
                ToolCall(
                    "Edit",
                    {"file_path": ctx.path(path), "old_string": old, "new_string": new, "replace_all": False},
                )
            ],
        )
    return _finish(ctx, f"Edited {path}.")


def _read(ctx: ScriptContext) -> Reply | None:
    if ctx.step == 0:
        return Reply(tools=[ToolCall("Read", {"file_path": ctx.path(ctx.args.strip())})])
    return _finish(ctx, "I read it.")


def _bash(ctx: ScriptContext) -> Reply | None:
    if ctx.step == 0:
        cmd = ctx.args.strip()
        return Reply(tools=[ToolCall("Bash", {"command": cmd, "description": "Run " + cmd[:40]})])
    out = ctx.result_text().strip()
    return _finish(ctx, f"The command printed: {out[:200]}" if out else "The command printed nothing.")


def _multi(ctx: ScriptContext) -> Reply | None:
    if ctx.step == 0:
        return Reply(
            text="Looking around.",
            tools=[
                ToolCall("Bash", {"command": "ls", "description": "List files"}),
                ToolCall("Bash", {"command": "pwd", "description": "Print working directory"}),
            ],
        )
    return _finish(ctx, "Done looking around.")


def _slow(ctx: ScriptContext) -> Reply | None:
    secs = ctx.args.strip() or "3"
    if ctx.step == 0:
        return Reply(tools=[ToolCall("Bash", {"command": f"sleep {secs}", "description": f"Wait {secs} seconds"})])
    return _finish(ctx, f"Slept {secs} seconds.")


def _wait(ctx: ScriptContext) -> Reply | None:
    secs = float(ctx.args.strip() or "3")
    return Reply(text=f"Thought for {secs:g} seconds.", delay=secs)


def _ask(ctx: ScriptContext) -> Reply | None:
    question = ctx.args.strip() or "Which colour?"
    if ctx.step == 0:
        return Reply(
            tools=[
                ToolCall(
                    "AskUserQuestion",
                    {
                        "questions": [
                            {
                                "question": question,
                                "header": "Choice",
                                "options": [
                                    {"label": "Red", "description": "The red one"},
                                    {"label": "Blue", "description": "The blue one"},
                                ],
                                "multiSelect": False,
                            }
                        ]
                    },
                )
            ]
        )
    return _finish(ctx, "Thanks for answering: " + ctx.result_text()[:200])


def _text(ctx: ScriptContext) -> Reply | None:
    return Reply(text=ctx.args.strip() or "OK.")


def _error(ctx: ScriptContext) -> Reply | None:
    a = ctx.args.split()
    status = int(a[0]) if a else 500
    etype = a[1] if len(a) > 1 else {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return Reply(error=(status, etype, f"scripted {etype}"))


_FLAKY_COUNTS: dict[str, int] = {}
_FLAKY_LOCK = threading.Lock()


def _error_type(status: int) -> str:
    return {429: "rate_limit_error", 529: "overloaded_error", 401: "authentication_error",
            403: "permission_error"}.get(status, "api_error")


def error_reply(status: int, retry_after: float | None = None, should_retry: bool = False,
                etype: str | None = None) -> Reply:
    """An HTTP error answer with the headers the real API sends for it."""
    etype = etype or _error_type(status)
    headers = {"x-should-retry": "true" if should_retry else "false"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
        if status == 429:
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + retry_after))
            headers["anthropic-ratelimit-requests-reset"] = reset
    return Reply(error=(status, etype, f"scripted {etype}"), error_headers=headers)


def _flaky(ctx: ScriptContext) -> Reply | None:
    a = ctx.args.split()
    n = int(a[0]) if a else 1
    status = int(a[1]) if len(a) > 1 else 429
    retry_after = None if len(a) < 3 or a[2] == "-" else float(a[2])
    should_retry = len(a) > 3 and a[3] == "retry"
    key = ctx.args.strip() + "|" + json.dumps(ctx.messages[:1], sort_keys=True)[:2000]
    with _FLAKY_LOCK:
        seen = _FLAKY_COUNTS.get(key, 0)
        _FLAKY_COUNTS[key] = seen + 1
    if seen < n:
        return error_reply(status, retry_after, should_retry)
    return Reply(text=f"Recovered after {n} error(s).")
def _steps(ctx: ScriptContext) -> Reply | None:
    plan = [p.strip() for p in ctx.args.split(";;")]
    if ctx.step >= len(plan):
        return Reply(text="All steps done.")
    verb, _, rest = plan[ctx.step].partition(" ")
    n = f"Step {ctx.step + 1} of {len(plan)}"
    if verb == "write":
        path, _, content = rest.strip().partition(" ")
        return Reply(text=f"{n}: writing {path}.",
                     tools=[ToolCall("Write", {"file_path": ctx.path(path), "content": content})])
    if verb == "bash":
        return Reply(text=f"{n}: running a command.",
                     tools=[ToolCall("Bash", {"command": rest.strip(), "description": f"{n}"})])
    if verb == "read":
        return Reply(tools=[ToolCall("Read", {"file_path": ctx.path(rest.strip())})])
    if verb == "stop":
        return Reply(text=f"{n}: stopping here until I am told to go on.")
    if verb == "text":
        # A text-only message ends the CLI's turn too; so "text" is a stop that says something.
        return Reply(text=rest.strip() or "OK.")
    return Reply(text=f"{n}: unknown step {verb!r}.")


#: name -> script. Tests may add their own (``api.scenarios["mine"] = fn``).
SCENARIOS: dict[str, Script] = {
    "write": _write,
    "edit": _edit,
    "read": _read,
    "bash": _bash,
    "multi": _multi,
    "slow": _slow,
    "wait": _wait,
    "ask": _ask,
    "text": _text,
    "error": _error,
    "flaky": _flaky,
    "steps": _steps,
}

_SCENARIO_RE = re.compile(r"SCENARIO:([A-Za-z][\w-]*)[ \t]*([^\n]*)")
_CWD_RES = [
    re.compile(r"Primary working directory:\s*(\S[^\n]*)"),
    re.compile(r"Working directory:\s*(\S[^\n]*)"),
    re.compile(r"<cwd>([^<]+)</cwd>"),
]


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return []


_NOT_TYPED = ("<system-reminder>", "[Request interrupted by user")


def _is_prompt(msg: dict[str, Any]) -> bool:
    """A user message that carries text the human typed.

    Tool results come back as user messages too; after a denied tool the CLI sends the
    rejected ``tool_result``, a ``[Request interrupted by user for tool use]`` text and
    the next prompt together in one user message -- that one is a prompt.
    """
    if msg.get("role") != "user":
        return False
    c = msg.get("content")
    if isinstance(c, str):
        return True
    return any(t.strip() and not t.lstrip().startswith(_NOT_TYPED) for t in _texts(c))


def _system_text(body: dict[str, Any]) -> str:
    s = body.get("system")
    return "\n".join(_texts(s)) if s is not None else ""


def _find_cwd(body: dict[str, Any]) -> str | None:
    hay = [_system_text(body)]
    for m in body.get("messages", []):
        hay.extend(_texts(m.get("content")))
    for text in hay:
        for rx in _CWD_RES:
            m = rx.search(text)
            if m:
                return m.group(1).strip()
    return None


# --------------------------------------------------------------------------- log


@dataclass
class ApiCall:
    """One HTTP request the server received and what it answered."""

    seq: int
    time: float
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    kind: str  #: "messages" (main loop, has tools), "side" (no tools), "count_tokens", "other"
    stream: bool = False
    model: str | None = None
    scenario: str | None = None
    step: int | None = None
    status: int = 200
    message_id: str | None = None
    request_id: str | None = None
    usage: dict[str, Any] | None = None  #: the final usage sent (as in ``message_delta``)
    stop_reason: str | None = None
    content: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tool_names(self) -> list[str]:
        return [b["name"] for b in self.content if b.get("type") == "tool_use"]


# --------------------------------------------------------------------------- usage


class _Usage:
    """Deterministic, varied usage figures (every response differs)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._n = 0

    def make(self, kind: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            r = self._rng
            if kind == "messages":
                self._n += 1
                inp = r.randint(3, 900)
                c5 = r.randint(150, 4000)
                c1 = 0 if self._n % 3 == 0 else r.randint(100, 2500)  # 1h writes on 2 of 3 responses
                read = r.randint(2000, 40000)
            else:
                inp = r.randint(40, 600)
                c5 = c1 = read = 0
            out = max(1, len(json.dumps(content)) // 4) + r.randint(3, 60)
        return {
            "input_tokens": inp,
            "cache_creation_input_tokens": c5 + c1,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": c5, "ephemeral_1h_input_tokens": c1},
            "output_tokens": out,
            "service_tier": "standard",
        }


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "FakeAnthropic"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:  # type: ignore[override]
        with self.conns_lock:
            self.conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conns_lock:
                self.conns.discard(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # an idle keep-alive connection is dropped after this
    _call: ApiCall | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    # -- plumbing

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send_json(self, status: int, obj: Any, request_id: str, extra: dict[str, str] | None = None) -> None:
        if self._call is not None:
            self.server.owner._record(self._call)
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", request_id)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _sse(self, event: str, data: dict[str, Any]) -> None:
        self._chunk(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    # -- verbs

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        owner = self.server.owner
        raw = self._read_body() if self.command == "POST" else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        rid = "req_" + uuid.uuid4().hex[:24]
        call = owner._new_call(self.command, path, parse_qs(url.query), dict(self.headers.items()), body)
        call.request_id = rid
        self._call = call
        try:
            if self.command == "POST" and path.endswith("/v1/messages/count_tokens"):
                call.kind = "count_tokens"
                n = max(1, len(raw) // 4)
                call.usage = {"input_tokens": n}
                self._send_json(200, {"input_tokens": n}, rid)
            elif self.command == "POST" and path.endswith("/v1/messages") and isinstance(body, dict):
                self._messages(owner, call, body, rid)
            else:
                call.kind = "other"
                call.status = 404
                self._send_json(
                    404, {"type": "error", "error": {"type": "not_found_error", "message": "fake API: no such route"}}, rid
                )
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            owner._record(call)

    def _messages(self, owner: "FakeAnthropic", call: ApiCall, body: dict[str, Any], rid: str) -> None:
        call.kind = "messages" if body.get("tools") else "side"
        call.stream = bool(body.get("stream"))
        call.model = body.get("model") or owner.default_model
        reply = owner._reply_for(call, body)
        if reply.delay:
            owner._record(call)  # visible in the log while the model "thinks"
            time.sleep(reply.delay)
        if reply.error:
            status, etype, msg = reply.error
            call.status = status
            self._send_json(
                status, {"type": "error", "error": {"type": etype, "message": msg}}, rid, reply.error_headers
            )
            return
        content = reply.blocks()
        usage = owner._usage.make(call.kind, content)
        mid = "msg_" + uuid.uuid4().hex[:24]
        call.message_id, call.usage, call.stop_reason, call.content = mid, usage, reply.stop_reason, content
        message = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if not call.stream:
            self._send_json(200, message, rid)
            return

        owner._record(call)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", rid)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        gap = owner.event_gap
        start_usage = dict(usage, output_tokens=1)
        self._sse(
            "message_start",
            {"type": "message_start", "message": dict(message, content=[], stop_reason=None, usage=start_usage)},
        )
        self._sse("ping", {"type": "ping"})
        for i, block in enumerate(content):
            if block["type"] == "text":
                self._sse("content_block_start", {"type": "content_block_start", "index": i,
                                                  "content_block": {"type": "text", "text": ""}})
                for piece in _pieces(block["text"], 3):
                    time.sleep(gap)
                    self._sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                      "delta": {"type": "text_delta", "text": piece}})
            else:
                self._sse("content_block_start", {"type": "content_block_start", "index": i,
                                                  "content_block": dict(block, input={})})
                for piece in _pieces(json.dumps(block["input"]), 3):
                    time.sleep(gap)
                    self._sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                      "delta": {"type": "input_json_delta", "partial_json": piece}})
            self._sse("content_block_stop", {"type": "content_block_stop", "index": i})
        delta_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                             "cache_read_input_tokens", "output_tokens")}
        self._sse("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                                    "usage": delta_usage})
        self._sse("message_stop", {"type": "message_stop"})
        self._chunk(b"")


def _pieces(s: str, n: int) -> Iterable[str]:
    """``s`` cut into ``n`` roughly equal non-empty pieces (at least one)."""
    if not s:
        return [""]
    size = max(1, -(-len(s) // n))
    return [s[i : i + size] for i in range(0, len(s), size)]


class FakeAnthropic:
    """The scripted API server. Use as a context manager, or ``start()`` / ``stop()``.

    ``base_url`` is what ``ANTHROPIC_BASE_URL`` must be set to. ``calls`` is the
    request log (a copy, oldest first).
    """

    def __init__(self, *, seed: int = 1, host: str = "127.0.0.1", port: int = 0,
                 default_model: str = "claude-opus-4-8", event_gap: float = 0.0) -> None:
        self.scenarios: dict[str, Script] = dict(SCENARIOS)
        #: scripts that go on at a later prompt without a SCENARIO of its own
        self.resumable: set[str] = {"steps"}
        self.default_model = default_model
        self.event_gap = event_gap  #: seconds between streamed deltas
        self._host, self._port = host, port
        self._usage = _Usage(seed)
        self._calls: list[ApiCall] = []
        self._outage: dict[str, Any] | None = None
        self._seq = 0
        self._lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> "FakeAnthropic":
        if self._server is not None:
            return self
        srv = _Server((self._host, self._port), _Handler)
        srv.owner = self
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        with srv.conns_lock:
            conns = list(srv.conns)
        for c in conns:  # idle keep-alive connections would otherwise linger
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        srv.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- log

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def usage_calls(self) -> list[ApiCall]:
        """Answered ``/v1/messages`` calls (main and side) -- the ones the CLI pays for."""
        return [c for c in self.calls if c.kind in ("messages", "side") and c.usage is not None and c.status == 200]

    def wait_for(self, pred: Callable[[list[ApiCall]], bool], timeout: float = 30.0) -> bool:
        """Block until ``pred(calls)`` is true (re-checked on every new call) or timeout."""
        end = time.monotonic() + timeout
        with self._lock:
            while not pred(list(self._calls)):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
        return True

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def _new_call(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                  body: Any) -> ApiCall:
        with self._lock:
            self._seq += 1
            seq = self._seq
        return ApiCall(seq=seq, time=time.time(), method=method, path=path, query=query, headers=headers,
                       body=body, kind="other")

    def _record(self, call: ApiCall) -> None:
        """Log ``call`` (once). Called before the response is sent, so a client that has
        its answer always finds the call in the log."""
        with self._lock:
            if not any(c is call for c in self._calls):
                self._calls.append(call)
                self._calls.sort(key=lambda c: c.seq)
            self._lock.notify_all()

    # -- outages

    def outage(self, status: int, *, count: int | None = None, until: float | None = None,
               lasting: float | None = None, retry_after: float | None = None,
               should_retry: bool = False, side_calls: bool = True) -> None:
        """Answer every ``/v1/messages`` request with ``status`` until ``count`` requests were
        refused or the clock passes ``until`` (all None: until :meth:`recover`).

        ``lasting`` sets ``until`` that many seconds after the first refusal, so a slow start-up
        (a loaded machine) cannot use up the outage before the agent's first request.
        """
        with self._lock:
            self._outage = {"status": status, "left": count, "until": until, "lasting": lasting,
                            "retry_after": retry_after, "should_retry": should_retry,
                            "side": side_calls}

    def recover(self) -> None:
        with self._lock:
            self._outage = None

    def _outage_reply(self, call: ApiCall) -> Reply | None:
        with self._lock:
            o = self._outage
            if o is None or (call.kind == "side" and not o["side"]):
                return None
            if (o["until"] is not None and time.time() >= o["until"]) or o["left"] == 0:
                self._outage = None
                return None
            if o["until"] is None and o["lasting"] is not None:
                o["until"] = time.time() + o["lasting"]
            if o["left"] is not None:
                o["left"] -= 1
            retry_after = o["retry_after"]
            if retry_after is not None and o["until"] is not None:
                retry_after = max(1.0, round(o["until"] - time.time()))
        return error_reply(o["status"], retry_after, o["should_retry"])

    # -- the model

    def _reply_for(self, call: ApiCall, body: dict[str, Any]) -> Reply:
        down = self._outage_reply(call)
        if down is not None:
            return down
        messages = body.get("messages") or []
        if call.kind == "side":
            return self._side_reply(body)
        idx = next((i for i in range(len(messages) - 1, -1, -1) if _is_prompt(messages[i])), None)
        if idx is None:
            return Reply(text="OK.")
        newest = "\n".join(_texts(messages[idx].get("content")))
        found = list(_SCENARIO_RE.finditer(newest))
        if not found:  # a later prompt: a resumable plan started earlier goes on
            for j in range(idx - 1, -1, -1):
                if not _is_prompt(messages[j]):
                    continue
                earlier = list(_SCENARIO_RE.finditer("\n".join(_texts(messages[j].get("content")))))
                if earlier:
                    if earlier[-1].group(1).lower() in self.resumable:
                        idx, found = j, earlier
                    break
        if not found:
            return Reply(text="OK.")
        name, args = found[-1].group(1).lower(), found[-1].group(2)
        step = sum(1 for m in messages[idx + 1 :] if m.get("role") == "assistant")
        last = messages[-1] if messages else {}
        results = [b for b in last.get("content", []) if isinstance(b, dict) and b.get("type") == "tool_result"] \
            if step and isinstance(last.get("content"), list) else []
        call.scenario, call.step = name, step
        script = self.scenarios.get(name)
        if script is None:
            return Reply(text=f"Unknown scenario {name!r}.")
        ctx = ScriptContext(args=args, step=step, cwd=_find_cwd(body), messages=messages, tool_results=results,
                            prompt=newest)
        return script(ctx) or Reply(text="Done.")

    def _side_reply(self, body: dict[str, Any]) -> Reply:
        hay = _system_text(body) + "\n" + "\n".join(
            t for m in body.get("messages", []) for t in _texts(m.get("content")))
        if "json" in hay.lower() and "title" in hay.lower():
            return Reply(text=json.dumps({"title": "Scripted session"}))
        return Reply(text="Scripted session")
