"""The hook clients (``hive_lab/hook.py`` and the C one, ``hive_lab/hookc/hive_hook.c``) and
the spool reader (``hive_lab/core/spool.py``).

Every client test runs twice, once per client (the ``client`` fixture): the REAL Python script
the way an agent does (``python -S -E -s hive_lab/hook.py``, payload on stdin), and the C
client built by ``installers.compile_client`` exactly as the server builds it. The server side is ``IngestStub``: a small stdlib HTTP
server in a thread that stands in for the Jupyter server's ingest endpoint
(``POST {base}hive_lab/api/hooks``, see "Hook protocol" in docs/CONTRACTS.md) until the real
one exists; it records what it receives and answers as each test tells it to. Tests against
the real Jupyter server belong with the ingest handler.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import hive_lab
from hive_lab import hook
from hive_lab.core import installers, spool

HOOK = Path(hive_lab.__file__).parent / "hook.py"
SAMPLES = Path("/work/shared/samples/claude-code-2.1.197-hooks.jsonl")
SECRET = "s3cr3t-" + "ab" * 16
SESSION = "agent-1"
SLACK = 2.0  # seconds for process start-up on a loaded 2-core machine, on top of a budget


def sample_payloads() -> list[bytes]:
    if SAMPLES.exists():
        return [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]
    return [b'{"session_id": "x", "hook_event_name": "PreToolUse", "tool_name": "Bash"}']


# --- the stand-in ingest server -------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class IngestStub:
    """Answers like the ingest endpoint; ``status``/``answer``/``raw`` set what it replies."""

    server: ThreadingHTTPServer
    status: int = 200
    answer: dict[str, Any] | None = None
    raw: bytes | None = None  # a complete raw HTTP response instead of status/answer
    received: list[Received] = field(default_factory=list)
    on_request: Any = None  # called (in the server thread) before answering
    next_id: int = 1

    @property
    def hooks_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hive_lab/api/hooks"


def _make_handler(stub_box: list[IngestStub]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            stub = stub_box[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            stub.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            if stub.on_request:
                stub.on_request()
            if stub.raw is not None:
                self.wfile.write(stub.raw)
                self.close_connection = True
                return
            extra: list[tuple[str, str]] = []
            if stub.status == 200:
                answer = stub.answer or {"output": None, "exit_code": 0, "stderr": ""}
                result = {"id": stub.next_id, "duplicate": False, **answer}
                data = json.dumps(result).encode()
                if self.headers.get(hook.HEADER_CLIENT) == hook.CLIENT_C1:  # like HooksHandler
                    extra, data = hook.c1_answer(result)
                stub.next_id += 1
            else:
                data = json.dumps({"error": "nope", "detail": f"status {stub.status}"}).encode()
            self.send_response(stub.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def ingest():
    box: list[IngestStub] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(box))
    server.daemon_threads = True
    box.append(IngestStub(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    server.shutdown()
    server.server_close()


# --- the two clients -----------------------------------------------------------------------

PYTHON_ONLY = {  # tests about the Python client itself (its bytecode, its imports, its helpers)
    "test_parse_line_rejects_what_the_writer_never_writes",
    "test_precompiled_client_behaves_the_same",
    "test_hot_path_imports_no_heavy_modules",
}
_CLIENT: list[list[str]] = [[sys.executable, "-S", "-E", "-s", str(HOOK)]]


@pytest.fixture(scope="session")
def c_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C client, built the way the server builds it at start-up."""
    built = installers.compile_client(tmp_path_factory.mktemp("hookc"))
    if not installers.is_binary(built):
        pytest.fail("compile_client did not build the C client (is there a C compiler?)")
    return built


@pytest.fixture(autouse=True, params=["python", "c"])
def client(request: pytest.FixtureRequest) -> Any:
    """Which client ``hook_cmd``/``run_hook`` run for this test."""
    if request.param == "c":
        if request.node.originalname in PYTHON_ONLY:
            pytest.skip("about the Python client only")
        _CLIENT[0] = [str(request.getfixturevalue("c_client"))]
    else:
        _CLIENT[0] = [sys.executable, "-S", "-E", "-s", str(HOOK)]
    yield request.param
    _CLIENT[0] = [sys.executable, "-S", "-E", "-s", str(HOOK)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "hive"
    (root / "sessions" / SESSION).mkdir(parents=True)
    (root / "sessions" / SESSION / "secret").write_text(SECRET + "\n")
    (root / "installs").mkdir()
    return root


def write_server_json(data_dir: Path, hooks_url: str, pid: int | None = None) -> None:
    info = {"url": "http://x/", "base_url": "/", "hooks_url": hooks_url, "pid": pid or os.getpid()}
    (data_dir / "server.json").write_text(json.dumps(info))


def hook_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HIVE_LAB_DIR": str(data_dir),
        "HIVE_LAB_SESSION": SESSION,
        "HIVE_LAB_AGENT": "claude",
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


def hook_cmd(*args: str) -> list[str]:
    return [*_CLIENT[0], *args]


def run_hook(
    data_dir: Path, payload: bytes, *args: str, timeout: float = 20, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        hook_cmd(*args), input=payload, capture_output=True, env=hook_env(data_dir, **env), timeout=timeout
    )


def spooled(data_dir: Path) -> list[spool.SpoolRecord]:
    """Drain the spool (acking) and return what was in it."""
    got: list[spool.SpoolRecord] = []
    spool.drain(data_dir / "spool", got.extend)
    return got


def spool_files(data_dir: Path) -> list[Path]:
    return spool.pending(data_dir / "spool")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- delivery -------------------------------------------------------------------------------


def test_posts_payload_with_protocol_headers(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    payload = sample_payloads()[3]
    before = time.time()
    result = run_hook(data_dir, payload, "--agent", "claude")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" and result.stderr == b""
    assert len(ingest.received) == 1
    got = ingest.received[0]
    assert got.body == payload
    h = got.headers
    assert h["x-hive-session"] == SESSION
    assert "x-hive-install" not in h
    assert h["x-hive-secret"] == SECRET
    assert len(h["x-hive-key"]) == 32 and int(h["x-hive-key"], 16) >= 0
    assert before - 1 <= float(h["x-hive-fired"]) <= time.time() + 1
    assert h["x-hive-agent"] == "claude"
    assert h["content-type"] == "application/json"
    assert int(h["content-length"]) == len(payload)
    assert not spool_files(data_dir)


def test_each_call_gets_a_fresh_key(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    for payload in sample_payloads()[:4]:
        assert run_hook(data_dir, payload).returncode == 0
    keys = [r.headers["x-hive-key"] for r in ingest.received]
    assert len(keys) == 4 and len(set(keys)) == 4
    assert [r.body for r in ingest.received] == sample_payloads()[:4]


def test_secret_is_not_in_argv_or_environment(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    seen: dict[str, bytes] = {}
    proc_box: list[subprocess.Popen[bytes]] = []

    def inspect_client() -> None:  # runs while the client waits for our answer
        pid = proc_box[0].pid
        seen["cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes()
        seen["environ"] = Path(f"/proc/{pid}/environ").read_bytes()

    ingest.on_request = inspect_client
    proc = subprocess.Popen(hook_cmd(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=hook_env(data_dir))
    proc_box.append(proc)
    proc.communicate(sample_payloads()[0], timeout=20)
    assert proc.returncode == 0
    assert ingest.received[0].headers["x-hive-secret"] == SECRET  # it did travel, in the header
    assert Path(hook_cmd()[-1]).name.encode() in seen["cmdline"]  # we looked at the right process
    assert SECRET.encode() not in seen["cmdline"]
    assert SECRET.encode() not in seen["environ"]


def test_install_mode_uses_install_secret(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    (data_dir / "installs" / "repo-x.secret").write_text("install-secret")
    result = run_hook(data_dir, b'{"session_id": "abc"}', "--install", "repo-x", "--agent", "claude",
                      HIVE_LAB_SESSION="")
    assert result.returncode == 0
    h = ingest.received[0].headers
    assert h["x-hive-install"] == "repo-x"
    assert "x-hive-session" not in h
    assert h["x-hive-secret"] == "install-secret"


def test_install_mode_finds_default_data_dir(ingest: IngestStub, tmp_path: Path) -> None:
    """Hand-installed hooks run without HIVE_LAB_DIR: <jupyter data dir>/hive_lab."""
    root = tmp_path / "jdata" / "hive_lab"
    (root / "installs").mkdir(parents=True)
    (root / "installs" / "i1.secret").write_text("zz")
    write_server_json(root, ingest.hooks_url)
    env = {"PATH": os.environ["PATH"], "JUPYTER_DATA_DIR": str(tmp_path / "jdata")}
    result = subprocess.run(hook_cmd("--install", "i1"), input=b"{}", env=env, capture_output=True, timeout=20)
    assert result.returncode == 0
    assert ingest.received[0].headers["x-hive-install"] == "i1"


# --- decisions pass through -----------------------------------------------------------------


def test_decision_json_goes_to_stdout(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    decision = {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "agent-2 is editing src/app.py — «wait»",
        }
    }
    ingest.answer = {"output": decision, "exit_code": 0, "stderr": ""}
    result = run_hook(data_dir, sample_payloads()[3])
    assert result.returncode == 0
    assert result.stdout.startswith(b"{")
    assert json.loads(result.stdout) == decision
    assert result.stderr == b""


def test_exit_2_with_stderr_blocks(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    ingest.answer = {"output": None, "exit_code": 2, "stderr": "budget exhausted: stop here"}
    result = run_hook(data_dir, sample_payloads()[3])
    assert result.returncode == 2
    assert result.stderr == b"budget exhausted: stop here"
    assert result.stdout == b""


def test_chunked_answer_is_read(ingest: IngestStub, data_dir: Path, client: str) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    result = {"id": 7, "duplicate": False, "output": {"continue": False}, "exit_code": 0, "stderr": ""}
    body, head = json.dumps(result).encode(), b""
    if client == "c":
        headers, body = hook.c1_answer(result)
        head = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers)
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
    ingest.raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + head + b"\r\n" + chunks + b"0\r\n\r\n"
    )
    result = run_hook(data_dir, b"{}")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"continue": False}
    assert not spool_files(data_dir)


# --- refusals and failures ------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 413])
def test_4xx_exits_0_without_spooling(ingest: IngestStub, data_dir: Path, status: int) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    ingest.status = status
    result = run_hook(data_dir, sample_payloads()[0])
    assert result.returncode == 0
    assert result.stdout == b"" and result.stderr == b""
    assert len(ingest.received) == 1
    assert not spool_files(data_dir)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_spool(ingest: IngestStub, data_dir: Path, status: int) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    ingest.status = status
    payload = sample_payloads()[2]
    result = run_hook(data_dir, payload)
    assert result.returncode == 0 and result.stdout == b""
    (record,) = spooled(data_dir)
    assert record.body == payload
    assert record.key == ingest.received[0].headers["x-hive-key"]  # same key: a replay dedups
    assert record.session == SESSION and record.install is None and record.agent == "claude"


def test_unreadable_200_answer_spools(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    ingest.raw = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!"
    assert run_hook(data_dir, b"{}").returncode == 0
    assert [r.key for r in spooled(data_dir)] == [ingest.received[0].headers["x-hive-key"]]


def test_connection_refused_spools(data_dir: Path) -> None:
    write_server_json(data_dir, f"http://127.0.0.1:{closed_port()}/hive_lab/api/hooks")
    payload = sample_payloads()[5]
    result = run_hook(data_dir, payload)
    assert result.returncode == 0 and result.stdout == b"" and result.stderr == b""
    (record,) = spooled(data_dir)
    assert record.body == payload and record.session == SESSION


def test_missing_server_json_spools(data_dir: Path) -> None:
    result = run_hook(data_dir, b'{"hook_event_name": "Stop"}')
    assert result.returncode == 0
    (record,) = spooled(data_dir)
    assert record.body == b'{"hook_event_name": "Stop"}'


def test_stale_server_json_spools_without_connecting(ingest: IngestStub, data_dir: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_server_json(data_dir, ingest.hooks_url, pid=dead.pid)
    assert run_hook(data_dir, b"{}").returncode == 0
    assert ingest.received == []
    assert len(spooled(data_dir)) == 1


def test_server_that_never_answers_costs_one_budget(data_dir: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections complete in the backlog; nobody ever reads or answers
    try:
        write_server_json(data_dir, f"http://127.0.0.1:{listener.getsockname()[1]}/hive_lab/api/hooks")
        start = time.monotonic()
        result = run_hook(data_dir, b'{"n": 1}', HIVE_LAB_HOOK_TIMEOUT="0.5")
        took = time.monotonic() - start
        assert result.returncode == 0
        assert 0.5 <= took < 0.5 + SLACK, took
        start = time.monotonic()
        assert run_hook(data_dir, b'{"n": 2}').returncode == 0  # default budget: 2 s
        took = time.monotonic() - start
        assert 2.0 <= took < 2.0 + SLACK, took
    finally:
        listener.close()
    assert sorted(r.body for r in spooled(data_dir)) == [b'{"n": 1}', b'{"n": 2}']


def test_outside_hive_lab_exits_silently(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    for env in ({"HIVE_LAB_SESSION": ""}, {"HIVE_LAB_DIR": ""}):
        result = run_hook(data_dir, b"{}", **env)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert ingest.received == []
    assert not (data_dir / "spool").exists()


def test_session_name_cannot_escape_the_data_dir(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    result = run_hook(data_dir, b"{}", HIVE_LAB_SESSION="../../etc")
    assert result.returncode == 0
    assert ingest.received == []
    assert not (data_dir / "spool").exists()


def test_payload_over_1_mib_is_sent_but_never_spooled(ingest: IngestStub, data_dir: Path) -> None:
    big = b'{"x": "' + b"a" * (hook.MAX_BODY + 10) + b'"}'
    write_server_json(data_dir, ingest.hooks_url)
    ingest.status = 413
    assert run_hook(data_dir, big).returncode == 0
    assert ingest.received[0].body == big
    write_server_json(data_dir, f"http://127.0.0.1:{closed_port()}/hive_lab/api/hooks")
    assert run_hook(data_dir, big).returncode == 0
    assert not spool_files(data_dir)


def test_invalid_utf8_payload_round_trips_through_the_spool(data_dir: Path) -> None:
    payload = b'{"a": "\xff\xfe caf\xc3\xa9 \xed\xa0\x80"}'
    assert run_hook(data_dir, payload).returncode == 0
    (record,) = spooled(data_dir)
    assert record.body == payload


# --- Codex notify ---------------------------------------------------------------------------


def test_codex_argv_payload(ingest: IngestStub, data_dir: Path) -> None:
    write_server_json(data_dir, ingest.hooks_url)
    payload = json.dumps({
        "type": "agent-turn-complete",
        "thread-id": "t-1",
        "turn-id": "12",
        "cwd": "/home/dev/project",
        "input-messages": ["rename foo to bar"],
        "last-assistant-message": "Renamed foo → bar.",
    }, ensure_ascii=False)
    # stdin stays open and empty: the client must not wait for it with --argv-payload
    proc = subprocess.Popen(
        hook_cmd("--agent", "codex", "--argv-payload", payload),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=hook_env(data_dir, HIVE_LAB_AGENT="codex"),
    )
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.communicate()
    got = ingest.received[0]
    assert got.body == payload.encode()
    assert got.headers["x-hive-agent"] == "codex"


# --- the spool: permissions, concurrency, crash safety, corrupt lines ----------------------


def test_spool_dir_and_files_are_private(data_dir: Path) -> None:
    result = subprocess.run(
        hook_cmd(), input=b"{}", env=hook_env(data_dir), capture_output=True, timeout=20,
        preexec_fn=lambda: os.umask(0),
    )
    assert result.returncode == 0
    spool_dir = data_dir / "spool"
    assert spool_dir.stat().st_mode & 0o777 == 0o700
    (file,) = spool_files(data_dir)
    assert file.stat().st_mode & 0o777 == 0o600
    assert file.name == f"session-{SESSION}.jsonl"


@pytest.mark.timeout(900)  # 1,000 process starts: slow when the machine is shared
@pytest.mark.slow
def test_concurrent_writers_and_drains_lose_nothing(data_dir: Path) -> None:
    """20 processes x 50 real hook calls spool while a drain loop runs: each event once."""
    workers, calls = 20, 50
    script = (
        "import subprocess, sys\n"
        "w = sys.argv[1]\n"
        "for i in range(%d):\n"
        "    subprocess.run(sys.argv[2:], input=b'{\"w\": %%s, \"i\": %%d}' %% (w.encode(), i), check=True)\n"
    ) % calls
    stored: list[spool.SpoolRecord] = []
    reports: list[spool.DrainReport] = []
    stop = threading.Event()

    def drain_loop() -> None:
        while not stop.is_set():
            reports.append(spool.drain(data_dir / "spool", stored.extend))
            time.sleep(0.005)

    drainer = threading.Thread(target=drain_loop)
    drainer.start()
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(w), *hook_cmd()], env=hook_env(data_dir))
        for w in range(workers)
    ]
    try:
        for p in procs:
            assert p.wait(timeout=800) == 0
    finally:
        stop.set()
        drainer.join()
    reports.append(spool.drain(data_dir / "spool", stored.extend))

    bodies = Counter(json.loads(r.body)["w"] * 1000 + json.loads(r.body)["i"] for r in stored)
    expected = {w * 1000 + i for w in range(workers) for i in range(calls)}
    assert set(bodies) == expected
    assert max(bodies.values()) == 1  # none twice
    assert len({r.key for r in stored}) == workers * calls
    assert sum(r.bad_lines for r in reports) == 0  # no partial or torn lines
    assert spool.bad_files(data_dir / "spool") == []
    assert spool_files(data_dir) == []
    assert sum(r.files for r in reports) >= 2  # the drain really ran while writers wrote


def test_writer_follows_a_file_renamed_while_it_waited_for_the_lock(data_dir: Path) -> None:
    """The inode re-check: a writer that locks a file a drain has claimed writes elsewhere."""
    import fcntl

    spool_dir = data_dir / "spool"
    spool_dir.mkdir(mode=0o700)
    path = spool_dir / f"session-{SESSION}.jsonl"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer mid-write
        proc = subprocess.Popen(hook_cmd(), stdin=subprocess.PIPE, env=hook_env(data_dir))
        proc.stdin.write(b'{"late": true}')
        proc.stdin.close()
        time.sleep(0.3)  # the client is now blocked on the lock of this inode
        claimed = spool_dir / "claimed.draining"
        os.rename(path, claimed)  # what a drain does...
        path.write_bytes(b"")  # ...another writer starts the next file...
        fcntl.flock(fd, fcntl.LOCK_UN)  # ...and the writer we simulated finishes
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(fd)
    assert claimed.read_bytes() == b""  # nothing went into the claimed file
    (record,) = spool.read_lines(path.read_bytes())[0]
    assert record.body == b'{"late": true}'


def test_stuck_lock_falls_back_to_a_private_spool_file(data_dir: Path) -> None:
    import fcntl

    spool_dir = data_dir / "spool"
    spool_dir.mkdir(mode=0o700)
    path = spool_dir / f"session-{SESSION}.jsonl"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held far longer than any real write
        start = time.monotonic()
        assert run_hook(data_dir, b'{"stuck": 1}').returncode == 0
        assert time.monotonic() - start < hook.SPOOL_LOCK_TIMEOUT + SLACK
    finally:
        os.close(fd)
    private = [p for p in spool_files(data_dir) if p != path]
    assert len(private) == 1 and private[0].name.endswith(".jsonl")
    assert [r.body for r in spooled(data_dir)] == [b'{"stuck": 1}']


def test_unacked_records_are_drained_again(data_dir: Path) -> None:
    for i in range(3):
        assert run_hook(data_dir, b'{"i": %d}' % i).returncode == 0

    class StoreDown(Exception):
        pass

    def failing_store(records: list[spool.SpoolRecord]) -> None:
        raise StoreDown

    with pytest.raises(StoreDown):
        spool.drain(data_dir / "spool", failing_store)
    (left,) = spool_files(data_dir)
    assert left.name.endswith(".draining")

    # iterating without ack is the same as crashing before the ack
    first = [r.key for b in spool.iter_batches(data_dir / "spool") for r in b.records]
    again = spooled(data_dir)
    assert [r.key for r in again] == first and len(first) == 3
    assert [r.body for r in again] == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}']
    assert spool_files(data_dir) == []


def test_drain_killed_mid_store_replays(data_dir: Path) -> None:
    for i in range(2):
        assert run_hook(data_dir, b'{"i": %d}' % i).returncode == 0
    # and a writer keeps going after the crash: its event lands in a new file
    crash = subprocess.run(
        [sys.executable, "-c",
         "import os, sys; from hive_lab.core import spool; "
         "spool.drain(sys.argv[1], lambda records: os._exit(3))", str(data_dir / "spool")],
        timeout=60,
    )
    assert crash.returncode == 3
    assert run_hook(data_dir, b'{"i": 2}').returncode == 0
    names = sorted(p.name.rsplit(".", 1)[1] for p in spool_files(data_dir))
    assert names == ["draining", "jsonl"]
    assert sorted(r.body for r in spooled(data_dir)) == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}']


def test_second_drain_while_one_runs_does_nothing(data_dir: Path) -> None:
    assert run_hook(data_dir, b"{}").returncode == 0
    outer = spool.iter_batches(data_dir / "spool")
    batch = next(outer)
    inner = spool.drain(data_dir / "spool", lambda records: pytest.fail("drained twice"))
    assert inner.busy and inner.files == 0
    batch.ack()
    assert list(outer) == []
    assert spool_files(data_dir) == []


def test_corrupt_lines_are_kept_aside(data_dir: Path) -> None:
    assert run_hook(data_dir, b'{"ok": 1}').returncode == 0
    (path,) = spool_files(data_dir)
    good = path.read_bytes()
    garbage = [b"{not json", b'{"v": 1, "session": "agent-1", "install": null, "agent": "x", "key": "zz", '
               b'"fired": 1.0, "body": "{}"}', b'["a list"]']
    partial = b'{"v": 1, "session": "agent-1", "ins'
    with open(path, "ab") as f:
        f.write(b"\n".join(garbage) + b"\n" + partial)  # a writer killed mid-write leaves no newline
    # the next writer must not glue its line onto the partial one
    assert run_hook(data_dir, b'{"ok": 2}').returncode == 0

    got: list[spool.SpoolRecord] = []
    report = spool.drain(data_dir / "spool", got.extend)
    assert [r.body for r in got] == [b'{"ok": 1}', b'{"ok": 2}']
    assert good.startswith(b'{"v": 1')
    assert report.bad_lines == 4
    (bad,) = spool.bad_files(data_dir / "spool")
    assert bad.read_bytes().splitlines() == [*garbage, partial]
    assert bad.stat().st_mode & 0o777 == 0o600
    assert spool_files(data_dir) == []


def test_parse_line_rejects_what_the_writer_never_writes() -> None:
    line = hook.spool_line("s1", None, "claude", "0" * 32, 12.5, b'{"a": 1}')
    assert spool.parse_line(line.rstrip(b"\n")).body == b'{"a": 1}'
    for patch in ({"v": 2}, {"key": "0" * 31}, {"session": "a/b"}, {"session": None},
                  {"install": "i1"}, {"fired": True}, {"body": 3}, {"body": "\ud800"}):
        obj = {**json.loads(line), **patch}
        with pytest.raises(ValueError):
            spool.parse_line(json.dumps(obj).encode())


def test_precompiled_client_behaves_the_same(ingest: IngestStub, data_dir: Path, tmp_path: Path) -> None:
    """``hook.compile_to`` output, run as ``python -S -E -s hook.pyc``: delivers, decides, spools."""
    pyc = hook.compile_to(str(tmp_path / "bin" / "hook.pyc"))
    write_server_json(data_dir, ingest.hooks_url)
    ingest.answer = {"output": None, "exit_code": 2, "stderr": "no"}
    env = hook_env(data_dir)
    result = subprocess.run([sys.executable, "-S", "-E", "-s", pyc, "--agent", "claude"], input=b'{"p": 1}',
                            capture_output=True, env=env, timeout=20)
    assert (result.returncode, result.stderr) == (2, b"no")
    assert ingest.received[0].body == b'{"p": 1}'
    (data_dir / "server.json").unlink()
    result = subprocess.run([sys.executable, "-S", "-E", "-s", pyc], input=b'{"p": 2}',
                            capture_output=True, env=env, timeout=20)
    assert result.returncode == 0
    assert [r.body for r in spooled(data_dir)] == [b'{"p": 2}']


# --- it stays small ---------------------------------------------------------------------------


def test_hot_path_imports_no_heavy_modules(ingest: IngestStub, data_dir: Path) -> None:
    """json/socket/os/re cost ~1-9 ms each at start-up; the delivered path needs none of them."""
    write_server_json(data_dir, ingest.hooks_url)
    ingest.answer = {"output": {"decision": "ok"}, "exit_code": 0, "stderr": ""}
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-s", "-X", "importtime", str(HOOK)],
        input=b"{}", capture_output=True, env=hook_env(data_dir), timeout=20,
    )
    assert result.returncode == 0 and json.loads(result.stdout) == {"decision": "ok"}
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    assert "_socket" in imported  # the log is real
    assert not imported & {"json", "socket", "os", "re", "enum", "http.client", "uuid", "site"}


# --- the C client: same spool bytes, same drain, nothing lost against the real server ------

AWKWARD_PAYLOADS = [
    b'{"hook_event_name": "PreToolUse"}',
    b'{"a": "\xff\xfe caf\xc3\xa9 \xed\xa0\x80 \xf0\x9f\x98\x80 \xf4\x90\x80\x80 \xc0\xaf"}',
    bytes(range(256)),  # every byte, controls and invalid UTF-8 included
    b'{"t": "\\u00e9 \\" \\\\ \t\r\n\x7f\x00 \xe2\x82 \xe2\x82\xac \xf0\x9f\x98"}',  # truncated sequences
    b"",
]


@pytest.mark.parametrize("install", [None, "inst-1"])
def test_spool_line_is_byte_identical_to_hook_spool_line(data_dir: Path, install: str | None) -> None:
    """What either client writes is exactly ``hook.spool_line`` of the same call."""
    args = ("--agent", "claude") if install is None else ("--agent", "claude", "--install", install)
    env = {} if install is None else {"HIVE_LAB_SESSION": ""}
    for payload in AWKWARD_PAYLOADS:
        assert run_hook(data_dir, payload, *args, **env).returncode == 0
    (path,) = spool_files(data_dir)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == len(AWKWARD_PAYLOADS)
    for raw, payload in zip(lines, AWKWARD_PAYLOADS):
        obj = json.loads(raw)
        fired_text = raw.split(b'"fired": ', 1)[1].split(b",", 1)[0].decode()
        assert fired_text == repr(float(fired_text))  # Python's float repr
        session = None if install else SESSION
        assert raw == hook.spool_line(session, install, "claude", obj["key"], obj["fired"], payload)
    got = spooled(data_dir)
    assert [r.body for r in got] == AWKWARD_PAYLOADS
    assert all(r.install == install and r.agent == "claude" for r in got)


def test_stderr_and_output_survive_the_c1_encoding(ingest: IngestStub, data_dir: Path) -> None:
    """Non-ASCII, '%', newlines and a lone surrogate in stderr; nested output JSON."""
    write_server_json(data_dir, ingest.hooks_url)
    stderr = "100% blocked:\nagent-2 édite «src/app.py» \ud800 ✓"
    output = {"hookSpecificOutput": {"permissionDecision": "deny", "why": ["a", 1, None, True, 2.5, "é\n"]}}
    ingest.answer = {"output": output, "exit_code": 2, "stderr": stderr}
    result = run_hook(data_dir, b"{}")
    assert result.returncode == 2
    assert result.stderr == stderr.encode("utf-8", "replace")
    assert result.stdout == (json.dumps(output) + "\n").encode()
    assert not spool_files(data_dir)


def test_server_without_c1_answer_is_spooled_not_misread(ingest: IngestStub, data_dir: Path,
                                                         client: str) -> None:
    """A 200 JSON answer without X-Hive-Exit-Code (a server that does not speak c1) must not be
    copied to stdout by the C client: it spools (the key dedups the replay)."""
    if client != "c":
        pytest.skip("the C client's answer format")
    write_server_json(data_dir, ingest.hooks_url)
    body = json.dumps({"id": 1, "duplicate": False, "output": None, "exit_code": 0, "stderr": ""}).encode()
    ingest.raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    result = run_hook(data_dir, b'{"x": 1}')
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert [r.key for r in spooled(data_dir)] == [ingest.received[0].headers["x-hive-key"]]


def test_https_server_goes_through_the_python_client(data_dir: Path, client: str, c_client: Path) -> None:
    """No TLS in C: it execs the Python client compiled in next to it, which spools here
    (nothing listens) - the event is not lost and the agent sees exit 0."""
    if client != "c":
        pytest.skip("the C client's https fallback")
    write_server_json(data_dir, f"https://127.0.0.1:{closed_port()}/hive_lab/api/hooks")
    result = run_hook(data_dir, b'{"tls": 1}')
    assert (result.returncode, result.stdout) == (0, b"")
    assert [r.body for r in spooled(data_dir)] == [b'{"tls": 1}']
    assert (c_client.parent / installers.COMPILED_NAME).exists()


def _installed_command(cwd: Path) -> str:
    settings = json.loads((cwd / ".claude" / "settings.local.json").read_text())
    for group in settings["hooks"]["PreToolUse"]:
        for entry in group["hooks"]:
            if installers.is_ours(entry):
                return entry["command"]
    raise AssertionError("no Hive Lab PreToolUse hook installed")


@pytest.mark.timeout(600)
def test_real_server_away_loses_nothing(tmp_path: Path, client: str) -> None:
    """Against the real Jupyter server: a delivered call, then 12 calls while the server is
    away (6 with no server.json after a clean stop, 6 with a stale one as after a crash),
    then a restart drains the spool: every event stored exactly once, nothing left over."""
    from support.server import HiveServer, wait_for

    srv = HiveServer(tmp_path / "srv").start()
    name = "away-1"
    try:
        cwd = srv.root / name
        cwd.mkdir()
        status, body = srv.request("POST", "sessions", {"name": name, "agent": "hooked",
                                                        "command": ["cat"], "cwd": str(cwd)})
        assert status == 201, body
        command = _installed_command(cwd)
        assert ("/bin/" + installers.BINARY_NAME + " ") in command  # the server installed the C client
        if client == "c":
            argv = ["/bin/sh", "-c", command]  # exactly as Claude Code runs it
        else:
            argv = hook_cmd("--agent", "hooked")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HIVE_LAB_DIR": str(srv.data_dir),
               "HIVE_LAB_SESSION": name, "HIVE_LAB_AGENT": "hooked"}

        def fire(i: int) -> subprocess.CompletedProcess[bytes]:
            payload = json.dumps({"hook_event_name": "PreToolUse", "session_id": "cc-1",
                                  "tool_name": "Bash", "tool_input": {"command": f"echo {i}"}, "n": i})
            return subprocess.run(argv, input=payload.encode(), env=env, capture_output=True, timeout=30)

        def stored() -> list[dict[str, Any]]:
            events = srv.client().all_events(session=name)
            return [e for e in events if e["agent"] != "hive"]

        first = fire(0)
        assert (first.returncode, first.stdout, first.stderr) == (0, b"", b"")  # the real allow answer
        assert not spool.pending(srv.data_dir / "spool")
        assert [e["payload"]["n"] for e in stored()] == [0]

        server_json = (srv.data_dir / "server.json").read_text()
        srv.stop()
        assert not (srv.data_dir / "server.json").exists()
        for i in range(1, 7):
            assert fire(i).returncode == 0
        (srv.data_dir / "server.json").write_text(server_json)  # as a crashed server leaves it
        for i in range(7, 13):
            assert fire(i).returncode == 0
        lines = sum(p.read_bytes().count(b"\n") for p in spool.pending(srv.data_dir / "spool"))
        assert lines == 12

        srv.start()
        wait_for(lambda: len(stored()) >= 13, timeout=60, what="spooled events stored")
        wait_for(lambda: not spool.pending(srv.data_dir / "spool"), timeout=30, what="spool drained")
        events = stored()
        assert sorted(e["payload"]["n"] for e in events) == list(range(13))  # none lost, none twice
        assert spool.bad_files(srv.data_dir / "spool") == []
    finally:
        srv.stop()
        srv.kill_tmux()


# --- building and installing the C client ---------------------------------------------------


def test_compile_client_caches_and_falls_back(tmp_path: Path, client: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    if client != "c":
        pytest.skip("once is enough")
    built = installers.compile_client(tmp_path / "a")
    assert built == tmp_path / "a" / "bin" / installers.BINARY_NAME and os.access(built, os.X_OK)
    before = built.stat()
    assert installers.compile_client(tmp_path / "a") == built
    assert built.stat().st_ino == before.st_ino  # cached: not rebuilt
    stamp = built.with_name(installers.BINARY_NAME + ".sha256")
    stamp.write_text("stale\n")
    assert installers.compile_client(tmp_path / "a") == built
    assert built.stat().st_ino != before.st_ino  # rebuilt, by rename
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".build-")]

    installers._warned_no_c = False
    with caplog.at_level("WARNING"):
        for cc in ("no-such-compiler", "false", "false"):
            fallback = installers.compile_client(tmp_path / "b", cc=cc)
            assert fallback == tmp_path / "b" / "bin" / installers.COMPILED_NAME
    assert sum("Python client" in r.getMessage() for r in caplog.records) == 1  # logged once
    assert not (tmp_path / "b" / "bin" / installers.BINARY_NAME).exists()
    assert installers.hook_command("claude", script=fallback).startswith("test -f ")


def test_install_and_uninstall_recognise_both_clients(tmp_path: Path, client: str, c_client: Path) -> None:
    if client != "c":
        pytest.skip("once is enough")
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    mine = {"type": "command", "command": "echo hive_lab_hook-is-not-a-path-of-ours"}
    old = {"type": "command", "command": installers.hook_command(
        "claude", script=c_client.parent / installers.COMPILED_NAME)}
    (project / ".claude" / "settings.local.json").write_text(json.dumps(
        {"hooks": {"Stop": [{"hooks": [mine]}], "PreToolUse": [{"hooks": [old]}]}}))
    installers.install("claude", project, script=c_client)
    settings = json.loads((project / ".claude" / "settings.local.json").read_text())
    commands = [h["command"] for g in settings["hooks"]["PreToolUse"] for h in g["hooks"]]
    assert commands == [old["command"], f"test -x {c_client} && exec {c_client} --agent claude"]
    assert all(installers.is_ours({"command": c}) for c in commands)
    assert not installers.is_ours(mine)
    installers.uninstall("claude", project)
    left = json.loads((project / ".claude" / "settings.local.json").read_text())
    assert left == {"hooks": {"Stop": [{"hooks": [mine]}]}}


def test_missing_c_client_never_blocks(tmp_path: Path, client: str) -> None:
    """The installed command with its binary gone exits 1 (non-blocking), never 2."""
    if client != "c":
        pytest.skip("once is enough")
    command = installers.hook_command("claude", script=tmp_path / "bin" / installers.BINARY_NAME)
    done = subprocess.run(["/bin/sh", "-c", command], input=b"{}", capture_output=True, timeout=30)
    assert done.returncode == 1
