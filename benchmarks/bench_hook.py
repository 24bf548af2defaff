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
  add a task with scope ``src/**`` on a profile with Claude-style hooks, and run its session's
  PreToolUse command exactly as the server installed it (``sh -c '<command>'``, i.e. the C
  client) with payloads the scope guard decides: Write inside the scope (allow), Write outside
  (deny, with the reason), a Bash write outside (ask), a Read (no decision); plus the deny
  through the previous install (the .pyc). Each answer is checked (decision and reason) and
  then compared byte for byte on every run; every event is checked to be stored;
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


# The guarded cases: a real task (scope src/**) whose session's PreToolUse hook is run as
# installed, with payloads the guard must decide: (case, tool, input, expected decision).
GUARDED_SCOPE = ["src/**"]
GUARDED = [
    ("Write inside the scope -> allow", "Write", {"file_path": "src/bench.py", "content": "X = 1\n"},
     "allow"),
    ("Write outside -> deny with the reason", "Write", {"file_path": "docs/bench.md", "content": "x\n"},
     "deny"),
    ("Bash write outside -> ask", "Bash", {"command": "echo x > docs/bench.md", "description": "w"},
     "ask"),
    ("Read -> no decision", "Read", {"file_path": "docs/index.md"}, None),
]


@dataclass
class RealServer:
    """A real Jupyter server with Hive Lab running one task with a scope, so the guard decides."""

    server: Any
    session: str
    cwd: Path  # the task's worktree, where the hooks are installed
    agent_session_id: str | None = None
    cases_made: list[Case] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """What a hook inherits from the agent spawned in tmux (the variables that matter)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.server.base),
                "HIVE_LAB_DIR": str(self.server.data_dir), "HIVE_LAB_SESSION": self.session,
                "HIVE_LAB_AGENT": "bench", "CLAUDE_PROJECT_DIR": str(self.cwd)}

    def installed_command(self) -> str:
        settings = json.loads((self.cwd / ".claude" / "settings.local.json").read_text())
        for group in settings["hooks"]["PreToolUse"]:
            for entry in group.get("hooks", []):
                if installers.is_ours(entry):
                    return entry["command"]
        raise SystemExit("no Hive Lab PreToolUse hook installed")

    def payload(self, sample: bytes, tool: str, tool_input: dict[str, Any]) -> bytes:
        data = json.loads(sample)
        data.update(cwd=str(self.cwd), tool_name=tool, tool_input=tool_input)
        if self.agent_session_id:
            data["session_id"] = self.agent_session_id
        return json.dumps(data).encode() + b"\n"

    def cases(self, work: Path, sample: bytes) -> list[Case]:
        """The four guarded decisions through the client as installed (C, ``sh -c``), and the
        deny through the Python client as installed before (.pyc): each answer is checked
        once here (the decision and its reason) and then byte for byte on every run."""
        command = self.installed_command()
        pyc = self.server.data_dir / "bin" / installers.COMPILED_NAME
        before = installers.hook_command("bench", script=pyc)  # the Python client's command
        made = [(f"guarded: {name} (C, sh -c), real server", command, tool, inp, want)
                for name, tool, inp, want in GUARDED]
        name, tool, inp, want = GUARDED[1]
        made.append((f"guarded: {name} (.pyc as installed before, sh -c), real server", before,
                     tool, inp, want))
        self.cases_made = []
        for label, cmd, tool, inp, want in made:
            case = Case(label, ["/bin/sh", "-c", cmd], self.env(), self.payload(sample, tool, inp))
            proc = subprocess.run(case.argv, input=case.stdin, env=case.env, capture_output=True)
            got = json.loads(proc.stdout)["hookSpecificOutput"] if proc.stdout.strip() else None
            decision = got and got.get("permissionDecision")
            if proc.returncode != 0 or decision != want:
                raise SystemExit(f"{label}: the guard answered {decision!r} ({proc.stdout!r}, "
                                 f"exit {proc.returncode}), expected {want!r}")
            if want == "deny" and not ("docs/bench.md" in got["permissionDecisionReason"]
                                       and "request-scope" in got["permissionDecisionReason"]):
                raise SystemExit(f"{label}: the deny does not say why: {got!r}")
            case.expect_stdout = proc.stdout
            self.cases_made.append(case)
        return self.cases_made

    def stored(self) -> int:
        return sum(1 for e in self.server.client().all_events(session=self.session) if e["agent"] != "hive")

    def task_state(self) -> str:
        return str(self.server.get(f"tasks/{self.session}")["state"]["name"])


@contextmanager
def real_server() -> Iterator[RealServer]:
    """A task with scope src/** on a profile with Claude Code hooks; the agent (the scripted
    stand-in, holding at ``@await``) does nothing itself, and a check that sleeps keeps the
    task active (checking) should its turn be seen to end while we measure."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support import make_repo, wait_for
    from support.server import HiveServer

    agent = str(ROOT / "tests" / "support" / "scripted_agent.py")
    profiles = {"bench": {"command": [sys.executable, "-u", agent], "hooks": "claude",
                          "capabilities": ["bench"]}}
    with tempfile.TemporaryDirectory(prefix="bench-hook-real-") as tmp:
        srv = HiveServer(Path(tmp), extra_config={"profiles": profiles, "task_interval": 0.3}).start()
        try:
            name = "guarded-1"
            repo = make_repo(srv.root / "repo", {"src/app.py": "A = 1\n", "docs/index.md": "# d\n"})
            status, body = srv.request("POST", "tasks", {
                "id": name, "repo": str(repo), "agent": "bench", "scope": GUARDED_SCOPE,
                "prompt": "@await never", "check": ["sleep", "3600"]})
            if status != 201:
                raise SystemExit(f"could not add the task: {status} {body}")
            task = wait_for(lambda: (t := srv.get(f"tasks/{name}"))["worktree"]
                            and t["state"]["name"] in ("running", "checking") and t,
                            timeout=60, what="the task running in its worktree")
            cwd = Path(task["worktree"])
            wait_for(lambda: (cwd / ".claude" / "settings.local.json").exists(), timeout=30,
                     what="its hooks installed")
            yield RealServer(srv, name, cwd, (task.get("flags") or {}).get("agent_session_id"))
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
            expected = (args.runs + 10 + 1) * len(real.cases_made)  # + the checked first call
            stored = real.stored()
            still = real.task_state()
            if still not in ("running", "checking", "waiting"):
                raise SystemExit(f"the task left the active states while measuring: {still}")
            pending = [p.name for p in (real.server.data_dir / "spool").glob("*")
                       if p.name.endswith((".jsonl", ".draining"))]
            if stored != expected or pending:
                raise SystemExit(f"real server stored {stored}/{expected} events; spool {pending}")
        target += (f"; real server, task {real.session} (scope {', '.join(GUARDED_SCOPE)}, "
                   f"{still}) deciding ({expected} events, all stored, nothing spooled)")
    else:
        cases = run_bench(args.runs, args.url, args.secret, args.session, args.data_dir)
    print(report(cases, args.runs, target))
    print(f"\nload average: {load:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
