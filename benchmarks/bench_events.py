"""Hook events against a real Jupyter server: hook overhead, ingest throughput, stream latency.

    python benchmarks/bench_events.py [--runs 200] [--senders 20] [--per-sender 500]
                                      [--proc-per-sender 25] [--latency-runs 200]
                                      [--only abc] [--as-is] [--profile-server FILE.prof]
                                      [--strict]

One command, one server: starts ``jupyter server`` with Hive Lab on 127.0.0.1, a free port and a
private tmux socket (like tests/conftest.py's ``HiveServer``, but with the default
``poll_interval``/``spool_interval`` a user gets), spawns sessions of a "hooked" profile (Claude
Code hooks installed, the agent is ``cat``), then measures, in this order:

A. Hook overhead. The hook command exactly as installed in the session's
   ``.claude/settings.local.json`` (``sh -c 'test -f ... && exec python -S -E -s
   <data_dir>/bin/hive_lab_hook.pyc --agent claude'``, the way Claude Code runs it), a real
   PreToolUse payload on stdin, wall time until it exits, i.e. with the real server's answer.
   Round-robin with ``true``, ``sh -c true``, ``python3 empty.py`` and the other cases of
   bench_hook.py (same ``run_bench``), all against this server.
B. Ingest throughput with 20 concurrent senders: 20 keep-alive HTTP/1.1 connections (asyncio,
   raw sockets), one session each, each posting the 14 sample payloads in turn (plus a ``seq``
   field, and the sender's own Claude ``session_id``: one agent session per sender) with
   distinct dedup keys as fast as the server answers. Run twice: with no stream
   client, and with a WebSocket client connected (what a JupyterLab UI does), which also gives
   the hook->WebSocket latency under saturation. Then the same with the real hook client
   processes (20 threads, each spawning the installed command one after another). Verified:
   every key and every ``seq`` stored exactly once, per-session order kept (API + read-only
   SQLite), replays answered as duplicates.
C. Latency from hook call to the event arriving on a WebSocket client (server token, ``after``
   = last id): one event at a time, t0 taken right before spawning the hook client (or before
   writing the POST), t1 when the WebSocket message is read.

Every phase prints the load average before and after (the machine is shared; figures taken
at a load above 0.75 per core are flagged as noisy). Exits 1 if an event was lost or stored
twice (or the server failed); a missed speed target is reported, not fatal, unless
``--strict``. Cleans up its server, tmux socket and temp dir. Results: benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # importing bench_hook must not leave benchmarks/__pycache__

import bench_hook  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from support.server import BIN, HiveServer  # noqa: E402
from hive_lab.core.installers import is_ours  # noqa: E402

SAMPLES = Path("/work/shared/samples/claude-code-2.1.197-hooks.jsonl")
if not SAMPLES.exists():
    SAMPLES = ROOT.parent / "shared" / "samples" / "claude-code-2.1.197-hooks.jsonl"
PROFILE = "hooked"  # Claude-style hooks, the agent itself is `cat`

TARGET_HOOK_MS = 10.0
TARGET_EVENTS_S = 2000.0
TARGET_WS_P95_MS = 100.0


# -- small helpers -------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (same rule as bench_hook.py)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms_stats(seconds: list[float]) -> str:
    ms = [s * 1e3 for s in seconds]
    return (f"p50 {statistics.median(ms):7.2f} ms  p95 {pct(ms, 0.95):7.2f} ms  "
            f"max {max(ms):7.2f} ms  (n={len(ms)})")


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f}"


def own_cpu() -> float:
    """CPU seconds of this process (the load generator and the WebSocket client)."""
    t = os.times()
    return t.user + t.system


def children_cpu() -> float:
    """CPU seconds of this process's finished children (hook client processes)."""
    t = os.times()
    return t.children_user + t.children_system


def load_note() -> str:
    one = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if one > 0.75 * cores:
        return (f"  ** 1-min load {one:.2f} on {cores} cores: other work shares the CPU, figures "
                f"are noisy; re-run when the machine is quieter **")
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_lines() -> list[bytes]:
    return [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]


def with_seq(line: bytes, seq: int, agent_session: str | None = None) -> bytes:
    """A real sample payload plus a ``seq`` field (what the e2e tests do to check order).

    With ``agent_session``, the payload's ``session_id`` and ``transcript_path`` become that
    agent session's: one sender = one Claude Code session, as in real use. The sample as it is
    holds two Claude sessions (its first line is the SessionEnd of the previous one), so
    cycling it unchanged would switch the transcript every 14 events (``--as-is``).
    """
    data = json.loads(line)
    data["seq"] = seq
    if agent_session is not None and "session_id" in data:
        old = data["session_id"]
        data["session_id"] = agent_session
        if isinstance(data.get("transcript_path"), str):
            data["transcript_path"] = data["transcript_path"].replace(old, agent_session)
    return json.dumps(data).encode()


def agent_session_id(name: str) -> str:
    """A stable, UUID-shaped Claude session id per benchmark session."""
    h = sha1(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def machine() -> str:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    tmux = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {mem}, {tmux}, "
            f"Python {platform.python_version()}")


# -- the server ----------------------------------------------------------------------------
class Server(HiveServer):
    """The tests' server harness (tests/support/server.py), plus what the benchmark measures."""

    def __init__(self, base: Path, profile_out: str | None = None) -> None:
        launcher = ([sys.executable, "-m", "cProfile", "-o", profile_out, "-m", "jupyter_server"]
                    if profile_out else [str(BIN / "jupyter"), "server"])
        # the server's default intervals, not the tests' quick ones
        super().__init__(base, socket_name=f"hivebench-{secrets.token_hex(4)}",
                         launcher=launcher, poll_interval=1.0, spool_interval=5.0)

    @property
    def log_path(self) -> Path:
        return self.base / f"server-{self.port}.log"

    def stop(self) -> None:  # type: ignore[override]
        super().stop()
        self.kill_tmux()

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (not its children)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def spawn(self, name: str) -> Path:
        cwd = self.root / name
        cwd.mkdir()
        status, body = self.request("POST", "sessions", {"name": name, "agent": PROFILE,
                                                         "command": None, "cwd": str(cwd)})
        if status != 201:
            raise SystemExit(f"spawn {name}: {status} {body}")
        return cwd

    def secret(self, name: str) -> str:
        return (self.data_dir / "sessions" / name / "secret").read_text().strip()

    def last_id(self) -> int:
        return int(self.get("status")["last_event_id"])

    def events(self, session: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.get(f"events?session={session}&after={after}&limit=10000")["events"]
            if not page:
                return out
            out += page
            after = page[-1]["id"]

    def agent_env(self, session: str) -> dict[str, str]:
        """What a hook inherits from the agent spawned in tmux (the variables that matter)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.base),
                "HIVE_LAB_DIR": str(self.data_dir), "HIVE_LAB_SESSION": session,
                "HIVE_LAB_AGENT": PROFILE, "CLAUDE_PROJECT_DIR": str(self.root / session)}


def installed_command(cwd: Path, event: str = "PreToolUse") -> str:
    """Our hook command as the server wrote it into the session's Claude settings."""
    settings = json.loads((cwd / ".claude" / "settings.local.json").read_text())
    for group in settings["hooks"][event]:
        for entry in group.get("hooks", []):
            if is_ours(entry):
                return entry["command"]
    raise SystemExit(f"no Hive Lab hook for {event} in {cwd}/.claude/settings.local.json")


# -- raw HTTP/1.1 keep-alive sender -------------------------------------------------------
class Sender:
    """One keep-alive connection posting hook payloads to the real ingest endpoint."""

    def __init__(self, port: int, session: str, secret: str) -> None:
        self.port, self.session, self.secret = port, session, secret
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def request(self, key: str, body: bytes) -> bytes:
        head = (f"POST /hive_lab/api/hooks HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nX-Hive-Session: {self.session}\r\n"
                f"X-Hive-Secret: {self.secret}\r\nX-Hive-Key: {key}\r\n"
                f"X-Hive-Fired: {time.time():.6f}\r\nX-Hive-Agent: claude\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

    async def post(self, key: str, body: bytes) -> tuple[int, dict[str, Any]]:
        assert self.reader and self.writer
        self.writer.write(self.request(key, body))
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readline()
        else:
            data = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            await self.connect()
        return status, json.loads(data) if data else {}

    async def close(self) -> None:
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


# -- WebSocket client ----------------------------------------------------------------------
class Watcher:
    """Reads ``events/stream`` from ``after``; notes when each (session, seq) arrives.

    On ``resync`` (it fell behind) it reconnects from the id it was given, like a UI would.
    """

    def __init__(self, server: Server, after: int) -> None:
        self.server, self.last = server, after
        self.arrived: dict[tuple[str, int], float] = {}
        self.counts: dict[tuple[str, int], int] = {}
        self.waiters: dict[tuple[str, int], asyncio.Future[float]] = {}
        self.resyncs = 0
        self.messages = 0
        self.task: asyncio.Task[None] | None = None
        self.live = asyncio.Event()

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())
        await asyncio.wait_for(self.live.wait(), 30)

    async def _run(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        while True:
            url = (self.server.url.replace("http", "ws", 1)
                   + f"hive_lab/api/events/stream?after={self.last}")
            conn = await websocket_connect(HTTPRequest(
                url, headers={"Authorization": f"token {self.server.token}"}))
            try:
                while True:
                    message = await conn.read_message()
                    now = time.perf_counter()
                    if message is None:
                        raise ConnectionError("stream closed by the server")
                    self.messages += 1
                    data = json.loads(message)
                    if "type" in data:
                        if data["type"] == "live":
                            self.live.set()
                        elif data["type"] == "resync":
                            self.resyncs += 1
                            self.last = int(data["after"])
                            break
                        continue
                    self.last = data["id"]
                    seq = data["payload"].get("seq") if data["agent"] != "hive" else None
                    if isinstance(seq, int):
                        key = (data["session"], seq)
                        self.counts[key] = self.counts.get(key, 0) + 1
                        self.arrived.setdefault(key, now)
                        waiter = self.waiters.pop(key, None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(now)
            finally:
                conn.close()

    async def wait(self, key: tuple[str, int], timeout: float = 10.0) -> float:
        if key in self.arrived:
            return self.arrived[key]
        future = asyncio.get_running_loop().create_future()
        self.waiters[key] = future
        return await asyncio.wait_for(future, timeout)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass


# -- A. hook overhead ----------------------------------------------------------------------
def bench_overhead(srv: Server, runs: int) -> tuple[list[bench_hook.Case], str, list[str]]:
    name = "overhead"
    cwd = srv.spawn(name)
    command = installed_command(cwd)
    env = srv.agent_env(name)
    before = len([e for e in srv.events(name) if e["agent"] != "hive"])

    def extra(work: Path, payload: bytes) -> list[bench_hook.Case]:
        return [
            bench_hook.Case("sh -c true", ["/bin/sh", "-c", "true"], env, payload),
            bench_hook.Case("installed command via sh -c (as Claude Code runs it)",
                            ["/bin/sh", "-c", command], env, payload, True),
        ]

    warmup = 10
    cases = bench_hook.run_bench(runs, session=name, data_dir=srv.data_dir, warmup=warmup,
                                 extra_cases=extra)
    problems = [f"{c.name}: {c.failures} runs exited non-zero" for c in cases if c.failures]
    expected = (runs + warmup) * sum(c.delivers for c in cases)
    stored = len([e for e in srv.events(name) if e["agent"] != "hive"]) - before
    if stored != expected:
        problems.append(f"overhead: server stored {stored} hook events, expected {expected}")
    spooled = list((srv.data_dir / "spool").glob("*")) if (srv.data_dir / "spool").exists() else []
    if spooled:
        problems.append(f"overhead: spool files present (hook client fell back): {spooled}")
    return cases, command, problems


# -- B. ingest throughput ------------------------------------------------------------------
@dataclass
class IngestResult:
    label: str
    events: int
    seconds: float
    server_cpu: float
    request_s: list[float]
    ws_latency_s: list[float] = field(default_factory=list)
    ws_resyncs: int = 0
    ws_missing: int = 0
    problems: list[str] = field(default_factory=list)
    state_events: int = 0
    spooled: int = 0
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def verify(srv: Server, expected: dict[str, int], ordered: bool = True) -> tuple[list[str], int]:
    """Every seq of every session exactly once (and in order); returns problems, #state events."""
    problems: list[str] = []
    state_events = 0
    for name, n in expected.items():
        events = srv.events(name)
        hooks = [e for e in events if e["agent"] != "hive"]
        state_events += sum(1 for e in events if e["event"] == "StateChanged")
        seqs = [e["payload"].get("seq") for e in hooks]
        if sorted(seqs) != list(range(n)):
            missing = set(range(n)) - set(seqs)
            dups = len(seqs) - len(set(seqs))
            problems.append(f"{name}: {len(seqs)} stored of {n}, {len(missing)} missing, "
                            f"{dups} twice")
        elif ordered and seqs != list(range(n)):
            problems.append(f"{name}: per-session order not kept")
    return problems, state_events


async def ingest_raw(srv: Server, label: str, prefix: str, senders: int, per_sender: int,
                     with_stream: bool, as_is: bool = False) -> IngestResult:
    lines = sample_lines()
    names = [f"{prefix}{i:02d}" for i in range(senders)]
    for name in names:
        srv.spawn(name)
    work: dict[str, list[tuple[str, bytes]]] = {
        name: [(f"{prefix}{i:02d}{secrets.token_hex(12)}{seq:06d}",
                with_seq(lines[seq % len(lines)], seq, None if as_is else agent_session_id(name)))
               for seq in range(per_sender)]
        for i, name in enumerate(names)}
    clients = [Sender(srv.port, name, srv.secret(name)) for name in names]
    for c in clients:
        await c.connect()
    watcher = Watcher(srv, srv.last_id()) if with_stream else None
    if watcher:
        await watcher.start()
    sent_at: dict[tuple[str, int], float] = {}
    answers: dict[str, list[tuple[str, int, dict[str, Any]]]] = {n: [] for n in names}
    request_s: list[float] = []

    async def run(client: Sender) -> None:
        for seq, (key, body) in enumerate(work[client.session]):
            t0 = time.perf_counter()
            sent_at[(client.session, seq)] = t0
            status, answer = await client.post(key, body)
            request_s.append(time.perf_counter() - t0)
            answers[client.session].append((key, status, answer))

    cpu0, own0 = srv.cpu_seconds(), own_cpu()
    t0 = time.perf_counter()
    await asyncio.gather(*(run(c) for c in clients))
    seconds = time.perf_counter() - t0
    cpu = srv.cpu_seconds() - cpu0
    total = senders * per_sender
    result = IngestResult(label, total, seconds, cpu, request_s, client_cpu=own_cpu() - own0)

    # Answers: all 200, none a duplicate, distinct ids, increasing per connection.
    ids: list[int] = []
    for name in names:
        got = answers[name]
        bad = [(s, a) for _, s, a in got if s != 200 or a.get("duplicate") is not False]
        if bad:
            result.problems.append(f"{name}: {len(bad)} bad answers, e.g. {bad[0]}")
        own = [a.get("id") for _, s, a in got if s == 200]
        if own != sorted(own):
            result.problems.append(f"{name}: ids not increasing in send order")
        ids += own
    if len(set(ids)) != total:
        result.problems.append(f"{len(set(ids))} distinct ids for {total} events")

    if watcher:
        deadline = time.monotonic() + 30
        while len(watcher.arrived) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        result.ws_latency_s = [watcher.arrived[k] - t for k, t in sent_at.items()
                               if k in watcher.arrived]
        result.ws_missing = total - len(watcher.arrived)
        result.ws_resyncs = watcher.resyncs
        twice = sum(1 for v in watcher.counts.values() if v > 1)
        if result.ws_missing or twice:
            result.problems.append(f"stream: {result.ws_missing} events never arrived, "
                                   f"{twice} arrived twice")
        await watcher.stop()

    # Stored: every seq once, in order (API) and every dedup key once (SQLite, read-only).
    problems, result.state_events = verify(srv, {n: per_sender for n in names})
    result.problems += problems
    db = sqlite3.connect(f"file:{srv.data_dir / 'hive.db'}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(names))
        rows = db.execute(f"SELECT key FROM events WHERE session IN ({marks}) AND agent != 'hive'",
                          names).fetchall()
    finally:
        db.close()
    stored_keys = [r[0] for r in rows]
    sent_keys = {k for name in names for k, _ in work[name]}
    if len(stored_keys) != total or set(stored_keys) != sent_keys:
        result.problems.append(f"db: {len(stored_keys)} rows, {len(sent_keys - set(stored_keys))} "
                               f"sent keys missing, {len(set(stored_keys) - sent_keys)} unknown")

    # Replays with the same keys: answered as duplicates with the first id, nothing stored.
    first = {k: a["id"] for name in names for k, _, a in answers[name]}
    replay = [(names[i % senders], work[names[i % senders]][i]) for i in range(0, min(per_sender, 50))]
    for name, (key, body) in replay:
        client = next(c for c in clients if c.session == name)
        status, answer = await client.post(key, body)
        if status != 200 or answer.get("duplicate") is not True or answer.get("id") != first[key]:
            result.problems.append(f"replay of {key}: {status} {answer}")
            break
    for c in clients:
        await c.close()
    problems, _ = verify(srv, {n: per_sender for n in names})
    result.problems += [f"after replay: {p}" for p in problems]
    return result


def ingest_processes(srv: Server, prefix: str, senders: int, per_sender: int) -> IngestResult:
    """20 threads, each running the installed hook command once per event, back to back."""
    lines = sample_lines()
    names = [f"{prefix}{i:02d}" for i in range(senders)]
    commands = {name: installed_command(srv.spawn(name)) for name in names}
    request_s: list[float] = []
    lock = threading.Lock()
    failures: list[str] = []

    def run(name: str) -> None:
        env = srv.agent_env(name)
        for seq in range(per_sender):
            body = with_seq(lines[seq % len(lines)], seq, agent_session_id(name))
            t0 = time.perf_counter()
            proc = subprocess.run(["/bin/sh", "-c", commands[name]], input=body, env=env,
                                  capture_output=True)
            dt = time.perf_counter() - t0
            with lock:
                request_s.append(dt)
                if proc.returncode != 0 or proc.stdout:
                    failures.append(f"{name}/{seq}: exit {proc.returncode} {proc.stdout[:80]!r}")

    cpu0, kids0 = srv.cpu_seconds(), children_cpu()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(run, names))
    seconds = time.perf_counter() - t0
    cpu = srv.cpu_seconds() - cpu0
    result = IngestResult("hook client processes (installed command)", senders * per_sender,
                          seconds, cpu, request_s, client_cpu=children_cpu() - kids0)
    result.problems += failures[:5]
    spool = srv.data_dir / "spool"
    spooled = [p for p in spool.glob("*") if p.is_file()] if spool.exists() else []
    result.spooled = sum(len(p.read_bytes().splitlines()) for p in spooled)
    if spooled:  # the server drains every spool_interval (5 s by default)
        deadline = time.monotonic() + 30
        while any(p.is_file() for p in spool.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.2)
    problems, result.state_events = verify(srv, {n: per_sender for n in names},
                                           ordered=not spooled)
    result.problems += problems
    return result


# -- C. hook -> WebSocket latency ----------------------------------------------------------
async def latency(srv: Server, runs: int) -> tuple[list[float], list[float], list[float], list[str]]:
    """(hook client -> WS, hook client wall, POST -> WS) over ``runs`` events each."""
    problems: list[str] = []
    name_h, name_p = "latency-hook", "latency-post"
    command = installed_command(srv.spawn(name_h))
    srv.spawn(name_p)
    env = srv.agent_env(name_h)
    payload = next(line for line in sample_lines() if b'"PreToolUse"' in line)
    watcher = Watcher(srv, srv.last_id())
    await watcher.start()
    loop = asyncio.get_running_loop()
    hook_ws: list[float] = []
    hook_wall: list[float] = []
    post_ws: list[float] = []
    warm = 5

    def fire(body: bytes) -> tuple[float, float, int]:
        t0 = time.perf_counter()
        proc = subprocess.run(["/bin/sh", "-c", command], input=body, env=env, capture_output=True)
        return t0, time.perf_counter(), proc.returncode

    with ThreadPoolExecutor(1) as pool:
        for seq in range(runs + warm):
            t0, t_exit, code = await loop.run_in_executor(pool, fire, with_seq(payload, seq))
            try:
                t1 = await watcher.wait((name_h, seq))
            except asyncio.TimeoutError:
                problems.append(f"latency: hook event {seq} never reached the WebSocket")
                continue
            if code != 0:
                problems.append(f"latency: hook exit {code}")
            if seq >= warm:
                hook_ws.append(t1 - t0)
                hook_wall.append(t_exit - t0)
            await asyncio.sleep(0.01)

    sender = Sender(srv.port, name_p, srv.secret(name_p))
    await sender.connect()
    for seq in range(runs + warm):
        body = with_seq(payload, seq)
        key = f"lat{secrets.token_hex(12)}{seq:06d}"
        t0 = time.perf_counter()
        status, answer = await sender.post(key, body)
        try:
            t1 = await watcher.wait((name_p, seq))
        except asyncio.TimeoutError:
            problems.append(f"latency: POST event {seq} never reached the WebSocket")
            continue
        if status != 200:
            problems.append(f"latency: POST answered {status} {answer}")
        if seq >= warm:
            post_ws.append(t1 - t0)
        await asyncio.sleep(0.01)
    await sender.close()
    await watcher.stop()
    p, _ = verify(srv, {name_h: runs + warm, name_p: runs + warm})
    return hook_ws, hook_wall, post_ws, problems + p


# -- main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="hook overhead runs per case")
    ap.add_argument("--senders", type=int, default=20)
    ap.add_argument("--per-sender", type=int, default=500, help="raw POSTs per sender")
    ap.add_argument("--proc-per-sender", type=int, default=25,
                    help="hook client processes per sender thread")
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--only", default="abc", help="phases to run: any of a, b, c")
    ap.add_argument("--as-is", action="store_true",
                    help="B: also ingest the sample's payloads unchanged (two Claude sessions "
                         "alternate, so the session's transcript changes every 14 events)")
    ap.add_argument("--profile-server", metavar="FILE",
                    help="run the server under cProfile, write stats to FILE at shutdown")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    # A SIGTERM (e.g. run_all.py stopped) still stops our server and tmux socket.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print("# bench_events: Hive Lab hook events against a real Jupyter server")
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}; {machine()}")
    print(f"at start: {load()}", flush=True)
    if load_note():
        print(load_note())
    problems: list[str] = []
    summary: list[str] = []
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        srv = Server(Path(tmp), profile_out=args.profile_server)
        try:
            srv.start()
            print(f"server: jupyter_server pid {srv.proc.pid if srv.proc else '?'} on {srv.url}, "
                  f"tmux -L {srv.socket_name}, default poll_interval 1 s / spool_interval 5 s"
                  + (f", under cProfile -> {args.profile_server}" if args.profile_server else ""))

            if "a" in args.only:
                print(f"\n## A. hook overhead ({args.runs} runs per case, round-robin; {load()})",
                      flush=True)
                cases, command, p = bench_overhead(srv, args.runs)
                problems += p
                print(f"installed command: {command}")
                print(bench_hook.report(cases, args.runs, f"real Jupyter server {srv.url}"))
                by = {c.name: c.stats() for c in cases}
                inst = by["installed command via sh -c (as Claude Code runs it)"]
                pyc = by["hook.pyc (precompiled)"]
                true, plain = by["true"], by["python3 empty.py"]
                print(f"after: {load()}" + (f"\n{load_note()}" if load_note() else ""))
                ok = inst[0] <= TARGET_HOOK_MS
                summary.append(
                    f"A hook overhead (installed command, real server): median {inst[0]:.2f} ms, "
                    f"p95 {inst[1]:.2f} ms; bare argv {pyc[0]:.2f} ms; `true` {true[0]:.2f} ms "
                    f"(x{inst[0] / true[0]:.1f}); `python3 empty.py` {plain[0]:.2f} ms "
                    f"(x{inst[0] / plain[0]:.2f}) -> target median <= {TARGET_HOOK_MS:.0f} ms "
                    f"{'MET' if ok else 'MISSED'}")
                if not ok:
                    missed.append("hook overhead")

            if "b" in args.only:
                total = args.senders * args.per_sender
                runs = []
                variants = [("raw keep-alive POSTs, no stream client", "ing", False, False),
                            ("raw keep-alive POSTs, 1 WebSocket client", "ingws", True, False)]
                if args.as_is:
                    variants.append(("raw keep-alive POSTs, sample as is (transcript switches "
                                     "every 14 events)", "ingasis", False, True))
                for label, prefix, stream, as_is in variants:
                    print(f"\n## B. ingest: {label}: {args.senders} senders x {args.per_sender} "
                          f"= {total} events ({load()})", flush=True)
                    r = asyncio.run(ingest_raw(srv, label, prefix, args.senders, args.per_sender,
                                               stream, as_is))
                    runs.append(r)
                    problems += r.problems
                    print(f"{r.events} events in {r.seconds:.2f} s = {r.rate:,.0f} events/s; "
                          f"server CPU {r.server_cpu:.2f} s = {r.server_cpu / r.events * 1e3:.3f} ms/event "
                          f"({r.server_cpu / r.seconds * 100:.0f}% of one core); load generator CPU "
                          f"{r.client_cpu:.2f} s ({r.client_cpu / r.seconds * 100:.0f}%); "
                          f"+{r.state_events} StateChanged events derived")
                    print(f"request round trip: {ms_stats(r.request_s)}")
                    if stream:
                        print(f"POST -> WebSocket under this load: {ms_stats(r.ws_latency_s)}; "
                              f"resyncs {r.ws_resyncs}, missing {r.ws_missing}")
                    print("verified: " + ("every key and seq stored exactly once, order kept, "
                                          "50 replays answered duplicate" if not r.problems
                                          else "; ".join(r.problems[:5])))
                    print(f"after: {load()}" + (f"\n{load_note()}" if load_note() else ""), flush=True)
                n = args.senders * args.proc_per_sender
                print(f"\n## B. ingest: real hook client processes: {args.senders} threads x "
                      f"{args.proc_per_sender} = {n} events ({load()})", flush=True)
                rp = ingest_processes(srv, "proc", args.senders, args.proc_per_sender)
                problems += rp.problems
                proc_ms = rp.client_cpu / rp.events * 1e3
                cores = os.cpu_count() or 1
                print(f"{rp.events} events in {rp.seconds:.2f} s = {rp.rate:,.0f} events/s; "
                      f"server CPU {rp.server_cpu:.2f} s = {rp.server_cpu / rp.events * 1e3:.3f} "
                      f"ms/event; hook processes (sh + python) {proc_ms:.1f} ms CPU each -> "
                      f"at most ~{cores / (proc_ms + rp.server_cpu / rp.events * 1e3) * 1e3:,.0f} "
                      f"events/s on {cores} cores; spooled {rp.spooled}")
                print(f"one hook process under this load: {ms_stats(rp.request_s)}")
                print("verified: " + ("every seq stored exactly once, order kept" if not rp.problems
                                      else "; ".join(rp.problems[:5])))
                print(f"after: {load()}" + (f"\n{load_note()}" if load_note() else ""), flush=True)
                best = runs[0]
                ok = best.rate >= TARGET_EVENTS_S and not best.problems
                cpu_ms = best.server_cpu / best.events * 1e3
                summary.append(
                    f"B ingest, {args.senders} keep-alive senders: {runs[0].rate:,.0f} events/s "
                    f"(with a WebSocket client: {runs[1].rate:,.0f}/s); server CPU {cpu_ms:.3f} "
                    f"ms/event on its one event-loop thread (ceiling ~{1e3 / cpu_ms:,.0f}/s), "
                    f"zero loss {'verified' if not (runs[0].problems or runs[1].problems) else 'FAILED'} "
                    f"-> target >= {TARGET_EVENTS_S:,.0f}/s {'MET' if ok else 'MISSED'}")
                summary.append(
                    f"B stream under that load: POST -> WebSocket p50 "
                    f"{statistics.median(runs[1].ws_latency_s) * 1e3:,.0f} ms, p95 "
                    f"{pct(runs[1].ws_latency_s, 0.95) * 1e3:,.0f} ms, {runs[1].ws_resyncs} resync(s), "
                    f"{runs[1].ws_missing} missing")
                summary.append(
                    f"B ingest, {args.senders} threads of hook client processes: {rp.rate:,.0f} "
                    f"events/s, bounded by process start-up ({proc_ms:.1f} ms CPU per hook "
                    f"process on {cores} cores), zero loss "
                    f"{'verified' if not rp.problems else 'FAILED'}, {rp.spooled} spooled")
                if not ok:
                    missed.append("ingest throughput")

            if "c" in args.only:
                print(f"\n## C. hook call -> WebSocket latency ({args.latency_runs} events each, "
                      f"one at a time; {load()})", flush=True)
                hook_ws, hook_wall, post_ws, p = asyncio.run(latency(srv, args.latency_runs))
                problems += p
                print(f"hook client (installed command) -> WS: {ms_stats(hook_ws)}")
                print(f"  same runs, hook process wall time: {ms_stats(hook_wall)}")
                print(f"POST (keep-alive) -> WS:             {ms_stats(post_ws)}")
                print(f"after: {load()}" + (f"\n{load_note()}" if load_note() else ""), flush=True)
                p95 = pct(hook_ws, 0.95) * 1e3
                ok = p95 < TARGET_WS_P95_MS
                summary.append(
                    f"C hook -> WebSocket: hook client p50 {statistics.median(hook_ws) * 1e3:.2f} ms, "
                    f"p95 {p95:.2f} ms; POST p50 {statistics.median(post_ws) * 1e3:.2f} ms, "
                    f"p95 {pct(post_ws, 0.95) * 1e3:.2f} ms -> target p95 < "
                    f"{TARGET_WS_P95_MS:.0f} ms {'MET' if ok else 'MISSED'}")
                if not ok:
                    missed.append("stream latency")
        finally:
            srv.stop()
    print(f"\n## summary ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, at end: {load()})")
    for line in summary:
        print(f"- {line}")
    if problems:
        print("FAIL: " + "; ".join(problems[:10]))
        return 1
    if missed:
        print(f"targets missed: {', '.join(missed)}")
        return 1 if args.strict else 0
    print("RESULT: all targets met, no event lost or stored twice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
