"""The control room (part A) in a real JupyterLab, driven by a real headless Chromium.

One notebook cell makes ``ControlRoom()``; every assertion is on what the browser rendered or
on what the real tmux session received: approve and deny from Needs you (and the answer
refused once the dialog is gone), a question with choices (button and key), a live terminal
that changes, a diff, a budget pause shown and resumed, a browser notification for a new
question, and hostile agent text shown as text.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import nbformat
import pytest

from support import GIT_ENV, HiveServer, fire_hook, spawn, state_of, wait_for
from test_browser import CHROMIUM, computed, launch_browser, open_notebook, run_all_cells, write_lab_settings

HOSTILE = '<img src=x onerror="window.__hivePwned=1;alert(1)">'
ASKER = {"command": ["cat"], "hooks": "claude",
         "cues": {"permission": [r"Proceed\? \(y/n\)"]},
         "answers": {"approve": ["y", "Enter"], "deny": ["n", "Enter"]}}
# The dialog goes from the screen once answered (clear), as a real agent's does. It is drawn
# only once the file named by $0 exists: the test makes it after the hook is in (see ask).
ASK_SCRIPT = ('until [ -e "$0" ]; do sleep 0.05; done; '
              'printf "Proceed? (y/n) "; read a; clear; echo "answer:[$a]"; exec cat')
AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
PROFILES = {"asker": ASKER,
            "budgeted": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                         "capabilities": ["budgeted"], "env": GIT_ENV}}
ROOM_CELL = "from hive_lab.widgets.room import ControlRoom\nroom = ControlRoom()\nroom"
# Notifications: the real API, wrapped so the test sees each one; focus is the test's to set.
INIT_SCRIPT = """
window.__notes = [];
window.__hiveFocused = false;
const Real = window.Notification;
class Wrapped extends Real {
  constructor(title, options) { window.__notes.push({title, body: (options || {}).body});
                                super(title, options); }
}
window.Notification = Wrapped;
document.hasFocus = () => window.__hiveFocused;
"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveServer]:
    srv = HiveServer(tmp_path_factory.mktemp("room-browser"), extra_config={
        "profiles": PROFILES, "task_interval": 0.3, "usage_interval": 0.3, "budget_grace": 1.0})
    write_lab_settings(srv)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(ROOM_CELL)]
    nbformat.write(nb, srv.root / "room.ipynb")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        srv.kill_tmux()


@pytest.fixture(scope="module")
def room(lab: HiveServer) -> Iterator[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1100})
            context.grant_permissions(["notifications"], origin=lab.url.rstrip("/"))
            context.add_init_script(INIT_SCRIPT)
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            open_notebook(lab, page, "room.ipynb")
            run_all_cells(page)
            page.locator(".hive-view-needs").wait_for()
            yield {"page": page, "server": lab, "dialogs": dialogs}
        finally:
            browser.close()


def screen(server: HiveServer, name: str) -> str:
    return server.get(f"sessions/{name}/screen")["text"]


def ask(server: HiveServer, name: str, command: str = "make deploy") -> None:
    go = server.root / f".go-{name}"
    go.unlink(missing_ok=True)
    spawn(server, name, ["sh", "-c", ASK_SCRIPT, str(go)], cwd=server.root, agent="asker")
    # The hook first, as Claude Code fires PermissionRequest before it draws the dialog: were
    # the screen poll to see "Proceed?" first, the waiting (and its notification) would start
    # without the tool, and the hook after it changes neither. So the dialog is drawn only
    # once the hook's state (with its tool) is in.
    payload = {"hook_event_name": "PermissionRequest", "session_id": f"sid-{name}",
               "tool_name": "Bash", "tool_input": {"command": command}}
    assert fire_hook(server, name, payload).returncode == 0
    wait_for(lambda: state_of(server, name).get("tool") == "Bash", what=f"{name}'s hook in")
    go.touch()
    wait_for(lambda: "Proceed?" in screen(server, name), what="the dialog on screen")
    wait_for(lambda: state_of(server, name).get("reason") == "permission", what=f"{name} waiting")


def card(page: Any, session: str) -> Any:
    return page.locator(".hive-card", has=page.locator(".hive-card-title", has_text=re.compile(
        rf"^{re.escape(session)} ")))


def test_approve_and_deny_from_needs_you_and_refused_once_the_dialog_is_gone(
        room: dict[str, Any]) -> None:
    page, server = room["page"], room["server"]
    ask(server, "b-ok", "make deploy --prod")
    ask(server, "b-no", "rm -rf build")
    ok = card(page, "b-ok")
    ok.wait_for(timeout=20_000)
    assert ok.locator(".hive-cmd").inner_text() == "make deploy --prod"  # what is asked, verbatim
    card(page, "b-no").wait_for(timeout=20_000)
    assert int(page.locator(".hive-count").inner_text()) >= 2
    ok.locator("button", has_text="Approve").click()
    wait_for(lambda: "answer:[y]" in screen(server, "b-ok"), timeout=20, what="approve typed y")
    ok.locator(".hive-status", has_text="approved Bash for b-ok").wait_for()
    no = card(page, "b-no")
    no.locator("button", has_text="Deny").click()
    wait_for(lambda: "answer:[n]" in screen(server, "b-no"), timeout=20, what="deny typed n")

    # b-ok's hooks still say "waiting", but the dialog has left the screen (answered): the
    # card is still there, and a second Approve is refused with the reason; nothing is typed
    before = screen(server, "b-ok")
    ok.locator("button", has_text="Approve").click()
    ok.locator(".hive-status.hive-bad", has_text="shows no permission dialog").wait_for()
    assert screen(server, "b-ok") == before
    # once the agent goes on, its card goes
    assert fire_hook(server, "b-ok", {"hook_event_name": "PostToolUse", "session_id": "sid-b-ok",
                                      "tool_name": "Bash"}).returncode == 0
    ok.wait_for(state="detached", timeout=20_000)
    for name in ("b-ok", "b-no"):
        server.request("DELETE", f"sessions/{name}")


def test_a_question_with_choices_by_button_and_by_key(room: dict[str, Any]) -> None:
    page, server = room["page"], room["server"]
    spawn(server, "b-q", None, cwd=server.root, agent="hooked")
    question = {"hook_event_name": "PreToolUse", "session_id": "sid-q", "tool_name": "AskUserQuestion",
                "tool_input": {"questions": [{"question": f"Which database? {HOSTILE}", "options": [
                    {"label": "SQLite", "description": "one file"}, {"label": HOSTILE}]}]}}
    for payload in (question, {"hook_event_name": "Notification", "session_id": "sid-q",
                               "notification_type": "elicitation_dialog", "message": "A question"}):
        assert fire_hook(server, "b-q", payload).returncode == 0
    q = card(page, "b-q")
    q.wait_for(timeout=20_000)
    assert q.locator(".hive-question").inner_text() == f"Which database? {HOSTILE}"
    assert q.locator("button.hive-choice").all_inner_texts() == ["1. SQLite", f"2. {HOSTILE}"]
    q.locator("button.hive-choice", has_text="1. SQLite").click()
    wait_for(lambda: re.search(r"^1$", screen(server, "b-q"), re.M), timeout=20, what="1 typed")
    # the keyboard: focus the card, press 2 (JupyterLab's own shortcuts stay out of it)
    cells = page.locator(".jp-Notebook .jp-Cell").count()
    q.focus()
    page.keyboard.press("2")
    wait_for(lambda: re.search(r"^12$", screen(server, "b-q"), re.M), timeout=20, what="2 typed")
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells
    # a typed reply
    q.locator("input.hive-reply").fill("use both")
    q.locator("input.hive-reply").press("Enter")
    wait_for(lambda: "use both" in screen(server, "b-q"), timeout=20, what="reply typed")
    assert room["dialogs"] == [] and page.evaluate("() => window.__hivePwned === undefined")
    assert page.locator(".hive-room-view img").count() == 0
    server.request("DELETE", "sessions/b-q")


def test_a_notification_when_a_new_question_arrives_unless_focused(room: dict[str, Any]) -> None:
    page, server = room["page"], room["server"]
    page.evaluate("() => { window.__notes.length = 0; window.__hiveFocused = true; }")
    ask(server, "b-seen")
    card(page, "b-seen").wait_for(timeout=20_000)
    assert page.evaluate("() => window.__notes") == []  # the person is looking: no notification
    page.evaluate("() => { window.__hiveFocused = false; }")
    ask(server, "b-note", f"echo {HOSTILE}")
    card(page, "b-note").wait_for(timeout=20_000)
    notes = wait_for(lambda: page.evaluate("() => window.__notes"), timeout=20,
                     what="a notification")
    assert notes[0]["title"] == "b-note asks permission: Bash"
    assert f"echo {HOSTILE}" in notes[0]["body"]  # the exact request (plain text)
    assert page.evaluate("() => Notification.permission") == "granted"
    for name in ("b-seen", "b-note"):
        server.request("DELETE", f"sessions/{name}")


def _repo(server: HiveServer) -> Path:
    path = server.root / "proj"
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.py").write_text("def main():\n    return 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(["git", "-C", str(path), "-c", "user.name=T", "-c", "user.email=t@e", *args],
                       check=True, capture_output=True)
    return path


def test_agent_detail_live_terminal_and_diff(room: dict[str, Any]) -> None:
    page, server = room["page"], room["server"]
    repo = _repo(server)
    session = spawn(server, "b-detail", ["sh", "-c", r"printf '\033[32mgreen\033[0m ready\n'; exec cat"],
                    cwd=repo)
    worktree = Path(session["worktree"]["path"])
    (worktree / "src" / "app.py").write_text("def main():\n    return 2  # changed\n")
    row = page.locator("tr.hive-row[data-name='b-detail']")
    row.wait_for(timeout=20_000)
    assert row.locator(".hive-pill").inner_text().split()[0] in ("starting", "working", "idle")
    assert page.locator(".hive-group-head", has_text=str(repo)).count() == 1  # grouped by repo
    row.click()
    term = page.locator("pre.hive-term")
    term.wait_for()
    wait_for(lambda: "green ready" in term.inner_text(), timeout=20, what="the terminal shown")
    green = term.locator("span", has_text="green").first
    assert computed(green, "color") == ["rgb(13, 188, 121)"]
    # live: text typed elsewhere appears without any click
    server.request("POST", "sessions/b-detail/input", {"text": f"typed {HOSTILE} elsewhere"})
    wait_for(lambda: f"typed {HOSTILE} elsewhere" in term.inner_text(), timeout=20,
             what="the terminal following the pane")
    # the type box and its keys
    page.get_by_placeholder("type to the agent (Send adds Enter)").fill("from the box")
    page.locator("button.jupyter-button", has_text="Send to agent").click()
    wait_for(lambda: screen(server, "b-detail").count("from the box") == 2, timeout=20,
             what="the box's text echoed by cat")
    # the diff, per file, highlighted
    page.locator(".lm-TabBar-tab", has_text="Diff").click()
    path = page.locator(".hive-diff-path", has_text="src/app.py")
    path.wait_for(timeout=20_000)
    added = page.locator(".hive-line-add", has_text="return 2")
    assert added.locator(".hl-kw", has_text="return").count() == 1
    assert added.locator(".hl-com", has_text="# changed").count() == 1
    assert page.locator(".hive-line-del", has_text="return 1").count() == 1
    assert page.locator(".hive-room-view img").count() == 0
    page.locator(".lm-TabBar-tab", has_text="Terminal").click()
    server.request("DELETE", "sessions/b-detail")
    # stopped agents stay, greyed, until dismissed
    stopped = page.locator("tr.hive-stopped-row[data-name='b-detail']")
    stopped.wait_for(timeout=20_000)
    assert float(computed(stopped, "opacity")[0]) < 1
    page.locator("button.hive-btn", has_text="Dismiss stopped").click()
    stopped.wait_for(state="detached")
    # exit status: 0 and non-zero look different
    spawn(server, "b-exit0", ["true"], cwd=server.root)
    spawn(server, "b-exit3", ["sh", "-c", "exit 3"], cwd=server.root)
    good = page.locator("tr.hive-row[data-name='b-exit0'] .hive-exit")
    bad = page.locator("tr.hive-row[data-name='b-exit3'] .hive-exit")
    good.wait_for(timeout=20_000)
    bad.wait_for(timeout=20_000)
    assert good.inner_text() == "exit 0" and "hive-good" in (good.get_attribute("class") or "")
    assert bad.inner_text() == "exit 3" and "hive-bad" in (bad.get_attribute("class") or "")
    assert computed(good, "color") != computed(bad, "color")
    for name in ("b-exit0", "b-exit3"):
        server.request("DELETE", f"sessions/{name}")


@pytest.mark.e2e
def test_a_budget_pause_is_shown_and_resumed_from_needs_you(room: dict[str, Any]) -> None:
    page, server = room["page"], room["server"]
    repo = server.root / "budget-repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "a.py").write_text("a = 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e", *args],
                       check=True, capture_output=True)
    status, task = server.request("POST", "tasks", {
        "id": "bud", "prompt": "@burn 300 5", "repo": str(repo), "agent": "budgeted",
        "scope": ["src/**"], "check": ["true"], "budget": {"tokens": 1000, "ceiling": 5}})
    assert status == 201, task
    pause = card(page, "bud")
    pause.wait_for(timeout=60_000)
    assert "hive-card-budget" in (pause.get_attribute("class") or "")
    # The session is paused at the hook that crossed the limit; its task follows on the next
    # tick. Until then "running" would pass the wait below before the raise has landed.
    wait_for(lambda: server.get("tasks/bud")["state"]["name"] == "paused", timeout=30,
             what="the task paused")
    raise_button = pause.locator("button", has_text="Raise to 2000 tokens")
    raise_button.click()
    wait_for(lambda: server.get("tasks/bud")["budget"]["tokens"] == 2000, timeout=30,
             what="the raised budget stored")
    wait_for(lambda: server.get("tasks/bud")["state"]["name"] in ("running", "checking", "done"),
             timeout=30, what="the task resumed")
    wait_for(lambda: server.get("tasks/bud")["state"]["name"] == "done", timeout=60, what="done")
    assert server.get("events?session=bud&event=BudgetResumed")["events"]
    pause.wait_for(state="detached", timeout=20_000)


@pytest.mark.slow
def test_fifty_agents_grouped_filtered_answered_and_stopped_in_bulk(room: dict[str, Any]) -> None:
    page, server = room["page"], room["server"]
    repos = [server.root / "fleet-a", server.root / "fleet-b"]
    for repo in repos:
        repo.mkdir()
    names = [f"f{i:02d}" for i in range(50)]
    for i, name in enumerate(names):
        spawn(server, name, None, cwd=repos[i % 2], agent="hooked")
    for name in names[:10]:  # ten of them ask for something
        assert fire_hook(server, name, {"hook_event_name": "PermissionRequest", "session_id": name,
                                        "tool_name": "Bash",
                                        "tool_input": {"command": f"deploy {name}"}}).returncode == 0
    rows = page.locator("tr.hive-row[data-name^='f']")
    wait_for(lambda: rows.count() == 50, timeout=60, what="50 fleet rows")
    ours = page.locator(".hive-card-title", has_text=re.compile(r"^f\d\d asks"))
    wait_for(lambda: ours.count() == 10, timeout=60, what="10 cards")
    assert int(page.locator(".hive-count").inner_text()) >= 10
    # oldest first: the order the questions were asked in
    assert ours.all_inner_texts() == [f"{n} asks permission: Bash" for n in names[:10]]
    # grouped by repository, 25 each
    for repo in repos:
        page.locator(".hive-group-head", has_text=f"{repo} · 25").wait_for()
    # the filter narrows the rows in place
    page.locator("input.hive-filter").fill("f4")
    wait_for(lambda: page.locator("tr.hive-row").count() == 10, timeout=10, what="f40..f49 shown")
    page.locator("input.hive-filter").fill("")
    # bulk stop: three selected, stopped for real, kept greyed
    for name in ("f47", "f48", "f49"):
        page.locator(f"tr.hive-row[data-name='{name}'] input[type=checkbox]").check()
    page.locator("button.hive-btn", has_text="Stop selected").click()
    wait_for(lambda: not {"f47", "f48", "f49"} & {s["name"] for s in server.get("sessions")["sessions"]},
             timeout=60, what="the three stopped")
    page.locator("tr.hive-stopped-row[data-name='f49']").wait_for(timeout=20_000)
    # the tab still answers at once
    assert page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(1)))") == 1
    for name in names:
        server.request("DELETE", f"sessions/{name}")


@pytest.mark.e2e
def test_a_scope_request_is_answered_from_needs_you(room: dict[str, Any]) -> None:
    page, server = room["page"], room["server"]
    repo = server.root / "scope-repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "a.py").write_text("a = 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e", *args],
                       check=True, capture_output=True)
    status, task = server.request("POST", "tasks", {
        "id": "sc", "prompt": "@await never", "repo": str(repo), "agent": "budgeted",
        "scope": ["src/**"], "check": ["true"]})
    assert status == 201, task
    wait_for(lambda: "sc" in {s["name"] for s in server.get("sessions")["sessions"]}, timeout=60,
             what="the task's session")
    assert fire_hook(server, "sc", {"hook_event_name": "ScopeRequest", "task": "sc",
                                    "glob": "docs/**", "why": f"docs {HOSTILE}",
                                    "session_id": "sc"}).returncode == 0
    scope = page.locator(".hive-card-scope", has=page.locator(".hive-card-title",
                                                               has_text="Task sc asks for scope docs/**"))
    scope.wait_for(timeout=30_000)
    assert f"Why: docs {HOSTILE}" in scope.locator(".hive-body").inner_text()
    scope.locator("button", has_text="Widen scope").click()
    wait_for(lambda: "docs/**" in server.get("tasks/sc")["scope"], timeout=30, what="scope widened")
    scope.wait_for(state="detached", timeout=20_000)
    assert page.evaluate("() => window.__hivePwned === undefined")
    server.request("PATCH", "tasks/sc", {"state": "canceled"})
