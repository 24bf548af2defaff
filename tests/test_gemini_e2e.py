"""Hive Lab with the real Gemini CLI, end to end, through the REST API only.

The CLI is the unmodified ``@google/gemini-cli`` from the npm registry (0.61.0, installed by
``scripts/install-gemini.sh`` into ``.cache/gemini``), run by Hive Lab's built-in ``gemini``
profile, found on the Jupyter server's PATH. The model behind it is :class:`FakeGemini`, a
scripted local Gemini API (``GOOGLE_GEMINI_BASE_URL``): ``SCENARIO:write notes.txt hello``
makes the "model" call ``write_file``. Next to Hive Lab's hooks the project carries an
independent logging hook (committed in the repo's ``.gemini/settings.json``, so Hive Lab must
merge with it): its log is the ground truth of which hook events the CLI fired.

What was seen is in ``tests/gemini_support/NOTES.md``.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from support import HiveServer, wait_for

try:  # with or without tests/__init__.py
    from tests.gemini_support import cli as _cli
    from tests.gemini_support.fake_gemini import FakeGemini
    from tests.gemini_support.stats import parse_model_stats
except ImportError:  # pragma: no cover - tests/ itself on sys.path
    from gemini_support import cli as _cli  # type: ignore[no-redef]
    from gemini_support.fake_gemini import FakeGemini  # type: ignore[no-redef]
    from gemini_support.stats import parse_model_stats  # type: ignore[no-redef]

pytestmark = pytest.mark.e2e

STARTUP = 120.0  # ~5 s on an idle machine; far more at high load on the shared 2 cores
STEP = 60.0
EVENTS = ("SessionStart", "SessionEnd", "BeforeAgent", "AfterAgent", "BeforeModel", "AfterModel",
          "BeforeToolSelection", "BeforeTool", "AfterTool", "PreCompress", "Notification")


@pytest.fixture(scope="module")
def gemini() -> Path:
    path = _cli.find_or_install_gemini()
    if path is None:
        pytest.skip(f"real Gemini CLI unavailable: {_cli.skip_reason()}")
    return path


@pytest.fixture(scope="module")
def api() -> Any:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="module")
def hive(gemini: Path, api: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("hive-gemini")
    # Sessions get this HOME; tasks run unattended, so their edits are auto-approved by the
    # CLI (auto_edit) and shell commands allowed, and the guard alone decides (BeforeTool
    # runs before any approval; its "ask" brings the dialog back).
    env = _cli.private_home(base, [tmp_path_factory.getbasetemp()], api.env())
    task_env = _cli.private_home(base / "tasks", [tmp_path_factory.getbasetemp()], api.env(),
                                 approval_mode="auto_edit", allowed=("run_shell_command",))
    srv = HiveServer(base / "hive", extra_path=[str(gemini.parent)],
                     drop_env_prefixes=("GEMINI_", "GOOGLE_"),
                     extra_config={"profiles": {"gemini": {"env": task_env}},
                                   "task_interval": 0.3})
    srv.session_env = env  # type: ignore[attr-defined]
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


def make_repo(root: Path, name: str, hook_log: Path) -> Path:
    """A git repo whose committed .gemini/settings.json has the independent logging hook."""
    path = root / name
    (path / "src").mkdir(parents=True)
    (path / "docs").mkdir()
    (path / "src" / "app.py").write_text("print('app')\n")
    (path / "docs" / "index.md").write_text("# docs\n")
    command = _cli.hook_logger(hook_log, root / f"{name}-bin")
    settings = {"hooks": {e: [{"matcher": "*" if "Tool" in e else "", "hooks": [
        {"type": "command", "command": command, "name": "independent", "timeout": 30000}]}]
        for e in EVENTS}, "ui": {"hideTips": True}}
    (path / ".gemini").mkdir()
    (path / ".gemini" / "settings.json").write_text(json.dumps(settings, indent=1))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


# -- REST helpers ---------------------------------------------------------------------------
def state(srv: HiveServer, name: str) -> dict[str, Any]:
    return srv.get(f"sessions/{name}")["state"]


def screen(srv: HiveServer, name: str) -> str:
    return srv.get(f"sessions/{name}/screen")["text"]


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


def events(srv: HiveServer, session: str, name: str | None = None) -> list[dict[str, Any]]:
    q = f"events?session={session}&limit=10000" + (f"&event={name}" if name else "")
    return srv.get(q)["events"]


# -- a session ------------------------------------------------------------------------------
def test_gemini_session_through_the_api(hive: HiveServer, api: FakeGemini,
                                        tmp_path: Path) -> None:
    """Spawn in a worktree, prompt, working, a confirmation as waiting, approve, idle, kill."""
    name = "gm-main"
    hook_log = tmp_path / "independent-hooks.jsonl"
    repo = make_repo(hive.root, "repo-session", hook_log)
    status, created = hive.request("POST", "sessions", {
        "name": name, "agent": "gemini", "cwd": str(repo), "worktree": True,
        "env": hive.session_env})  # type: ignore[attr-defined]
    assert status == 201, created
    assert created["agent"] == "gemini" and created["command"][0] == "gemini"
    worktree = Path(created["cwd"])
    assert worktree != repo and (worktree / "src" / "app.py").exists(), created
    # Hive Lab merged its hooks with the user's: both are in the worktree's settings.
    settings = json.loads((worktree / ".gemini" / "settings.json").read_text())
    for event in EVENTS:
        commands = [h["command"] for g in settings["hooks"][event] for h in g["hooks"]]
        assert any("hooklog" in c for c in commands), (event, commands)
        assert any("hive_lab_hook" in c or "hook.py" in c for c in commands), (event, commands)
        assert "hive-lab" in [h.get("name") for g in settings["hooks"][event] for h in g["hooks"]]
    assert settings["ui"] == {"hideTips": True}
    # ... and that edit of a committed project file is not the agent's change.
    assert git(worktree, "status", "--porcelain") == ""
    live = hive.get(f"sessions/{name}/git")["git"]
    assert not live["unstaged"] and not live["untracked"], live

    wait_state(hive, name, "idle", STARTUP)
    assert "Type your message" in screen(hive, name)
    assert "hive_lab_hook --agent" not in screen(hive, name)  # the warning names "hive-lab"
    status, body = hive.request("POST", f"sessions/{name}/input",
                                {"text": "SCENARIO:write notes.txt hello", "enter": True})
    assert status == 200, body
    waiting = wait_state(hive, name, "waiting", reason="permission")
    # The state comes from the Notification(ToolPermission) hook, fired just before the
    # dialog is drawn: the screen catches up a moment later.
    shown = wait(lambda: "Apply this change?" in (t := screen(hive, name)) and t,
                 "the confirmation on screen")
    assert "Apply this change?" in shown and "1. Allow once" in shown, shown
    assert waiting["tool"] == "write_file", waiting
    assert not (worktree / "notes.txt").exists()
    status, answered = hive.request("POST", f"sessions/{name}/approve", {})
    assert status == 200, answered
    assert answered["keys"] == ["1"] and answered["tool"] == "write_file", answered
    # Waited for by content: the file exists a moment before its text is in it.
    wait(lambda: (worktree / "notes.txt").exists()
         and (worktree / "notes.txt").read_text() == "hello", "notes.txt written")
    wait_state(hive, name, "idle")
    names = [t["name"] for t in hive.get(f"transitions?session={name}")["transitions"]]
    assert "working" in names and names.index("working") < len(names) - 1 - names[::-1].index(
        "waiting"), names

    # The CLI's own hooks and Hive Lab's saw the same turn.
    fired = [p["hook_event_name"] for p in _cli.read_log(hook_log)]
    for e in ("SessionStart", "BeforeAgent", "BeforeModel", "AfterModel", "BeforeTool",
              "Notification", "AfterTool", "AfterAgent"):
        assert e in fired, (e, fired)
    stored = {e["event"] for e in events(hive, name)}
    assert {"BeforeAgent", "BeforeTool", "Notification", "AfterTool", "AfterAgent"} <= stored

    status, killed = hive.request("DELETE", f"sessions/{name}")
    assert status == 200, killed
    assert hive.request("GET", f"sessions/{name}")[0] == 404
    removed = [e for e in events(hive, name) if e["event"] == "SessionRemoved"]
    assert len(removed) == 1 and removed[0]["payload"]["killed"], removed
    rows = hive.get(f"transitions?session={name}")["transitions"]
    assert [(t["name"], t["source"]) for t in rows if t["name"] == "exited"] == [
        ("exited", "kill")], rows
    # Hive Lab's hooks left the worktree's settings; the user's are as committed.
    settings = json.loads((worktree / ".gemini" / "settings.json").read_text())
    assert settings == json.loads((repo / ".gemini" / "settings.json").read_text())
    assert git(worktree, "ls-files", "-v", ".gemini/settings.json").startswith("H ")  # not S
    (tmp_path / "fired.json").write_text(json.dumps(_cli.read_log(hook_log), indent=1))


# -- usage ----------------------------------------------------------------------------------
def test_gemini_usage_matches_the_api_and_the_cli_own_stats(hive: HiveServer, api: FakeGemini,
                                                            tmp_path: Path) -> None:
    """Rows from the CLI's chat file, one per main-loop response: the tokens the fake API
    sent, the CLI's own ``/stats model`` figures, cost from the shipped (reported) prices."""
    name, model = "gm-usage", "gemini-2.5-pro"
    repo = make_repo(hive.root, "repo-usage", tmp_path / "usage-hooks.jsonl")
    first = len(api.sent)
    status, created = hive.request("POST", "sessions", {
        "name": name, "agent": "gemini", "cwd": str(repo), "command": ["gemini", "--model", model],
        "env": hive.session_env})  # type: ignore[attr-defined]
    assert status == 201, created
    wait_state(hive, name, "idle", STARTUP)
    hive.request("POST", f"sessions/{name}/input",
                 {"text": "SCENARIO:text hello there friend", "enter": True})
    wait(lambda: "✦ hello there friend" in screen(hive, name), "the answer")  # not the prompt
    wait_state(hive, name, "idle")
    hive.request("POST", f"sessions/{name}/input",
                 {"text": "SCENARIO:write notes.txt hi", "enter": True})
    wait_state(hive, name, "waiting", reason="permission")
    # The Notification hook comes a moment before the dialog is drawn: approve once it is.
    wait(lambda: "Apply this change?" in screen(hive, name), "the confirmation on screen")
    status, body = hive.request("POST", f"sessions/{name}/approve", {})
    assert status == 200, body
    wait(lambda: "Wrote notes.txt" in screen(hive, name), "the second answer")
    wait_state(hive, name, "idle")
    main = [s for s in api.sent[first:] if s.verb == "streamGenerateContent"]
    assert len(main) == 3 and {s.model for s in main} == {model}, api.sent[first:]

    got = wait(lambda: (r := hive.get(f"usage/rows?session={name}")["rows"]) and len(r) >= 3
               and r, "three usage rows")
    assert len(got) == 3 and {(r["agent"], r["model"]) for r in got} == {("gemini", model)}
    for row, sent in zip(got, main):
        u = sent.usage
        assert row["input"] == u["promptTokenCount"] - u["cachedContentTokenCount"], (row, u)
        assert row["cache_read"] == u["cachedContentTokenCount"]
        assert row["output"] == u["candidatesTokenCount"] + u["thoughtsTokenCount"]
        want = (row["input"] * 1.25 + row["output"] * 10 + row["cache_read"] * 0.125) / 1e6
        assert row["cost"] == pytest.approx(want) and row["cost"] > 0
    report = hive.get(f"usage?session={name}")["totals"]
    assert report["requests"] == 3 and report["costComplete"], report

    # What the CLI itself shows for the same run.
    hive.request("POST", f"sessions/{name}/input", {"text": "/stats model", "enter": True})
    pressed = [time.monotonic()]

    def table() -> dict[str, Any]:
        text = screen(hive, name)
        found = parse_model_stats(text)
        # Under load an Enter can be lost (NOTES.md, "Fixed on the way" 4): the box still
        # holds the command, the placeholder is gone. Press it again, now and then.
        if not found and "Type your message" not in text and time.monotonic() - pressed[0] > 3:
            hive.request("POST", f"sessions/{name}/keys", {"keys": ["Enter"]})
            pressed[0] = time.monotonic()
        return found
    try:
        shown = wait(table, "the /stats model table")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nscreen:\n{screen(hive, name)}") from None
    own = shown[model]
    assert own["roles"]["main"]["requests"] == len(got), shown
    assert own["input"] == sum(r["input"] for r in got)
    assert own["cache_reads"] == sum(r["cache_read"] for r in got)
    assert own["output"] + own["thoughts"] == sum(r["output"] for r in got)
    assert own["total"] == sum(r["input"] + r["output"] + r["cache_read"] for r in got)
    # With a model named there is no router: every call is a main-loop one, so the chat file
    # holds all of it (under "Auto" the router's calls are in /stats only: NOTES.md).
    assert all(s.verb == "streamGenerateContent" for s in api.sent[first:]), api.sent[first:]
    assert set(shown) == {model} and set(own["roles"]) == {"main"}, shown
    assert hive.request("DELETE", f"sessions/{name}")[0] == 200


# -- the scope guard ------------------------------------------------------------------------
def test_a_task_write_outside_its_scope_is_denied_before_it_happens(
        hive: HiveServer, api: FakeGemini, tmp_path: Path) -> None:
    repo = make_repo(hive.root, "repo-task", tmp_path / "task-hooks.jsonl")
    status, t = hive.request("POST", "tasks", {
        "id": "gm-deny", "repo": str(repo), "agent": "gemini", "scope": ["src/**"],
        "check": ["test", "-f", "src/ok.py"],
        "prompt": "Add src/ok.py.\nSCENARIO:steps write docs/x.md nope ;; write src/ok.py OK = 1"})
    assert status == 201, t

    def done() -> dict[str, Any] | None:
        t = hive.get("tasks/gm-deny")
        return t if t["state"]["name"] in ("done", "failed", "blocked") else None
    try:
        final = wait(done, "task gm-deny finished", STARTUP)
    except AssertionError as exc:
        lines = [f"{e['id']} {e['agent']} {e['event']} {e['summary'][:160]}"
                 for e in events(hive, "gm-deny")]
        raise AssertionError(f"{exc}\n{hive.get('tasks/gm-deny')['state']}\n" + "\n".join(lines)
                             + "\n" + screen(hive, "gm-deny")) from None
    assert final["state"]["name"] == "done", final["state"]
    worktree = Path(final["worktree"])
    assert (worktree / "src" / "ok.py").read_text() == "OK = 1"
    assert not (worktree / "docs" / "x.md").exists()
    decided = events(hive, "gm-deny", "HookDecided")
    denies = [d for d in decided if d["payload"]["verdict"]["action"] == "deny"]
    assert [(d["payload"]["tool"]) for d in denies] == ["write_file"], decided
    reason = denies[0]["payload"]["verdict"]["reason"]
    assert "docs/x.md" in reason
    # The model was told the reason as the tool's error (exit 2, stderr) in its next request.
    told = [json.dumps(p["functionResponse"]) for c in api.calls
            for m in c.body.get("contents") or [] for p in m.get("parts") or []
            if "functionResponse" in p and "docs/x.md" in json.dumps(p["functionResponse"])]
    assert told and any("blocked" in s.lower() for s in told), told


def test_a_task_shell_write_outside_its_scope_brings_up_the_dialog(
        hive: HiveServer, api: FakeGemini, tmp_path: Path) -> None:
    """The guard's "ask" ({"decision": "ask"}) forces the confirmation of an allowed tool."""
    repo = make_repo(hive.root, "repo-ask", tmp_path / "ask-hooks.jsonl")
    status, t = hive.request("POST", "tasks", {
        "id": "gm-ask", "repo": str(repo), "agent": "gemini", "scope": ["src/**"],
        "check": ["true"], "prompt": "Note it.\nSCENARIO:steps shell echo x > docs/y.md"})
    assert status == 201, t
    waiting = wait(lambda: (t := hive.get("tasks/gm-ask"))["state"]["name"] in (
        "waiting", "done", "failed", "blocked") and t, "task gm-ask waiting", STARTUP)
    assert waiting["state"]["name"] == "waiting", waiting["state"]
    decided = events(hive, "gm-ask", "HookDecided")
    assert [d["payload"]["verdict"]["action"] for d in decided] == ["ask"], decided
    shown = wait(lambda: "Allow execution" in (s := screen(hive, "gm-ask")) and s,
                 "the dialog on screen")
    assert "echo x > docs/y.md" in shown
    worktree = Path(waiting["worktree"])
    assert not (worktree / "docs" / "y.md").exists()
    status, body = hive.request("POST", "sessions/gm-ask/deny", {})
    assert status == 200 and body["keys"] == ["Escape"], body
    done = wait(lambda: (t := hive.get("tasks/gm-ask"))["state"]["name"] in (
        "done", "failed", "blocked") and t, "task gm-ask finished", STARTUP)
    assert done["state"]["name"] == "done", done["state"]
    assert not (worktree / "docs" / "y.md").exists()
    assert [(g["action"], g["tool"]) for g in done["flags"]["guarded"]] == [
        ("ask", "run_shell_command")]
