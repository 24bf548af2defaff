"""The standalone control room (``hive-lab dashboard``: Voilà inside the Jupyter server) in a
real headless Chromium: the task board, its create form, and money and time, live.

Real parts throughout: a real Jupyter server with Hive Lab and Voilà, real tmux, real git
repositories, and the scripted stand-in agent (tests/support/scripted_agent.py) in place of
the model. One page is rendered for the module (a Voilà render starts a kernel and runs the
notebook: the slow part), and each test drives it.
"""
from __future__ import annotations

import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from support import BIN, GIT_ENV, HiveServer, make_repo, ROOT, wait_for
from test_browser import CHROMIUM, launch_browser, write_lab_settings

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
PROFILES = {
    "scripted": {"command": [sys.executable, "-u", AGENT], "capabilities": ["implement"],
                 "env": GIT_ENV},
    "burner": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
               "capabilities": ["burn"], "env": GIT_ENV},
}
DASHBOARD = ROOT / "notebooks" / "Dashboard.ipynb"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveServer]:
    srv = HiveServer(tmp_path_factory.mktemp("board"), extra_config={
        "profiles": PROFILES, "task_interval": 0.3, "usage_interval": 0.3})
    write_lab_settings(srv)
    shutil.copy(DASHBOARD, srv.root / DASHBOARD.name)
    srv.start()
    status, body = srv.request("PUT", "budgets", {"fleet": [{"dollars": 50, "window": "day"}]})
    assert status == 200, body
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture(scope="module")
def repo(server: HiveServer) -> Path:
    path = server.root / "webshop"
    return make_repo(path, {"src/app.py": "print('app')\n"})


@pytest.fixture(scope="module")
def page(server: HiveServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{server.url}voila/render/{DASHBOARD.name}?token={server.token}",
                      timeout=180_000)
            page.wait_for_selector(".hive-task-board", timeout=180_000)
            yield page
        finally:
            browser.close()


def fill(page: Any, css: str, text: str) -> None:
    box = page.locator(f"{css} input, {css} textarea").first
    box.fill(text)
    box.dispatch_event("change")


def tab(page: Any, title: str) -> None:
    """Show a section: a tab of the dashboard, or (in part A's room) a section of the page."""
    tabs = page.locator(".hive-dashboard-tabs .lm-TabBar-tab", has_text=title)
    if tabs.count():
        tabs.click()


def task_ids(server: HiveServer) -> set[str]:
    return {t["id"] for t in server.get("tasks")["tasks"]}


def test_the_page_needs_the_servers_token(server: HiveServer) -> None:
    url = f"{server.url}voila/render/{DASHBOARD.name}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for target in (url, url + "?token=wrong"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(target, timeout=30)
        assert refused.value.code in (302, 403), refused.value.code
        if refused.value.code == 302:
            assert "/login" in refused.value.headers["Location"]


def test_create_a_task_and_watch_it_cross_the_board(server: HiveServer, repo: Path,
                                                    page: Any) -> None:
    tab(page, "Tasks")
    # every state the card is drawn in, as the browser shows it
    page.evaluate("""() => { window.__seen = [];
        setInterval(() => { const c = document.querySelector(".hive-taskcard[data-task='add-a']");
          const s = c && c.dataset.state;
          if (s && window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s); }, 25);
    }""")
    fill(page, ".hive-task-title", "Add module a")
    fill(page, ".hive-task-id", "add-a")
    fill(page, ".hive-task-prompt", "Add src/a.py\n@sleep 2\n@write src/a.py A = 1\n@commit add a")
    fill(page, ".hive-task-repo", str(repo))
    fill(page, ".hive-task-scope", "src/**")
    fill(page, ".hive-task-check", "test -f src/a.py")
    page.locator(".hive-task-form button", has_text="Create task").click()
    page.locator(".hive-task-created", has_text="created task add-a").wait_for()
    done = page.locator(".hive-column-done .hive-taskcard[data-task='add-a']")
    done.wait_for(timeout=60_000)
    seen = page.evaluate("window.__seen")
    assert seen[-1] == "done"
    assert "running" in seen, seen  # it was seen working before it was done
    assert seen.index("running") < seen.index("done")
    assert server.get("tasks/add-a")["state"]["name"] == "done"
    assert "Add module a" in done.inner_text()


def test_a_form_error_is_shown_in_place_and_nothing_is_created(server: HiveServer,
                                                               repo: Path, page: Any) -> None:
    tab(page, "Tasks")
    before = task_ids(server)
    fill(page, ".hive-task-id", "bad-scope")
    fill(page, ".hive-task-prompt", "x")
    fill(page, ".hive-task-repo", str(repo))
    fill(page, ".hive-task-scope", "../outside/**")
    page.locator(".hive-task-form button", has_text="Create task").click()
    error = page.locator(".hive-task-scope-error .hive-field-error")
    error.wait_for()
    assert "must not contain '..'" in error.inner_text()
    # a refusal only the server can make (the directory is not a git repository) goes next
    # to the field it is about
    plain = server.root / "not-a-repo"
    plain.mkdir(exist_ok=True)
    fill(page, ".hive-task-scope", "src/**")
    fill(page, ".hive-task-repo", str(plain))
    page.locator(".hive-task-form button", has_text="Create task").click()
    repo_error = page.locator(".hive-task-repo-error .hive-field-error")
    repo_error.wait_for()
    assert "not inside a git repository" in repo_error.inner_text()
    assert page.locator(".hive-task-scope-error .hive-field-error").count() == 0
    assert task_ids(server) == before


def test_money_and_time_follow_the_fleet_live(server: HiveServer, repo: Path,
                                              page: Any) -> None:
    tab(page, "Money and time")
    plot = ".hive-money .js-plotly-plot"
    page.wait_for_selector(plot)
    points = f"() => document.querySelector('{plot}').data[0].x.length"
    start = page.evaluate(points)
    # drawn before the page existed, and still there: the gauge of the fleet's daily limit
    gauges = "() => document.querySelectorAll('.hive-money .js-plotly-plot')[1].data"
    assert [t["type"] for t in page.evaluate(gauges)] == ["indicator"]
    assert page.locator(".hive-money .hive-budget").count() == 1  # the fleet's daily limit
    status, body = server.request("POST", "tasks", {
        "id": "burn-a", "prompt": "@burn 400 3", "repo": str(repo), "requires": ["burn"],
        "scope": ["src/**"], "check": ["true"]})
    assert status == 201, body
    page.wait_for_function(f"() => ({points})() > {start}", timeout=60_000)
    costs = page.evaluate(f"() => document.querySelector('{plot}').data[0].y")
    assert costs[-1] > 0
    tokens = page.evaluate(f"() => document.querySelector('{plot}').data[1].y")
    wait_for(lambda: server.get("usage/rows?session=burn-a")["rows"], timeout=30)
    assert tokens[-1] >= 400
    # the gauge and its forecast line follow the spend
    budget = page.locator(".hive-money .hive-budget")
    budget.locator(".hive-forecast").wait_for()
    assert "$50" in budget.inner_text()
    # the state timeline has a real time axis and a row for the task's session
    timeline = page.locator(".hive-money .js-plotly-plot").nth(2)
    try:
        page.wait_for_function("""() => { const p = document.querySelectorAll(
            '.hive-money .js-plotly-plot')[2]; return p && p.data.some(t => (t.y || []).includes('burn-a')); }""",
            timeout=60_000)
    except Exception as exc:
        drawn = page.evaluate("""() => { const p = document.querySelectorAll(
            '.hive-money .js-plotly-plot')[2]; return p ? p.data.map(t => [t.name, Array.from(t.y || [])]) : null; }""")
        rows = server.get("transitions?session=burn-a")
        raise AssertionError(f"{exc}\ndrawn: {drawn}\nserver: {rows}") from None
    ticks = timeline.locator(".xtick text").all_text_contents()
    assert ticks and not any("1970" in t for t in ticks), ticks


def test_hive_lab_dashboard_prints_a_url_that_opens_the_page(server: HiveServer) -> None:
    done = server.cli("dashboard")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url == f"{server.url}voila/render/{DASHBOARD.name}?token={server.token}"
    with urllib.request.urlopen(url, timeout=120) as page:
        assert page.status == 200
        assert b"voila" in page.read().lower()


def test_a_scope_request_is_answered_from_its_card(server: HiveServer, repo: Path,
                                                   page: Any) -> None:
    tab(page, "Tasks")
    status, body = server.request("POST", "tasks", {
        "id": "scope-a", "repo": str(repo), "requires": ["implement"], "scope": ["src/**"],
        "prompt": f"@run {BIN / 'hive-lab'} task request-scope scope-a 'docs/**' --why "
                  "'<b>the docs</b>'\n@await go"})
    assert status == 201, body
    card = page.locator(".hive-task-card", has=page.locator(
        ".hive-taskcard[data-task='scope-a'][data-state='blocked']"))
    card.wait_for(timeout=60_000)
    request = card.locator(".hive-scope-request")
    assert "<b>the docs</b>" in request.inner_text()  # agent text shown as text
    card.locator("button", has_text="Widen").click()
    page.locator(".hive-column-running .hive-taskcard[data-task='scope-a']").wait_for(
        timeout=30_000)
    assert "docs/**" in server.get("tasks/scope-a")["scope"]
    assert [r["state"] for r in server.get("scope-requests?task=scope-a")["requests"]] == \
        ["approved"]
    server.request("PATCH", "tasks/scope-a", {"state": "canceled"})


def test_start_an_agent_from_the_form(server: HiveServer, repo: Path, page: Any) -> None:
    tab(page, "Start an agent")
    form = page.locator(".hive-start")
    form.locator(".hive-start-agent select").select_option("shell")
    fill(page, ".hive-start-name", "-bad")
    form.locator("button", has_text="Start agent").click()
    error = page.locator(".hive-start-name-error .hive-field-error")
    error.wait_for()
    assert "Name" in error.inner_text()
    assert "-bad" not in {s["name"] for s in server.get("sessions")["sessions"]}
    fill(page, ".hive-start-name", "from-form")
    fill(page, ".hive-start-command", "cat")
    fill(page, ".hive-start-cwd", str(repo))
    fill(page, ".hive-start-env", "GREETING=hello there")
    form.locator("button", has_text="Start agent").click()
    page.locator(".hive-started", has_text="started from-form").wait_for(timeout=30_000)
    session = server.get("sessions/from-form")
    assert session["cwd"] != str(repo)  # its own worktree (the box is ticked by default)
    assert page.locator(".hive-start-name-error .hive-field-error").count() == 0
    server.request("DELETE", "sessions/from-form")
