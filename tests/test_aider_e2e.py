"""Hive Lab with the real Aider, end to end, through the REST API only.

Aider is the unmodified ``aider-chat`` from PyPI (0.86.2, installed by
``scripts/install-aider.sh`` into its own venv under ``.cache/aider``), run by Hive Lab's
built-in ``aider`` profile, found on the Jupyter server's PATH. The model behind it is
:class:`FakeOpenAI`, a scripted local OpenAI-compatible API (``AIDER_OPENAI_API_BASE``):
``SCENARIO:write notes.txt hello`` makes the "model" answer with a SEARCH/REPLACE block.
Aider has no hooks: Hive Lab follows it by its screen, and its usage by the analytics log
the profile gives every session. What was seen is in ``tests/aider_support/NOTES.md``.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from support import HiveServer, make_repo as git_repo, wait_for

try:  # with or without tests/__init__.py
    from tests.aider_support import cli as _cli
    from tests.aider_support.fake_openai import MODEL, FakeOpenAI
except ImportError:  # pragma: no cover - tests/ itself on sys.path
    from aider_support import cli as _cli  # type: ignore[no-redef]
    from aider_support.fake_openai import MODEL, FakeOpenAI  # type: ignore[no-redef]

pytestmark = pytest.mark.e2e

STARTUP = 120.0  # ~5 s on an idle machine; far more at high load on the shared 2 cores
STEP = 60.0


@pytest.fixture(scope="module")
def aider() -> Path:
    path = _cli.find_or_install_aider()
    if path is None:
        pytest.skip(f"real Aider unavailable: {_cli.skip_reason()}")
    return path


@pytest.fixture(scope="module")
def api() -> Any:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def hive(aider: Path, api: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("hive-aider")
    env = _cli.private_home(base, aider, api.base_url, f"openai/{MODEL}")
    srv = HiveServer(base / "hive", extra_path=[str(aider.parent)],
                     drop_env_prefixes=("AIDER_", "OPENAI_"),
                     extra_config={"profiles": {"aider": {"env": env}}, "task_interval": 0.3})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill_tmux()


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e",
                          *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def make_repo(root: Path, name: str) -> Path:
    path = root / name
    return git_repo(path, {"src/app.py": "print('app')\n", "docs/index.md": "# docs\n"})


# -- REST helpers ---------------------------------------------------------------------------
def state(srv: HiveServer, name: str) -> dict[str, Any]:
    return srv.get(f"sessions/{name}")["state"]


def screen(srv: HiveServer, name: str, lines: int | None = None) -> str:
    return srv.get(f"sessions/{name}/screen" + (f"?lines={lines}" if lines else ""))["text"]


def wait(pred: Callable[[], Any], what: str, timeout: float = STEP) -> Any:
    return wait_for(pred, timeout=timeout, interval=0.25, what=what)


def wait_state(srv: HiveServer, name: str, want: str, timeout: float = STEP,
               **fields: Any) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        s = state(srv, name)
        return s if s["name"] == want and all(s.get(k) == v for k, v in fields.items()) else None
    try:
        return wait(check, f"state {want} {fields} of {name}", timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstate: {state(srv, name)}\nscreen:\n{screen(srv, name)}"
                             ) from None


def transitions(srv: HiveServer, name: str) -> list[str]:
    return [t["name"] for t in srv.get(f"transitions?session={name}")["transitions"]]


def prompt(srv: HiveServer, name: str, text: str) -> None:
    status, body = srv.request("POST", f"sessions/{name}/input", {"text": text, "enter": True})
    assert status == 200, body


# Aider's own figures as it prints them (aider/coders/base_coder.py, utils.format_tokens).
def aider_tokens(n: int) -> str:
    if n < 1000:
        return f"{n}"
    if n < 10000:
        return f"{n / 1000:.1f}k"
    return f"{round(n / 1000)}k"


def aider_cost(value: float) -> str:
    if value == 0:
        return "0.00"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.{max(2, 2 - int(math.log10(abs(value))))}f}"


_REPORT_RE = re.compile(r"Tokens: (\S+) sent, (\S+) received\. Cost: \$(\S+) message, "
                        r"\$(\S+) session\.")


# -- a session ------------------------------------------------------------------------------
def test_aider_session_through_the_api(hive: HiveServer, api: FakeOpenAI) -> None:
    """Spawn in a worktree, prompt, working, confirmations as waiting, approve, deny, idle,
    usage from aider's own log as aider printed it, kill."""
    name = "ad-main"
    repo = make_repo(hive.root, "repo-session")
    status, created = hive.request("POST", "sessions", {
        "name": name, "agent": "aider", "cwd": str(repo), "worktree": True})
    assert status == 201, created
    argv = created["command"]
    assert argv[0] == "aider" and "--no-auto-commits" in argv and "--yes-always" not in argv
    log = Path(argv[argv.index("--analytics-log") + 1])
    assert log.name.endswith(".aider-analytics.jsonl") and created["transcript_path"] == str(log)
    worktree = Path(created["cwd"])
    assert worktree != repo and (worktree / "src" / "app.py").exists(), created

    wait_state(hive, name, "idle", STARTUP)
    assert "Aider v0.86.2" in screen(hive, name) and f"Model: openai/{MODEL}" in screen(hive, name)
    # Aider's own files in the worktree (.aider.chat.history.md, ...) are not its work.
    assert git(worktree, "status", "--porcelain") == ""

    # A slow reply: working while aider waits for the model, idle when the turn ends.
    prompt(hive, name, "SCENARIO:wait 4")
    wait_state(hive, name, "working")
    wait_state(hive, name, "idle")

    # An edit of a file not in the chat: aider asks, Hive Lab shows it as waiting.
    prompt(hive, name, "SCENARIO:write notes.txt hello")
    waiting = wait_state(hive, name, "waiting", reason="permission")
    assert waiting["tool"] == "Create new file?" and waiting["detail"] == "notes.txt", waiting
    assert "Create new file? (Y)es/(N)o [Yes]:" in screen(hive, name)
    assert not (worktree / "notes.txt").exists()
    status, answered = hive.request("POST", f"sessions/{name}/approve", {})
    assert status == 200, answered
    assert answered["keys"] == ["y", "Enter"], answered
    # aider creates the file, then writes it: wait for the content, not for the name
    wait(lambda: (worktree / "notes.txt").exists()
         and (worktree / "notes.txt").read_text() == "hello\n", "notes.txt written")
    wait_state(hive, name, "idle")

    # A shell command the "model" suggests: denied, never run.
    prompt(hive, name, "SCENARIO:shell echo hi > shell.txt")
    waiting = wait_state(hive, name, "waiting", reason="permission")
    assert waiting["tool"] == "Run shell command?", waiting
    assert waiting["detail"] == "echo hi > shell.txt", waiting
    status, answered = hive.request("POST", f"sessions/{name}/deny", {})
    assert status == 200 and answered["keys"] == ["n", "Enter"], answered
    wait_state(hive, name, "idle")
    assert not (worktree / "shell.txt").exists()
    # A repo file named in the prompt: aider asks to add it before it calls the model.
    prompt(hive, name, "SCENARIO:mention src/app.py")
    waiting = wait_state(hive, name, "waiting", reason="permission")
    assert (waiting["tool"], waiting["detail"]) == ("Add file to the chat?", "src/app.py")
    assert hive.request("POST", f"sessions/{name}/approve", {})[0] == 200
    wait_state(hive, name, "idle")
    assert re.search(r"^notes\.txt src/app\.py$|^src/app\.py notes\.txt$", screen(hive, name),
                     re.MULTILINE), screen(hive, name)  # the files in the chat, over the prompt
    names = transitions(hive, name)
    assert names.count("waiting") == 3 and names.count("working") >= 4, names

    # Usage: aider's log, one row per reply, exactly what aider printed for each.
    printed = _REPORT_RE.findall(screen(hive, name, lines=2000))
    assert len(printed) == 4, printed
    logged = [json.loads(x)["properties"] for x in log.read_text().splitlines()
              if json.loads(x)["event"] == "message_send"]
    assert len(logged) == 4, logged

    def rows() -> list[dict[str, Any]] | None:
        got = hive.get(f"usage/rows?session={name}")["rows"]
        return got if len(got) == 4 else None
    got = wait(rows, "four usage rows")
    assert [r["agent"] for r in got] == ["aider"] * 4
    assert {r["model"] for r in got} == {f"openai/{MODEL}"}
    for row, line, (sent, received, message_cost, _session) in zip(got, logged, printed):
        assert (row["input"], row["output"]) == (line["prompt_tokens"], line["completion_tokens"])
        assert row["cost"] == pytest.approx(line["cost"]) and row["cost"] > 0
        assert (aider_tokens(row["input"]), aider_tokens(row["output"])) == (sent, received)
        assert aider_cost(row["cost"]) == message_cost
    assert aider_cost(sum(r["cost"] for r in got)) == printed[-1][3]
    report = hive.get(f"usage?session={name}")["totals"]
    assert report["totalCost"] == pytest.approx(sum(r["cost"] for r in got))
    assert report["costComplete"] and report["requests"] == 4, report
    assert report["inputTokens"] == sum(line["prompt_tokens"] for line in logged), report
    # Streaming: aider counts tokens with its own tokenizer (the reply's usage is not asked
    # for); the fake's numbers differ, so this checks aider's accounting, not the fake's.
    assert len(api.calls) >= 4

    status, killed = hive.request("DELETE", f"sessions/{name}")
    assert status == 200, killed
    assert hive.request("GET", f"sessions/{name}")[0] == 404
    events = hive.get(f"events?session={name}&limit=10000")["events"]
    removed = [e for e in events if e["event"] == "SessionRemoved"]
    assert len(removed) == 1 and removed[0]["payload"]["killed"], removed
    rows_ = hive.get(f"transitions?session={name}")["transitions"]
    assert [(t["name"], t["source"]) for t in rows_ if t["name"] == "exited"] == [
        ("exited", "kill")], rows_
    assert log.exists()  # the spend stays on record after the session


# -- the backstop audit ---------------------------------------------------------------------
def test_a_task_edit_outside_its_scope_is_caught_by_the_audit(
        hive: HiveServer, api: FakeOpenAI) -> None:
    """No pre-tool hook: aider writes the file; the audit flags the task's violation."""
    repo = make_repo(hive.root, "repo-task")
    status, t = hive.request("POST", "tasks", {
        "id": "ad-audit", "repo": str(repo), "agent": "aider", "scope": ["src/**"],
        "check": ["true"], "prompt": "Note it.\nSCENARIO:write docs/x.md nope"})
    assert status == 201, t

    def flagged() -> dict[str, Any] | None:
        t = hive.get("tasks/ad-audit")
        return t if t["flags"].get("violations") else None
    try:
        task = wait(flagged, "the violation on task ad-audit", STARTUP)
    except AssertionError as exc:
        lines = [f"{e['id']} {e['agent']} {e['event']} {e['summary'][:160]}"
                 for e in hive.get("events?session=ad-audit&limit=10000")["events"]]
        raise AssertionError(f"{exc}\n{hive.get('tasks/ad-audit')}\n" + "\n".join(lines)
                             ) from None
    worktree = Path(task["worktree"])
    assert (worktree / "docs" / "x.md").read_text() == "nope\n"  # no hook stopped it
    assert [v["path"] for v in task["flags"]["violations"]] == ["docs/x.md"], task["flags"]
    events = hive.get("events?session=ad-audit&limit=10000")["events"]
    assert [e["payload"]["violation"]["path"] for e in events
            if e["event"] == "ScopeViolation"] == ["docs/x.md"]
    assert not [e for e in events if e["event"] == "HookDecided"]  # nothing to guard with
    session = hive.get("sessions/ad-audit")
    assert "--yes-always" in session["command"], session["command"]
    # The check passes, but the open violation needs a person: the task is blocked, not done.
    final = wait(lambda: (t := hive.get("tasks/ad-audit"))["state"]["name"] in (
        "done", "failed", "blocked") and t, "task ad-audit finished", STARTUP)
    assert final["state"]["name"] == "blocked", final["state"]
    assert final["state"]["reason"].startswith("scope_violation"), final["state"]


def test_an_unknown_local_model_gets_past_its_warning_and_costs_unknown(hive: HiveServer) -> None:
    """A model aider has no metadata for: the start-up question is answered, no $0 cost."""
    name = "ad-local"
    repo = make_repo(hive.root, "repo-local")
    status, created = hive.request("POST", "sessions", {
        "name": name, "agent": "aider", "cwd": str(repo), "worktree": True,
        "env": {"AIDER_MODEL": "openai/my-local-model"}})
    assert status == 201, created
    wait_state(hive, name, "idle", STARTUP)
    answered = [e for e in hive.get(f"events?session={name}&limit=1000")["events"]
                if e["event"] == "ScreenAnswered"]
    assert [e["payload"]["keys"] for e in answered] == [["n", "Enter"]], answered
    assert "[Yes]: n" in screen(hive, name) and "with whole edit format" in screen(hive, name)
    prompt(hive, name, "SCENARIO:text hi")
    got = wait(lambda: hive.get(f"usage/rows?session={name}")["rows"], "a usage row")
    assert [(r["model"], r["cost"]) for r in got] == [("openai/REDACTED", None)], got
    assert re.search(r"Tokens: \d+ sent, \d+ received\.\n", screen(hive, name))  # no cost
    assert hive.request("DELETE", f"sessions/{name}")[0] == 200
