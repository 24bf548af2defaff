"""Hive Lab with the real Codex CLI, end to end, through the REST API only.

The CLI is the unmodified ``@openai/codex`` from the npm registry (0.169.0 with its native
``@openai/codex-linux-x64`` binary, installed by ``scripts/install-codex.sh`` into
``.cache/codex``), run by Hive Lab's built-in ``codex`` profile, found on the Jupyter server's
PATH. The model behind it is :class:`FakeOpenAI`, a scripted local Responses API (a custom
model provider in a private ``CODEX_HOME``): ``SCENARIO:ask echo hi > a.txt`` makes the
"model" ask to run a shell command outside the sandbox, which brings up Codex's approval
question. Next to Hive Lab's hooks, the user config layer of that ``CODEX_HOME`` carries an
independent logging hook: its log is the ground truth of which hook events the CLI fired.

What was seen is in ``tests/codex_support/NOTES.md``.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from support import HiveServer, wait_for

try:  # with or without tests/__init__.py
    from tests.codex_support import cli as _cli
    from tests.codex_support.fake_openai import FakeOpenAI, kind_of, plan
except ImportError:  # pragma: no cover - tests/ itself on sys.path
    from codex_support import cli as _cli  # type: ignore[no-redef]
    from codex_support.fake_openai import (  # type: ignore[no-redef]
        FakeOpenAI, kind_of, plan)

pytestmark = pytest.mark.e2e

STARTUP = 120.0  # ~3 s on an idle machine; far more at high load on the shared 2 cores
STEP = 60.0
# Every event 0.169.0 knows (PreModelRequest too: the logger sees what Hive Lab leaves out).
EVENTS = ("SessionStart", "UserPromptSubmit", "PreModelRequest", "PreToolUse",
          "PermissionRequest", "PostToolUse", "PreCompact", "PostCompact", "SubagentStart",
          "SubagentStop", "Interrupt", "Stop", "SessionEnd")


@pytest.fixture(scope="module")
def codex() -> Path:
    path = _cli.find_or_install_codex()
    if path is None:
        pytest.skip(f"real Codex CLI unavailable: {_cli.skip_reason()}")
    return path


@pytest.fixture(scope="module")
def api() -> Any:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def hive(codex: Path, api: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("hive-codex")
    log = base / "independent-hooks.jsonl"
    logger = _cli.hook_logger(log, base / "bin")
    # Sessions get this CODEX_HOME (folders untrusted: Hive Lab's first-run cue answers);
    # tasks their own (the guard alone decides; Codex's approval policy "never" would not ask).
    env = _cli.private_home(base / "session", api.base_url,
                            extra=_cli.logger_hooks_toml(logger, EVENTS, base / "session"))
    task_env = _cli.private_home(base / "tasks", api.base_url,
                                 trusted=[tmp_path_factory.getbasetemp()])
    srv = HiveServer(base / "hive", extra_path=[str(codex.parent)],
                     drop_env_prefixes=("CODEX_", "OPENAI_"),
                     extra_config={"profiles": {"codex": {"env": task_env}},
                                   "task_interval": 0.3})
    srv.session_env = env  # type: ignore[attr-defined]
    srv.hook_log = log  # type: ignore[attr-defined]
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


def make_repo(root: Path, name: str, project_hook_log: Path | None = None) -> Path:
    """A git repo; with ``project_hook_log``, it commits a ``.codex/hooks.json`` whose hook
    (never reviewed by anyone) would append to that file."""
    path = root / name
    (path / "src").mkdir(parents=True)
    (path / "docs").mkdir()
    (path / "src" / "app.py").write_text("print('app')\n")
    (path / "docs" / "index.md").write_text("# docs\n")
    if project_hook_log is not None:
        (path / ".codex").mkdir()
        hook = {"type": "command", "command": f"echo ran >> '{project_hook_log}'"}
        (path / ".codex" / "hooks.json").write_text(json.dumps({"hooks": {
            e: [{"hooks": [hook]}] for e in ("SessionStart", "UserPromptSubmit", "Stop")}}))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


# -- REST helpers ---------------------------------------------------------------------------
def state(srv: HiveServer, name: str) -> dict[str, Any]:
    return srv.get(f"sessions/{name}")["state"]


def screen(srv: HiveServer, name: str) -> str:
    return srv.get(f"sessions/{name}/screen")["text"]


def _fetch(srv: HiveServer, path: str) -> Any:
    """GET that never raises: a diagnosis must not hide the failure it explains."""
    try:
        status, body = srv.request("GET", path)
    except Exception as exc:  # noqa: BLE001 - the server may be the thing that broke
        return f"<GET {path} failed: {exc!r}>"
    return body if status == 200 else f"<GET {path}: {status} {body}>"


def _api_calls(api: FakeOpenAI | None) -> list[str]:
    """What the scripted API was asked, one line per request: kind, thread, the newest input
    items (a prompt's first words, a tool call, a tool result) and what it answered."""
    if api is None:
        return []
    out = []
    for n, call in enumerate(api.responses()):
        body = call.body
        meta = body.get("client_metadata") if isinstance(body.get("client_metadata"), dict) else {}
        items = [i for i in body.get("input") or [] if isinstance(i, dict)]
        tail = []
        for item in items[-3:]:
            kind = item.get("type", "message")
            text = (item.get("output") or item.get("arguments") or item.get("input")
                    or item.get("content") or "")
            tail.append(f"{kind}/{item.get('role', '')}: {str(text)[:120]!r}")
        answer = [(i.get("type"), i.get("name") or str(i.get("content"))[:80])
                  for i in plan(body)]
        out.append(f"  #{n} {kind_of(body)} thread={str(meta.get('thread_id'))[:8]} "
                   f"turn={str(meta.get('turn_id'))[:8]} items={len(items)}\n    "
                   + "\n    ".join(tail) + f"\n    -> {answer}")
    return out


def explain(srv: HiveServer, name: str, api: FakeOpenAI | None = None,
            task: bool = False) -> str:
    """Everything there is to know about a stuck session (and its task): state, screen,
    transitions, stored events, hook spool, the independent hook log, the API's requests."""
    try:
        return _explain(srv, name, api, task)
    except Exception as exc:  # noqa: BLE001 - never let the diagnosis replace the failure
        return f"<diagnosis failed: {exc!r}>"


def _explain(srv: HiveServer, name: str, api: FakeOpenAI | None, task: bool) -> str:
    parts: list[str] = []
    if task:
        t = _fetch(srv, f"tasks/{name}")
        if isinstance(t, dict):
            parts.append(f"task state: {t.get('state')}")
            parts.append(f"task attempts: {json.dumps(t.get('attempts'), default=str)[:1500]}")
            parts.append(f"task flags: {json.dumps(t.get('flags'), default=str)[:1500]}")
        else:
            parts.append(f"task: {t}")
    s = _fetch(srv, f"sessions/{name}")
    parts.append(f"session: {json.dumps(s.get('state'), default=str) if isinstance(s, dict) else s}")
    trans = _fetch(srv, f"transitions?session={name}&limit=10000")
    if isinstance(trans, dict):
        parts.append("transitions:\n" + "\n".join(
            f"  {t.get('since')} {t.get('name')} {t.get('reason')} ({t.get('source')})"
            for t in trans.get("transitions", [])[-40:]))
    evs = _fetch(srv, f"events?session={name}&limit=10000")
    if isinstance(evs, dict):
        parts.append("last events:\n" + "\n".join(
            f"  {e.get('id')} fired {e.get('time')} got {e.get('received')} {e.get('agent')} "
            f"{e.get('event')} "
            f"{str(e.get('summary'))[:160]}" for e in evs.get("events", [])[-40:]))
    spooled = sorted(p.name for p in (srv.data_dir / "spool").glob("*")) \
        if (srv.data_dir / "spool").is_dir() else []
    parts.append(f"hook spool files: {spooled}")
    log = getattr(srv, "hook_log", None)
    if log is not None:
        fired = [p.get("hook_event_name") for p in _cli.read_log(log)]
        parts.append(f"independent hook log (sessions only, last 30): {fired[-30:]}")
    parts.append("scripted API requests:\n" + "\n".join(_api_calls(api)))
    scr = _fetch(srv, f"sessions/{name}/screen")
    parts.append("screen:\n" + (scr.get("text", "") if isinstance(scr, dict) else str(scr)))
    return "\n".join(parts)


def wait(pred: Callable[[], Any], what: str, timeout: float = STEP,
         diagnose: Callable[[], str] | None = None) -> Any:
    """``wait_for``; on a timeout the failure carries ``diagnose()`` (see :func:`explain`)."""
    try:
        return wait_for(pred, timeout=timeout, interval=0.25, what=what)
    except AssertionError as exc:
        if diagnose is None:
            raise
        raise AssertionError(f"{exc}\n{diagnose()}") from None


def wait_state(srv: HiveServer, name: str, want: str, timeout: float = STEP,
               api: FakeOpenAI | None = None, **fields: Any) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        s = state(srv, name)
        return s if s["name"] == want and all(s.get(k) == v for k, v in fields.items()) else None
    return wait(check, f"state {want} {fields} of {name}", timeout,
                lambda: explain(srv, name, api))


def wait_task(srv: HiveServer, task_id: str, api: FakeOpenAI,
              timeout: float = STARTUP) -> dict[str, Any]:
    """Wait for the task to end (done, failed or blocked); a timeout explains why not."""
    return wait(lambda: (t := srv.get(f"tasks/{task_id}"))["state"]["name"] in (
        "done", "failed", "blocked") and t, f"task {task_id} finished", timeout,
        lambda: explain(srv, task_id, api, task=True))


def events(srv: HiveServer, session: str, name: str | None = None) -> list[dict[str, Any]]:
    q = f"events?session={session}&limit=10000" + (f"&event={name}" if name else "")
    return srv.get(q)["events"]


def prompt(srv: HiveServer, name: str, text: str) -> None:
    status, body = srv.request("POST", f"sessions/{name}/input", {"text": text, "enter": True})
    assert status == 200, body


def _k(text: str) -> float:
    """``5.75K`` / ``43`` / ``1.2M`` as Codex's /status prints them."""
    mult = {"K": 1e3, "M": 1e6}.get(text[-1:], 1.0)
    return float(text.rstrip("KM").replace(",", "")) * mult


# -- a session ------------------------------------------------------------------------------
def test_codex_session_through_the_api(hive: HiveServer, api: FakeOpenAI) -> None:
    """Spawn in a worktree, prompt, working, an approval as waiting, approve, deny, idle,
    usage from the rollout against Codex's own /status, kill, exit."""
    name = "cx-main"
    unreviewed = hive.root / "project-hook.log"
    repo = make_repo(hive.root, "repo-session", unreviewed)
    status, created = hive.request("POST", "sessions", {
        "name": name, "agent": "codex", "cwd": str(repo), "worktree": True,
        "env": hive.session_env})  # type: ignore[attr-defined]
    assert status == 201, created
    assert created["agent"] == "codex" and created["command"][0] == "codex"
    # Only Hive Lab's own hooks were trusted (in CODEX_HOME), not every hook of the run.
    assert "--dangerously-bypass-hook-trust" not in created["command"], created["command"]
    config = Path(hive.session_env["CODEX_HOME"]) / "config.toml"  # type: ignore[attr-defined]
    assert "/<session-flags>/config.toml:pre_tool_use:0:0" in config.read_text()
    worktree = Path(created["cwd"])
    assert worktree != repo and (worktree / "src" / "app.py").exists(), created
    def why() -> str:
        return explain(hive, name, api)
    assert git(worktree, "status", "--porcelain") == ""  # nothing written into the worktree

    # The "Trust this folder?" screen is answered by the profile's first-run cue, and so is
    # "Hooks need review" for the repository's hooks: "Continue without trusting".
    wait_state(hive, name, "idle", STARTUP, api=api)
    assert "Ask Codex to do anything" in screen(hive, name)
    answered = [(e["payload"]["cue"], e["payload"]["keys"])
                for e in events(hive, name, "ScreenAnswered")]
    assert answered == [(r"Trust this folder\?", ["Enter"]),
                        (r"3\. Continue without trusting", ["3"])], answered

    # 1. approve a command
    prompt(hive, name, "SCENARIO:ask echo hi > asked.txt")
    waiting = wait_state(hive, name, "waiting", reason="permission", api=api)
    assert waiting["tool"] == "Bash", waiting
    shown = wait(lambda: "Would you like to run the following command?" in
                 (t := screen(hive, name)) and t, "the approval question on screen", diagnose=why)
    assert "$ echo hi > asked.txt" in shown and "Yes, proceed (y)" in shown, shown
    assert "Reason: Scripted test: may I run echo hi > asked.txt?" in shown, shown
    assert not (worktree / "asked.txt").exists()
    status, answered = hive.request("POST", f"sessions/{name}/approve", {})
    assert status == 200, answered
    assert answered["keys"] == ["y"] and answered["tool"] == "Bash", answered
    wait(lambda: (worktree / "asked.txt").exists(), "asked.txt written", diagnose=why)
    assert (worktree / "asked.txt").read_text() == "hi\n"
    wait_state(hive, name, "idle", api=api)
    names = [t["name"] for t in hive.get(f"transitions?session={name}")["transitions"]]
    assert "working" in names and names.index("working") < len(names) - 1 - names[::-1].index(
        "waiting"), names

    # 2. deny one
    prompt(hive, name, "SCENARIO:ask echo no > denied.txt")
    wait_state(hive, name, "waiting", reason="permission", api=api)
    wait(lambda: "Would you like to run" in screen(hive, name), "the second question", diagnose=why)
    status, answered = hive.request("POST", f"sessions/{name}/deny", {})
    assert status == 200 and answered["keys"] == ["Escape"], answered
    wait_state(hive, name, "idle", api=api)
    shown = wait(lambda: "You canceled the request" in (t := screen(hive, name)) and t,
                 "the cancellation on screen", diagnose=why)
    assert not (worktree / "denied.txt").exists(), shown

    # 3. a patch inside the workspace runs unasked (workspace-write, on-request)
    prompt(hive, name, "SCENARIO:write notes.txt hello")
    wait(lambda: (worktree / "notes.txt").exists(), "notes.txt written", diagnose=why)
    assert (worktree / "notes.txt").read_text() == "hello\n"
    wait_state(hive, name, "idle", api=api)

    # The CLI's own hooks and Hive Lab's saw the same events, once each and in order. The
    # order is the agent's (when each fired): an event the hook client spooled under load is
    # stored when the spool is drained (every 0.5 s here), after events fired later.
    fired = [p for p in _cli.read_log(hive.hook_log)  # type: ignore[attr-defined]
             if p.get("cwd") == str(worktree)]
    mine = [p["hook_event_name"] for p in fired if p["hook_event_name"] != "PreModelRequest"]

    def stored_in_fired_order() -> list[str]:
        got = [e for e in events(hive, name) if e["agent"] == "codex"]
        return [e["event"] for e in sorted(got, key=lambda e: (e["time"], e["id"]))]
    stored = wait(lambda: (s := stored_in_fired_order()) == mine and s,
                  "Hive Lab's stored hook events equal the independent hook log",
                  diagnose=lambda: f"stored {stored_in_fired_order()}\nlog    {mine}\n{why()}")
    for e in ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest",
              "PostToolUse", "Stop"):
        assert e in stored, (e, stored)
    tools = [(p["hook_event_name"], p.get("tool_name")) for p in fired
             if p["hook_event_name"] in ("PreToolUse", "PermissionRequest")]
    assert ("PreToolUse", "apply_patch") in tools, tools

    # The repository's own hook, trusted by nobody, never ran (Codex's review still holds).
    assert not unreviewed.exists()

    # Usage: Hive Lab's rows from the rollout equal what the stand-in reported, and agree
    # with Codex's own /status (non-cached input + output, rounded to 3 digits).
    rollout = [p["transcript_path"] for p in fired if p.get("transcript_path")][0]
    assert Path(rollout).name.startswith("rollout-"), rollout

    thread = fired[0]["session_id"]
    sent = [u.usage for u in api.usages if u.thread == thread and u.kind == "turn"]
    assert len(sent) == 5, api.usages  # ask, answer; ask (denied: no answer); patch, answer
    want_out = sum(u["output_tokens"] for u in sent)
    want_cached = sum(u["input_tokens_details"]["cached_tokens"] for u in sent)
    want_in = sum(u["input_tokens"] for u in sent) - want_cached
    rows = wait(lambda: (r := hive.get(f"usage/rows?session={name}")["rows"]) and
                sum(x["output"] for x in r) == want_out and r, "usage rows from the rollout",
                diagnose=why)
    assert sum(r["input"] for r in rows) == want_in, rows
    assert sum(r["cache_read"] for r in rows) == want_cached, rows
    assert {r["model"] for r in rows} == {_cli.MODEL}
    assert all(r["cost"] > 0 for r in rows), rows  # gpt-5.5 is priced
    prompt(hive, name, "/status")
    shown = wait(lambda: re.search(r"Token usage:\s+(\S+) total\s+\((\S+) input \+ (\S+) output\)",
                                   screen(hive, name)), "Codex's /status", diagnose=why)
    total, inp, out = (_k(g) for g in shown.groups())
    assert out == want_out, (shown.group(0), want_out)
    assert abs(inp - want_in) <= max(5, want_in * 0.006), (shown.group(0), want_in)
    assert abs(total - (want_in + want_out)) <= max(5, total * 0.006), shown.group(0)

    status, killed = hive.request("DELETE", f"sessions/{name}")
    assert status == 200, killed
    assert hive.request("GET", f"sessions/{name}")[0] == 404
    removed = [e for e in events(hive, name) if e["event"] == "SessionRemoved"]
    assert len(removed) == 1 and removed[0]["payload"]["killed"], removed
    rows = hive.get(f"transitions?session={name}")["transitions"]
    assert [(t["name"], t["source"]) for t in rows if t["name"] == "exited"] == [
        ("exited", "kill")], rows


# -- the scope guard ------------------------------------------------------------------------
def test_a_task_write_outside_its_scope_is_denied_before_it_happens(
        hive: HiveServer, api: FakeOpenAI) -> None:
    repo = make_repo(hive.root, "repo-task")
    status, t = hive.request("POST", "tasks", {
        "id": "cx-deny", "repo": str(repo), "agent": "codex", "scope": ["src/**"],
        "check": ["test", "-f", "src/ok.py"],
        "prompt": "Add src/ok.py.\nSCENARIO:steps write docs/x.md nope ;; write src/ok.py OK = 1"})
    assert status == 201, t

    final = wait_task(hive, "cx-deny", api)
    assert final["state"]["name"] == "done", final["state"]
    worktree = Path(final["worktree"])
    assert (worktree / "src" / "ok.py").read_text() == "OK = 1\n"
    assert not (worktree / "docs" / "x.md").exists()
    decided = events(hive, "cx-deny", "HookDecided")
    denies = [d for d in decided if d["payload"]["verdict"]["action"] == "deny"]
    assert [d["payload"]["tool"] for d in denies] == ["apply_patch"], decided
    assert "docs/x.md" in denies[0]["payload"]["verdict"]["reason"]
    # The model was told the reason as the tool's output in its next request.
    told = [str(i.get("output")) for c in api.responses() for i in c.body.get("input") or []
            if isinstance(i, dict) and i.get("type", "").endswith("call_output")
            and "docs/x.md" in str(i.get("output"))]
    assert told and any("hive-lab guard" in s for s in told), told


def test_a_task_shell_write_outside_its_scope_is_refused_as_a_question(
        hive: HiveServer, api: FakeOpenAI) -> None:
    """The guard's "ask" for a shell write: Codex cannot be made to ask, so it is a deny
    whose reason says a person decides; the turn goes on."""
    repo = make_repo(hive.root, "repo-ask")
    status, t = hive.request("POST", "tasks", {
        "id": "cx-ask", "repo": str(repo), "agent": "codex", "scope": ["src/**"],
        "check": ["true"], "prompt": "Note it.\nSCENARIO:steps shell echo x > docs/y.md"})
    assert status == 201, t
    done = wait_task(hive, "cx-ask", api)
    assert done["state"]["name"] == "done", done["state"]
    worktree = Path(done["worktree"])
    assert not (worktree / "docs" / "y.md").exists()
    decided = events(hive, "cx-ask", "HookDecided")
    assert [(d["payload"]["verdict"]["action"], d["payload"]["tool"]) for d in decided] == [
        ("ask", "Bash")], decided
    assert [(g["action"], g["tool"]) for g in done["flags"]["guarded"]] == [("ask", "Bash")]
    told = [str(i.get("output")) for c in api.responses() for i in c.body.get("input") or []
            if isinstance(i, dict) and i.get("type", "").endswith("call_output")
            and "docs/y.md" in str(i.get("output"))]
    assert told and any("ask the user" in s for s in told), told
