"""Hook overhead: wall time of one hook call as an agent runs it.

    python benchmarks/bench_hook.py [--runs 200] [--real-server]
                                    [--url URL --secret S --session NAME]
                                    [--data-dir DIR --session NAME]

Each case spawns a process, pipes a real Claude Code payload
(/work/shared/samples/claude-code-2.1.197-hooks.jsonl) to its stdin and waits for it to exit,
end to end with the server's answer. Cases run round-robin so machine noise hits all alike:

- ``true`` and empty Python scripts: the floor any hook command pays;
- the Python client as the contract runs it (``python -S -E -s hive_lab/hook.py``) and as
  precompiled bytecode (``hook.compile_to``), plus its spool path (server down) and its
  silent path (agent outside Hive Lab);
- the C client (``hive_lab/hookc/hive_hook.c``, built by ``installers.compile_client`` as the
  server builds it): delivering, its spool path and its silent path;
- a deny decision (PreToolUse ``permissionDecision: deny`` as JSON on stdout, stdout piped and
  checked) from the stub, through the C and the Python client;
- ``--real-server``: also start a real Jupyter server with Hive Lab (tests/support/server.py),
  spawn a session with Claude-style hooks and run the PreToolUse command exactly as the server
  installed it (``sh -c '<command>'``, i.e. the C client) and the previous install (the .pyc),
  answered by that server (today: allow; it has no deny path yet); every event is checked to
  be stored;
- a shell + curl client (hot path only: no spool, no decision parsing), to see whether a shell
  script could beat Python.

By default the server is a minimal tornado app in this process that answers like the ingest
endpoint (checks the secret, answers ``{"id", "duplicate", "output": null, "exit_code": 0,
"stderr": ""}``) without storing anything. ``--url``/``--secret``/``--session`` or
``--data-dir``/``--session`` point the same cases at a real Jupyter server; from Python, call
``run_bench(...)``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hive_lab import hook  # noqa: E402
from hive_lab.core import installers  # noqa: E402

HOOK = ROOT / "hive_lab" / "hook.py"
SAMPLES = Path("/work/shared/samples/claude-code-2.1.197-hooks.jsonl")
SESSION = "bench-1"
DENY_SESSION = "bench-deny"  # the stub answers this session's calls with a deny decision
DENY = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                               "permissionDecisionReason": "bench-2 is editing src/app.py"}}

# The shell variant a hook could be instead of Python: the cheapest honest hot path. It reads
# the URL from an env var (parsing server.json in sh needs another process), passes the secret
# to curl as a header file on fd 3 (never in argv), and only pattern-matches the answer; a real
# one would add spooling and `jq` (another ~5 ms) to pass decisions through.
SHELL_CLIENT = r"""#!/bin/sh
[ -n "$HIVE_LAB_DIR" ] && [ -n "$HIVE_LAB_SESSION" ] || exit 0
read -r secret < "$HIVE_LAB_DIR/sessions/$HIVE_LAB_SESSION/secret" || [ -n "$secret" ] || exit 0
read -r uuid < /proc/sys/kernel/random/uuid
IFS=-; set -- $uuid; key=$1$2$3$4$5; unset IFS
fired=$(date +%s.%N)
answer=$(curl -sS --max-time 2 -w '\n%{http_code}' -H 'Expect:' \
  -H 'Content-Type: application/json' -H "X-Hive-Session: $HIVE_LAB_SESSION" \
  -H "X-Hive-Key: $key" -H "X-Hive-Fired: $fired" -H "X-Hive-Agent: ${HIVE_LAB_AGENT:-}" \
  -H @/dev/fd/3 --data-binary @- "$HIVE_LAB_HOOKS_URL" 3<<EOF
X-Hive-Secret: $secret
EOF
) || exit 0
case "$answer" in
  *'"output": null'*200) exit 0 ;;
  *) exit 0 ;;
esac
"""


@dataclass
class Case:
    name: str
    argv: list[str]
    env: dict[str, str]
    stdin: bytes = b""
    delivers: bool = False  # the stub server must see one event per run
    expect_stdout: bytes | None = None  # piped and checked (a decision) when set
    times: list[float] = field(default_factory=list)
    failures: int = 0

    def run_once(self) -> None:
        out = subprocess.PIPE if self.expect_stdout is not None else subprocess.DEVNULL
        start = time.perf_counter()
        proc = subprocess.run(self.argv, input=self.stdin, env=self.env, stdout=out,
                              stderr=subprocess.DEVNULL)
        self.times.append(time.perf_counter() - start)
        if proc.returncode != 0 or (self.expect_stdout is not None and proc.stdout != self.expect_stdout):
            self.failures += 1

    def stats(self) -> tuple[float, float, float]:
        """(median, p95, mean) in ms."""
        ordered = sorted(self.times)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return statistics.median(ordered) * 1e3, p95 * 1e3, statistics.fmean(ordered) * 1e3


@dataclass
class StubServer:
    """A tornado app answering like the ingest endpoint; counts what it accepted."""

    secrets: dict[str, str]
    accepted: int = 0
    refused: int = 0
    url: str = ""


@contextmanager
def stub_server(secrets: dict[str, str]) -> Iterator[StubServer]:
    import tornado.httpserver
    import tornado.netutil
    import tornado.web

    state = StubServer(secrets)

    class Ingest(tornado.web.RequestHandler):
        def post(self) -> None:
            session = self.request.headers.get(hook.HEADER_SESSION, "")
            if state.secrets.get(session) != self.request.headers.get(hook.HEADER_SECRET):
                state.refused += 1
                self.set_status(403)
                self.finish({"error": "forbidden", "detail": "bad secret"})
                return
            json.loads(self.request.body)
            state.accepted += 1
            output = DENY if session == DENY_SESSION else None
            result = {"id": state.accepted, "duplicate": False, "output": output, "exit_code": 0, "stderr": ""}
            if self.request.headers.get(hook.HEADER_CLIENT) == hook.CLIENT_C1:  # as HooksHandler
                headers, body = hook.c1_answer(result)
                for name, value in headers:
                    self.set_header(name, value)
                self.finish(body)
                return
            self.finish(result)

    ready = threading.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/hive_lab/api/hooks", Ingest)]))
        server.add_sockets(sockets)
        state.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hive_lab/api/hooks"
        loop_box.append(loop)
        ready.set()
        loop.run_forever()
        server.stop()
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield state
    finally:
        loop_box[0].call_soon_threadsafe(loop_box[0].stop)
        thread.join(5)


def sample_payload() -> bytes:
    """A real PreToolUse payload of Claude Code 2.1.197."""
    for line in SAMPLES.read_bytes().splitlines():
        if b'"PreToolUse"' in line:
            return line
    raise SystemExit(f"no PreToolUse payload in {SAMPLES}")


def make_data_dir(work: Path, hooks_url: str, session: str, secret: str) -> Path:
    data = work / "data"
    for name in (session, DENY_SESSION):
        (data / "sessions" / name).mkdir(parents=True)
        (data / "sessions" / name / "secret").write_text(secret)
    (data / "server.json").write_text(json.dumps({"hooks_url": hooks_url, "pid": os.getpid()}))
    return data


def build_cases(work: Path, data_dir: Path, session: str, hooks_url: str, payload: bytes,
                stub: bool = True) -> list[Case]:
    py = sys.executable
    flags = ["-S", "-E", "-s"]
    (work / "empty.py").write_text("")
    pyc = hook.compile_to(str(work / "hook.pyc"))
    built = installers.compile_client(work / "cbuild")  # as the server builds it
    binary = str(built) if installers.is_binary(built) else None
    shell = work / "hook.sh"
    shell.write_text(SHELL_CLIENT)
    shell.chmod(0o700)
    down = work / "down"  # a data dir whose server is gone: the spool path
    (down / "sessions" / session).mkdir(parents=True)
    (down / "sessions" / session / "secret").write_text("x")
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work)}
    agent = {**base, "HIVE_LAB_DIR": str(data_dir), "HIVE_LAB_SESSION": session, "HIVE_LAB_AGENT": "claude"}
    cases = [
        Case("true", ["true"], base, payload),
        Case("python3 empty.py", [py, str(work / "empty.py")], base, payload),
        Case("python3 -S -E -s empty.py", [py, *flags, str(work / "empty.py")], base, payload),
        Case("python3 -S -c pass", [py, "-S", "-c", "pass"], base, payload),
        Case("hook.py (contract command)", [py, *flags, str(HOOK), "--agent", "claude"], agent, payload, True),
        Case("hook.pyc (precompiled)", [py, *flags, pyc, "--agent", "claude"], agent, payload, True),
        Case("hook.pyc, server down -> spool", [py, *flags, pyc], {**agent, "HIVE_LAB_DIR": str(down)}, payload),
        Case("hook.pyc, outside Hive Lab (silent)", [py, *flags, pyc], base, payload),
    ]
    deny_env = {**agent, "HIVE_LAB_SESSION": DENY_SESSION}
    deny_out = (json.dumps(DENY) + "\n").encode()
    if stub:
        cases.append(Case("hook.pyc, stub deny (stdout checked)", [py, *flags, pyc, "--agent", "claude"],
                          deny_env, payload, True, deny_out))
    if binary:
        cases += [
            Case("C client", [binary, "--agent", "claude"], agent, payload, True),
            Case("C client, as installed (sh -c)",
                 ["/bin/sh", "-c", installers.hook_command("claude", script=Path(binary))], agent, payload, True),
            Case("C client, server down -> spool", [binary], {**agent, "HIVE_LAB_DIR": str(down)}, payload),
            Case("C client, outside Hive Lab (silent)", [binary], base, payload),
        ]
        if stub:
            cases.append(Case("C client, stub deny (sh -c, stdout checked)",
                              ["/bin/sh", "-c", installers.hook_command("claude", script=Path(binary))],
                              deny_env, payload, True, deny_out))
    if shutil.which("curl") and Path("/proc/sys/kernel/random/uuid").exists():
        cases.append(Case("sh + curl (hot path only)", ["/bin/sh", str(shell)],
                          {**agent, "HIVE_LAB_HOOKS_URL": hooks_url}, payload, True))
    return cases


def run_bench(
    runs: int = 200,
    hooks_url: str | None = None,
    secret: str | None = None,
    session: str = SESSION,
    data_dir: str | os.PathLike[str] | None = None,
    warmup: int = 10,
    extra_cases: Callable[[Path, bytes], list[Case]] | None = None,
) -> list[Case]:
    """Run every case ``runs`` times round-robin; against a stub server unless told otherwise.

    ``extra_cases(work_dir, payload)`` adds cases of the caller's (bench_events.py adds the
    command exactly as installed in a real session's settings) to the same round-robin.
    """
    payload = sample_payload()
    with tempfile.TemporaryDirectory(prefix="bench-hook-") as tmp:
        work = Path(tmp)
        with _server_for(hooks_url, secret, session, data_dir) as (url, state):
            if data_dir is not None:
                data = Path(data_dir)
            else:
                data = make_data_dir(work, url, session, secret or "bench-secret")
            cases = build_cases(work, data, session, url, payload, stub=state is not None)
            if extra_cases is not None:
                cases += extra_cases(work, payload)
            for _ in range(warmup):
                for case in cases:
                    case.run_once()
            for case in cases:
                case.times.clear()
            for _ in range(runs):
                for case in cases:
                    case.run_once()
            if state is not None:
                expected = (runs + warmup) * sum(c.delivers for c in cases)
                if state.accepted != expected or state.refused:
                    raise SystemExit(f"stub server accepted {state.accepted}/{expected}, refused {state.refused}")
        return cases


@contextmanager
def _server_for(
    hooks_url: str | None, secret: str | None, session: str, data_dir: str | os.PathLike[str] | None
) -> Iterator[tuple[str, StubServer | None]]:
    """The hooks_url to use, and the stub's state when we run the stub."""
    if data_dir is not None:
        info = json.loads((Path(data_dir) / hook.SERVER_JSON).read_text())
        yield info["hooks_url"], None
    elif hooks_url is not None:
        if not secret:
            raise SystemExit("--url needs --secret (and --session)")
        yield hooks_url, None
    else:
        with stub_server({session: secret or "bench-secret", DENY_SESSION: secret or "bench-secret"}) as state:
            yield state.url, state


@dataclass
class RealServer:
    """A real Jupyter server with Hive Lab and one hooked session, for the guarded case."""

    server: Any
    session: str
    cwd: Path
    cases_made: list[Case] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """What a hook inherits from the agent spawned in tmux (the variables that matter)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.server.base),
                "HIVE_LAB_DIR": str(self.server.data_dir), "HIVE_LAB_SESSION": self.session,
                "HIVE_LAB_AGENT": "hooked", "CLAUDE_PROJECT_DIR": str(self.cwd)}

    def installed_command(self) -> str:
        settings = json.loads((self.cwd / ".claude" / "settings.local.json").read_text())
        for group in settings["hooks"]["PreToolUse"]:
            for entry in group.get("hooks", []):
                if installers.is_ours(entry):
                    return entry["command"]
        raise SystemExit("no Hive Lab PreToolUse hook installed")

    def cases(self, work: Path, payload: bytes) -> list[Case]:
        command = self.installed_command()
        pyc = self.server.data_dir / "bin" / installers.COMPILED_NAME
        before = installers.hook_command("hooked", script=pyc)  # what was installed until now
        self.cases_made = [
            Case("guarded: PreToolUse command as installed (C, sh -c), real server", ["/bin/sh", "-c", command],
                 self.env(), payload),
            Case("PreToolUse command as installed before (.pyc, sh -c), real server", ["/bin/sh", "-c", before],
                 self.env(), payload),
        ]
        return self.cases_made

    def stored(self) -> int:
        return sum(1 for e in self.server.client().all_events(session=self.session) if e["agent"] != "hive")


@contextmanager
def real_server() -> Iterator[RealServer]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.server import HiveServer

    with tempfile.TemporaryDirectory(prefix="bench-hook-real-") as tmp:
        srv = HiveServer(Path(tmp)).start()
        try:
            name = "guarded-1"
            cwd = srv.root / name
            cwd.mkdir()
            status, body = srv.request("POST", "sessions", {"name": name, "agent": "hooked",
                                                            "command": ["cat"], "cwd": str(cwd)})
            if status != 201:
                raise SystemExit(f"could not spawn the session: {status} {body}")
            yield RealServer(srv, name, cwd)
        finally:
            srv.stop()
            srv.kill_tmux()


def report(cases: list[Case], runs: int, target: str) -> str:
    floor = cases[0].stats()[0]
    plain = next(c for c in cases if c.name == "python3 empty.py").stats()[0]
    lines = [
        f"{runs} runs per case, round-robin; server: {target}",
        f"python {platform.python_version()} ({sys.executable}); {os.cpu_count()} cores",
        "",
        "| case | median ms | p95 ms | mean ms | x true | x python3 empty.py | failures |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        med, p95, mean = case.stats()
        lines.append(
            f"| {case.name} | {med:.2f} | {p95:.2f} | {mean:.2f} | {med / floor:.1f} "
            f"| {med / plain:.2f} | {case.failures} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--url", help="hooks_url of a running server (with --secret, --session)")
    parser.add_argument("--secret", help="that session's hook secret")
    parser.add_argument("--session", default=SESSION)
    parser.add_argument("--data-dir", help="a real Hive Lab data dir (server.json, sessions/<session>/secret)")
    parser.add_argument("--real-server", action="store_true",
                        help="also run the installed PreToolUse command against a real Jupyter server")
    args = parser.parse_args(argv)
    target = args.data_dir or args.url or "in-process tornado stub (answers, stores nothing)"
    load = os.getloadavg()[0]
    if args.real_server:
        with real_server() as real:
            cases = run_bench(args.runs, args.url, args.secret, args.session, args.data_dir,
                              extra_cases=real.cases)
            expected = (args.runs + 10) * len(real.cases_made)
            stored = real.stored()
            pending = [p.name for p in (real.server.data_dir / "spool").glob("*")
                       if p.name.endswith((".jsonl", ".draining"))]
            if stored != expected or pending:
                raise SystemExit(f"real server stored {stored}/{expected} events; spool {pending}")
        target += f"; real server ({expected} events, all stored, nothing spooled)"
    else:
        cases = run_bench(args.runs, args.url, args.secret, args.session, args.data_dir)
    print(report(cases, args.runs, target))
    print(f"\nload average: {load:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
