"""The HiveOS dashboard in a real JupyterLab, driven by a real headless Chromium.

A real `jupyter server` (our extension + JupyterLab) runs the shipped notebook through the UI
(Run > Run All Cells); the assertions are made on the page the browser rendered: live updates
without re-running cells, state badges, hostile agent text shown as text, and the panel's
buttons starting, driving and stopping real tmux sessions (checked through the REST API).

Chromium is Debian's (`apt-get install chromium`, done by `scripts/setup.sh --test`), used
through Python playwright with ``executable_path``; `playwright install` is never needed.
The helpers here are reused by ``scripts/screenshot.py``.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from support import ROOT, HiveServer, fire_hook, spawn, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NOTEBOOK = ROOT / "notebooks" / "HiveOS.ipynb"
# JupyterLab user settings that keep toasts (news, update checks) off the page. They go in
# the server's own JUPYTER_CONFIG_DIR (lab/user-settings), so nothing outside the test's
# temporary directory is touched.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    # JupyterLab 4 renders only the cells in view ("windowing"): the HiveOS notebook is long
    # enough that the panel's cell is hidden once Run All scrolls to the end. Render them all.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
# An onerror handler that would leave two traces if the markup ever became an element.
HOSTILE = '<img src=x onerror="window.__hivePwned=1;alert(1)">'
SESSIONS_TABLE = "table.hive-table:has(th:text-is('Cost'))"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium, or scripts/setup.sh --test)"),
]


# -- helpers (also used by scripts/screenshot.py) -------------------------------------------
def write_lab_settings(server: HiveServer) -> None:
    """Per-server JupyterLab user settings (call before ``server.start()``)."""
    user_settings = server.base / "config" / "lab" / "user-settings"
    for plugin, values in LAB_SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        path = user_settings / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      timeout=60_000)


def open_notebook(server: HiveServer, page: Any, name: str = "HiveOS.ipynb",
                  timeout: float = 60) -> None:
    """Open ``name`` (under the server root) in JupyterLab and wait for its idle kernel.

    JupyterLab sometimes asks "Select Kernel" (when the page asked before the kernel specs
    arrived); the preselected choice is the notebook's own kernel, so accept it."""
    page.goto(f"{server.url}lab/tree/{name}?token={server.token}", timeout=timeout * 1000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout * 1000)

    def kernel_ready() -> bool:
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count():
            dialog.locator("button.jp-mod-accept").click()
            return False
        _, sessions = server.request("GET", "/api/sessions")
        return any(s["path"] == name and s["kernel"]["execution_state"] == "idle"
                   for s in sessions) and page.locator(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0

    wait_for(kernel_ready, timeout=timeout, interval=0.25, what=f"an idle kernel for {name}")


def run_all_cells(page: Any, timeout_ms: int = 120_000) -> None:
    """Run > Run All Cells from the menu bar, then wait until every code cell has run."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # Run All queues every cell at once ("[*]"); an error stops the queue and leaves "[ ]"
    prompts = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                        .map(p => p.textContent.trim())"""
    page.wait_for_function(f"""() => {{
        const p = ({prompts})();
        return p.length > 0 && !p.some(t => t.includes('*')) && p.some(t => /\\d/.test(t));
    }}""", timeout=timeout_ms)
    counts = page.evaluate(prompts)
    stderr = page.locator(".jp-Notebook [data-mime-type='application/vnd.jupyter.stderr']"
                          ).all_text_contents()  # JupyterLab renders tracebacks as stderr
    if not all(re.fullmatch(r"\[\d+\]:?", t) for t in counts) or any(
            "Traceback" in text for text in stderr):
        raise AssertionError(f"the notebook did not run cleanly: prompts {counts}, "
                             f"stderr {stderr}")


def computed(locator: Any, *props: str) -> list[str]:
    """``getComputedStyle`` values of the element ``locator`` finds.

    The views redraw on every change: an element detached between lookup and evaluate has an
    empty computed style, so it is read again until it comes from one still in the page.
    """
    script = ("(e, props) => e.isConnected ? props.map(p => getComputedStyle(e)[p]) : null")
    return wait_for(lambda: locator.evaluate(script, list(props)), timeout=20,
                    what=f"the computed {', '.join(props)}")


def session_row(page: Any, name: str) -> Any:
    """The sessions-table row of ``name`` (the table, not the events list)."""
    return page.locator(f"{SESSIONS_TABLE} tr", has=page.locator("td b", has_text=re.compile(
        rf"^{re.escape(name)}$")))


def button(page: Any, label: str) -> Any:
    """A widget button by its exact label (its icon is an extra <i> inside)."""
    return page.locator("button.jupyter-button",
                        has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def table_names(page: Any) -> list[str]:
    return page.locator(f"{SESSIONS_TABLE} td:first-child b").all_inner_texts()


def target_select(page: Any) -> Any:
    """The <select> of the talk form's "Session" dropdown."""
    return page.locator(".widget-dropdown", has=page.locator("label", has_text="Session")
                        ).locator("select")


def session_names(server: HiveServer) -> list[str]:
    return [s["name"] for s in server.get("sessions")["sessions"]]


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveServer]:
    srv = HiveServer(tmp_path_factory.mktemp("browser"))
    write_lab_settings(srv)
    shutil.copy(NOTEBOOK, srv.root / NOTEBOOK.name)
    try:
        srv.start()
        # /lab must be served by the same server (jupyterlab is enabled as a server extension)
        status, _ = srv.request("GET", "/lab")
        assert status == 200, "JupyterLab is not served at /lab"
        yield srv
    finally:
        srv.stop()
        srv.kill_tmux()


@pytest.fixture(scope="module")
def dashboard(lab: HiveServer) -> Iterator[dict[str, Any]]:
    """The notebook opened in JupyterLab with all cells run through the UI."""
    from playwright.sync_api import sync_playwright

    spawn(lab, "before-page", ["cat"], cwd=lab.root)  # exists before the page is opened
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            open_notebook(lab, page)
            run_all_cells(page)
            yield {"page": page, "server": lab, "dialogs": dialogs}
        finally:
            browser.close()


# -- tests ------------------------------------------------------------------------------------
def test_notebook_runs_and_table_updates_live(dashboard: dict[str, Any]) -> None:
    page, server = dashboard["page"], dashboard["server"]
    # (run_all_cells checked that every code cell ran and none raised)
    # the panel rendered as a real widget, with the session created before the page existed
    table = page.locator(SESSIONS_TABLE)
    table.wait_for()
    assert table.count() == 1
    headers = table.locator("th").all_inner_texts()
    assert headers == ["Session", "Agent", "State", "Since", "Changes", "Cost"]
    before = session_row(page, "before-page")
    before.wait_for()
    badge = before.locator(".hive-badge")
    assert badge.inner_text().split()[0] in {"starting", "working", "idle", "waiting"}
    # the table shows exactly the server's sessions (the notebook's own demo ones come and go)
    wait_for(lambda: sorted(table_names(page)) == sorted(session_names(server)), timeout=20,
             what="the table to match GET /sessions")

    # a session made via REST after the cells ran appears without re-running anything
    spawn(server, "after-run", ["cat"], cwd=server.root)
    row = session_row(page, "after-run")
    row.wait_for(timeout=20_000)
    assert row.locator("td").nth(1).inner_text() == "shell"
    # badges are real styled elements: a coloured pill with the state's name
    pill = row.locator(".hive-badge")
    assert re.match(r"^(starting|working|idle)\b", pill.inner_text())
    style = computed(pill, "backgroundColor", "color", "borderRadius", "display")
    assert style[0] not in ("rgba(0, 0, 0, 0)", "transparent") and style[1] == "rgb(255, 255, 255)"
    assert style[2] != "0px" and style[3] == "inline-block"
    # ...and its removal too
    status, _ = server.request("DELETE", "sessions/after-run")
    assert status == 200
    row.wait_for(state="detached", timeout=20_000)


def test_hostile_agent_text_is_shown_as_text(dashboard: dict[str, Any]) -> None:
    page, server, dialogs = dashboard["page"], dashboard["server"], dashboard["dialogs"]
    # a hooked agent asks for a permission on a tool whose name (and its notification) is markup
    workdir = server.root / "hostile"
    workdir.mkdir()
    spawn(server, "hostile-hook", None, cwd=workdir, agent="hooked")
    for payload in (
        {"hook_event_name": "PermissionRequest", "session_id": "sid-hostile",
         "tool_name": HOSTILE, "tool_input": {"file_path": HOSTILE}},
        {"hook_event_name": "Notification", "session_id": "sid-hostile",
         "notification_type": "permission_prompt", "message": f"Claude needs {HOSTILE}"},
    ):
        assert fire_hook(server, "hostile-hook", payload).returncode == 0
    badge = session_row(page, "hostile-hook").locator(".hive-badge")
    badge.wait_for(timeout=20_000)
    wait_for(lambda: HOSTILE in badge.inner_text(), timeout=20, what="hostile badge text")
    assert badge.inner_text() == f"waiting (permission, {HOSTILE})"
    # the waiting list and the live events list show it as text too
    page.locator("li", has_text=f"hostile-hook: waiting (permission, {HOSTILE})").wait_for()
    page.locator("table.hive-table td", has_text=f"Claude needs {HOSTILE}").wait_for(timeout=20_000)

    # the agent's screen, fetched by the panel's own "Show screen" button
    spawn(server, "hostile-screen", ["cat"], cwd=workdir)
    status, _ = server.request("POST", "sessions/hostile-screen/input", {"text": HOSTILE})
    assert status == 200
    wait_for(lambda: HOSTILE in server.get("sessions/hostile-screen/screen")["text"],
             timeout=20, what="hostile text on the tmux screen")
    target = target_select(page)
    target.locator("option", has_text="hostile-screen").wait_for(state="attached", timeout=20_000)
    target.select_option(label="hostile-screen")
    button(page, "Show screen").click()
    screen = page.locator(".hive-screen")
    screen.wait_for(timeout=20_000)
    wait_for(lambda: HOSTILE in screen.inner_text(), timeout=20, what="screen shown in the panel")

    # nothing was ever parsed as markup: no dialog, no handler ran, no injected image
    time.sleep(0.5)  # give a would-be onerror handler its chance to run
    assert dialogs == []
    assert page.evaluate("() => window.__hivePwned === undefined")
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.locator(".widget-html img").count() == 0
    for name in ("hostile-hook", "hostile-screen"):
        server.request("DELETE", f"sessions/{name}")


def test_panel_buttons_start_drive_and_stop_a_real_session(dashboard: dict[str, Any]) -> None:
    page, server = dashboard["page"], dashboard["server"]
    workdir = server.root / "from-button"
    workdir.mkdir()
    page.get_by_placeholder("name (A-Z a-z 0-9 _ -)").fill("from-button")
    page.get_by_placeholder("argv for shell, e.g. python3 -i").fill("cat -n")
    page.get_by_placeholder("working directory (optional)").fill(str(workdir))
    button(page, "Start").click()

    # a real session, as typed, according to the server
    wait_for(lambda: "from-button" in session_names(server), timeout=20,
             what="the session started by the Start button")
    detail = server.get("sessions/from-button")
    assert detail["agent"] == "shell" and detail["command"] == ["cat", "-n"]
    assert Path(detail["cwd"]) == workdir
    assert "from-button" in server.tmux_sessions()
    page.locator(".widget-html", has_text="start from-button: done").wait_for(timeout=20_000)
    session_row(page, "from-button").wait_for(timeout=20_000)

    # the talk form targets it now: type a line and send it through the Send button
    target = target_select(page)
    wait_for(lambda: target.input_value() == "from-button", timeout=20, what="target selected")
    page.get_by_placeholder("text to type into the agent").fill("typed in the browser")
    button(page, "Send").click()

    def screen() -> str:
        return server.get("sessions/from-button/screen")["text"]

    wait_for(lambda: re.search(r"^\s*1\s+typed in the browser$", screen(), re.M), timeout=20,
             what="text sent by the Send button reaching `cat -n`")
    # the key buttons press keys: "Approve (1)" types a 1, "Enter" ends the line
    button(page, "Approve (1)").click()
    page.locator(".widget-html", has_text="keys 1 to from-button: done").wait_for(timeout=20_000)
    button(page, "Enter").click()
    wait_for(lambda: re.search(r"^\s*2\s+1$", screen(), re.M), timeout=20,
             what="keys from the Approve and Enter buttons reaching `cat -n`")

    # and Stop ends it, once confirmed
    button(page, "Stop").click()
    button(page, "Yes, stop it").wait_for(timeout=20_000)
    assert "from-button" in session_names(server)
    button(page, "Yes, stop it").click()
    wait_for(lambda: "from-button" not in session_names(server), timeout=20, what="session stopped")
    session_row(page, "from-button").wait_for(state="detached", timeout=20_000)
    page.locator(".hive-stopped li", has_text="from-button").wait_for(timeout=20_000)
    assert "from-button" not in server.tmux_sessions()
