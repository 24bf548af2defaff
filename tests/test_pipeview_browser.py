"""Pipelines & merges in the standalone control room (Voilà inside the Jupyter server), in a
real headless Chromium: a pipeline's stages seen moving to ready, and its merge item approved
with one click in the page, the branch then merged into main.

Real parts: a Jupyter server with Hive Lab and Voilà, real tmux, a real git repository, and
the scripted stand-in agent (tests/support/scripted_agent.py) as implementer and reviewer.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from support import GIT_ENV, ROOT, HiveServer, git, wait_for
from test_browser import CHROMIUM, launch_browser, write_lab_settings

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
DASHBOARD = ROOT / "notebooks" / "Dashboard.ipynb"
HOSTILE = '<img src=x onerror="window.__hivePwned=1">'

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def _profile(turns: Path, *capabilities: str) -> dict[str, Any]:
    return {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
            "capabilities": list(capabilities), "env": {**GIT_ENV, "SCRIPTED_TURNS": str(turns)}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveServer]:
    root = tmp_path_factory.mktemp("pipeview-browser")
    turns = root / "turns"
    turns.mkdir()
    srv = HiveServer(root, extra_config={"profiles": {"impl": _profile(turns),
                                                      "rev": _profile(turns, "review")},
                                         "task_interval": 0.3})
    srv.turns = turns  # type: ignore[attr-defined]
    write_lab_settings(srv)
    shutil.copy(DASHBOARD, srv.root / DASHBOARD.name)
    srv.start()
    yield srv
    srv.stop()
    srv.kill_tmux()


def test_stages_move_to_ready_and_the_merge_is_approved_in_the_page(server: HiveServer) -> None:
    from playwright.sync_api import sync_playwright

    repo = server.root / "shop"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("VALUE = 0\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    turns: Path = server.turns  # type: ignore[attr-defined]
    # each agent takes a few seconds, so every stage is on screen for a while
    (turns / "web-impl.json").write_text(json.dumps(
        [["@sleep 3", "@write src/app.py VALUE = 42"]]))
    verdict = {"verdict": "approve", "summary": "fine", "findings": [
        {"file": "src/app.py", "line": 1, "severity": "minor", "text": f"nit {HOSTILE}"}]}
    (turns / "web-rev1-1.json").write_text(json.dumps(
        [["@sleep 3", "@say ok\\n```json\\n" + json.dumps(verdict) + "\\n```"]]))

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{server.url}voila/render/{DASHBOARD.name}?token={server.token}",
                      timeout=180_000)
            page.wait_for_selector(".hive-pipeline-view", timeout=180_000)
            tabs = page.locator(".hive-dashboard-tabs .lm-TabBar-tab", has_text="Pipelines")
            if tabs.count():
                tabs.click()
            page.evaluate("""() => { window.__seen = [];
                setInterval(() => {
                  const p = document.querySelector(".hive-pipe[data-pipeline='web']");
                  if (!p) return;
                  const cur = p.querySelector(".hive-stage[data-state='current']");
                  const s = p.dataset.state + ":" + (cur ? cur.dataset.kind : "-");
                  if (window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);
                }, 25); }""")
            status, body = server.request("POST", "pipelines", {
                "id": "web", "prompt": "Set VALUE to 42.", "repo": str(repo),
                "scope": ["src/**"], "criteria": ["VALUE is 42"],
                "stages": ["implement", "review"], "implementer": "impl", "reviewer": "rev"})
            assert status == 201, body
            page.locator(".hive-pipe[data-pipeline='web'][data-state='ready']").wait_for(
                timeout=90_000)
            # (the sampler runs every 25 ms: the locator can see "ready" first)
            page.wait_for_function("() => window.__seen.includes('ready:-')", timeout=10_000)
            seen = page.evaluate("window.__seen")
            assert "running:implement" in seen and "running:review" in seen, seen
            assert seen.index("running:implement") < seen.index("running:review") \
                < seen.index("ready:-"), seen
            pipe = page.locator(".hive-pipe[data-pipeline='web']")
            assert pipe.locator(".hive-stage[data-state='done']").count() == 3
            assert pipe.locator(".hive-finding").inner_text() == f"src/app.py:1 minor nit {HOSTILE}"

            item = wait_for(lambda: next((m for m in server.get("merges")["merges"]
                                          if m["branch"] == "hive/web-impl"
                                          and m["state"] == "awaiting_approval"), None),
                            timeout=60, what="the ready branch awaiting approval")
            row = page.locator(f".hive-merge-row:has(.hive-merge[data-merge='{item['id']}'])")
            row.locator(".hive-merge[data-state='awaiting_approval']").wait_for()
            assert git(repo, "show", "main:src/app.py").strip() == "VALUE = 0"
            row.locator("button", has_text="Approve").click()
            row.locator(".hive-merge[data-state='merged']").wait_for(timeout=60_000)
            assert server.get(f"merges/{item['id']}")["state"] == "merged"
            assert git(repo, "show", "main:src/app.py").strip() == "VALUE = 42"
            assert page.locator(".hive-pipes-said", has_text="approve merge").count() == 1
            # a branch offered by hand is approved from its Needs-you card as well
            git(repo, "switch", "-q", "-c", "docs")
            (repo / "NOTES.md").write_text(f"notes {HOSTILE}\n")
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "notes")
            git(repo, "switch", "-q", "main")
            status, other = server.request("POST", "merges", {
                "repo": str(repo), "branch": "docs", "base": "main", "checks": []})
            assert status == 201, other
            card = page.locator(f".hive-card[data-key^='m:{other['id']}:awaiting_approval']")
            card.wait_for(timeout=60_000)
            assert "merge docs into main?" in card.inner_text()
            card.locator("button", has_text="Approve merge").click()
            wait_for(lambda: server.get(f"merges/{other['id']}")["state"] == "merged",
                     timeout=60, what="the merge approved from Needs you")
            assert git(repo, "show", "main:NOTES.md").strip() == f"notes {HOSTILE}"
            card.wait_for(state="detached", timeout=30_000)
            assert page.evaluate("() => window.__hivePwned === undefined")
            assert page.locator(".hive-pipeline-view img").count() == 0
        finally:
            browser.close()
