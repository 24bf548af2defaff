"""Take one PNG per view of the control room into docs/: needs you, fleet, detail, board,
pipelines, money, start (whichever of them this checkout has), from a real server with live agents.

    .venv/bin/python scripts/screenshots.py [--out docs] [--only board,money] [--scale 1]

The page is the standalone dashboard (``hive-lab dashboard``: Voilà inside the Jupyter
server), shot with Debian's chromium (`apt-get install chromium`; never `playwright install`).
Everything runs in a temporary directory and is removed at the end: a real `jupyter server`
with Hive Lab on a private tmux socket, throw-away git repositories, and Chromium.

What is real and what is stood in for: the demo sessions of ``scripts/screenshot.py`` (real
tmux sessions and worktrees; real Claude Code 2.1.197 hook payloads replayed through the real
hook client, ``cat`` behind them, cost from the real sample transcript); the tasks are run by
the scripted stand-in agent (tests/support/scripted_agent.py) in place of a model, through
the real orchestrator: a done task, a running one, one blocked on a scope request, one
waiting for another, one failed; and three review pipelines played by the same scripted agent
(one ready with its branch awaiting approval in the merge queue, one in its second review
round, one that needs you).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

from support import BIN, GIT_ENV, HiveServer, git, wait_for  # noqa: E402
from test_browser import CHROMIUM, launch_browser, write_lab_settings  # noqa: E402

import screenshot as demo  # noqa: E402

SPREAD = 30 * 60.0
AGENT = str(ROOT / "tests" / "support" / "scripted_agent.py")
DASHBOARD = ROOT / "notebooks" / "Dashboard.ipynb"
PROFILES = {
    "claude": {"command": ["cat"], "hooks": "claude"},
    "scripted": {"command": [sys.executable, "-u", AGENT], "capabilities": ["implement"],
                 "env": GIT_ENV},
}
TASKS: list[dict[str, Any]] = [
    {"id": "orders-index", "title": "Index orders by customer", "scope": ["src/**"],
     "check": ["true"], "prompt": "@write src/index.py INDEX = {}\n@commit index orders"},
    {"id": "retry-client", "title": "Retry the payment client on 503", "scope": ["src/**"],
     "prompt": "@write src/retry.py RETRIES = 3\n@sleep 900"},
    {"id": "api-docs", "title": "Document the orders API", "scope": ["README.md"],
     "prompt": f"@run {BIN}/hive-lab task request-scope api-docs 'docs/**' --why "
               "'the API reference lives in docs/'\n@await go"},
    {"id": "search", "title": "Search orders by status", "scope": ["src/search/**"],
     "depends_on": ["retry-client"], "prompt": "@write src/search/q.py Q = 1"},
    {"id": "flaky-migration", "title": "Migrate the orders table", "scope": ["db/**"],
     "max_attempts": 1, "prompt": "@exit 3"},
]
# view -> how to show it (a tab to click, or a click that opens it) and what to shoot
VIEWS: dict[str, dict[str, Any]] = {
    "needs": {"css": ".hive-view-needs"},
    "fleet": {"css": ".hive-view-fleet"},
    "detail": {"css": ".hive-view-terminal", "around": ".hive-view-diff", "open": "fix-auth"},
    "board": {"css": ".hive-task-board", "tab": "Tasks"},
    "pipelines": {"css": ".hive-pipeline-view", "tab": "Pipelines & merges"},
    "money": {"css": ".hive-money", "tab": "Money and time"},
    "start": {"css": ".hive-start", "tab": "Start an agent"},
}


def pipeline_profiles(turns: Path) -> dict[str, Any]:
    """Implementer and reviewer for the pipelines: the scripted agent reading its turns from
    ``turns/<task id>.json`` (no "implement" capability: the demo tasks stay with "scripted")."""
    def profile(*capabilities: str) -> dict[str, Any]:
        return {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                "capabilities": list(capabilities),
                "env": {**GIT_ENV, "SCRIPTED_TURNS": str(turns)}}
    return {"impl": profile(), "rev": profile("review")}


def _verdict(verdict: str, summary: str, *findings: tuple[str, int, str, str]) -> str:
    data = {"verdict": verdict, "summary": summary, "findings": [
        {"file": f, "line": n, "severity": s, "text": t} for f, n, s, t in findings]}
    return "@say I read the diff.\\n```json\\n" + json.dumps(data) + "\\n```"


PIPELINES: list[tuple[dict[str, Any], dict[str, list[list[str]]]]] = [
    ({"id": "orders-cache", "title": "Cache the orders list", "stages": ["implement", "checks",
                                                                         "review"]},
     {"orders-cache-impl": [["@write src/orders-cache/cache.py CACHE = {}"]],
      "orders-cache-rev2-1": [[_verdict("approve", "small and tested", (
          "src/orders-cache/cache.py", 1, "minor", "name the cache after what it holds"))]]}),
    ({"id": "refund-flow", "title": "Refunds go through the payment client",
      "stages": ["implement", "checks", "review"]},
     {"refund-flow-impl": [["@write src/refund-flow/refund.py REFUND = 'todo'"],
                           ["@write src/refund-flow/refund.py REFUND = 'client'"]],
      "refund-flow-rev2-1": [[_verdict(
          "changes", "not yet", ("src/refund-flow/refund.py", 1, "major",
                                 "a refund must call the payment client, not return a string"),
          ("src/refund-flow/refund.py", 1, "minor", "no test covers a failed refund"))]],
      "refund-flow-rev2-2": [["@sleep 900"]]}),
    ({"id": "audit-log", "title": "Write an audit line per order change",
      "stages": ["implement", "review"]},
     {"audit-log-impl": [["@write src/audit-log/audit.py AUDIT = []"]],
      "audit-log-rev1-1": [["@say approve"], ['@say {"verdict": "maybe"}']]}),
]


def set_up_pipelines(server: HiveServer, turns: Path) -> None:
    repo = server.root / "orders-pipelines"
    make_task_repo(repo)
    for spec, scripts in PIPELINES:
        for task_id, script in scripts.items():
            (turns / f"{task_id}.json").write_text(json.dumps(script))
        status, body = server.request("POST", "pipelines", {
            **spec, "prompt": spec["title"], "repo": str(repo),
            "scope": [f"src/{spec['id']}/**"],  # apart: overlapping scopes would wait in turn
            "criteria": ["does what the title says", "a test covers it"],
            "checks": [["true"]], "implementer": "impl", "reviewer": "rev"})
        assert status == 201, body

    def settled() -> bool:
        p = {x["id"]: x for x in server.get("pipelines")["pipelines"]}
        merges = server.get("merges")["merges"]
        return (p["orders-cache"]["state"]["name"] == "ready"
                and any(m["state"] == "awaiting_approval" for m in merges)
                and p["audit-log"]["state"]["name"] == "needs_you"
                and p["refund-flow"]["round"] == 2 and p["refund-flow"]["stage_kind"] == "review")
    try:
        wait_for(settled, timeout=120, interval=0.5, what="the demo pipelines to settle")
    except AssertionError:
        for p in server.get("pipelines")["pipelines"]:
            print(p["id"], p["state"], p["stage_kind"], p["round"], p["tasks"])
            for t in p["tasks"].values():
                print("  ", t, server.get(f"tasks/{t}")["state"], server.get(f"tasks/{t}").get("why"))
        print(server.get("merges")["merges"])
        raise


def make_task_repo(path: Path) -> Path:
    (path / "src").mkdir(parents=True)
    (path / "src" / "orders.py").write_text("def list_orders():\n    ...\n")
    (path / "README.md").write_text("# orders service\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "orders: initial import")
    return path


_sample_copy = demo.transcript_copy


def recent_transcript_copy(lines: list[str], share: float, name: str) -> str:
    """The demo's transcript copy, its API responses spread over the last 30 minutes: the
    sample is from another day, and the fleet's daily budget, its forecast (the burn rate of
    the last 30 minutes) and the cost chart are about today."""
    rows = _sample_copy(lines, share, name).splitlines()
    now = time.time()
    out = []
    for i, line in enumerate(rows):
        record = json.loads(line)
        if "timestamp" in record:
            when = now - SPREAD + SPREAD * (i + 1) / (len(rows) + 1)
            record["timestamp"] = datetime.fromtimestamp(when, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        out.append(json.dumps(record))
    return "\n".join(out) + "\n"


def set_up(server: HiveServer) -> None:
    demo.transcript_copy = recent_transcript_copy
    demo.set_up(server)
    repo = make_task_repo(server.root / "orders")
    status, body = server.request("PUT", "budgets", {"fleet": [{"dollars": 0.25, "window": "day"}]})
    assert status == 200, body
    for spec in TASKS:
        # requires: run by the scripted agent, not by the demo's "claude" (cat) sessions
        status, body = server.request("POST", "tasks", {**spec, "repo": str(repo),
                                                        "requires": ["implement"]})
        assert status == 201, body

    def states() -> dict[str, str]:
        return {t["id"]: t["state"]["name"] for t in server.get("tasks")["tasks"]}

    want = {"orders-index": {"done"}, "retry-client": {"running"}, "api-docs": {"blocked"},
            "flaky-migration": {"failed"}}
    try:
        wait_for(lambda: all(states().get(k) in v for k, v in want.items()), timeout=90,
                 interval=0.5, what=f"the demo tasks to settle ({want})")
    except AssertionError:
        print({t["id"]: (t["state"], t.get("why")) for t in server.get("tasks")["tasks"]})
        raise


def shoot(page: Any, out: Path, only: set[str] | None) -> list[Path]:
    written: list[Path] = []
    for name, view in VIEWS.items():
        if only and name not in only:
            continue
        if view.get("tab"):
            tabs = page.locator(".hive-dashboard-tabs .lm-TabBar-tab", has_text=view["tab"])
            if tabs.count():
                tabs.click()
        if view.get("open") and page.locator(".hive-view-fleet").count():
            page.locator(".hive-view-fleet").get_by_text(view["open"], exact=True).first.click()
        if name == "start":  # show how a missing CLI is marked, when one is
            select = page.locator(".hive-start-agent select")
            labels = select.locator("option").all_text_contents() if select.count() else []
            missing = [label for label in labels if "(not installed)" in label]
            if missing:
                select.select_option(label=missing[0])
        target = page.locator(view["css"]).first
        try:
            target.wait_for(timeout=15_000)
        except Exception:
            print(f"skipped {name}: no {view['css']} in this checkout's control room")
            continue
        if view.get("around"):  # the innermost box holding this view and that one
            target = page.locator(".widget-box", has=page.locator(view["css"])).filter(
                has=page.locator(view["around"])).last
        target.scroll_into_view_if_needed()
        page.mouse.move(0, 0)
        page.wait_for_timeout(1200)  # plotly's transitions and the terminal's first frame
        path = out / f"room-{name}.png"
        target.screenshot(path=str(path))
        written.append(path)
        print(f"wrote {path}")
    return written


def run(out: Path, only: set[str] | None = None, scale: float = 1.0,
        ready: Callable[[Any], None] | None = None) -> list[Path]:
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hive-shots-") as tmp:
        turns = Path(tmp) / "turns"
        turns.mkdir()
        server = HiveServer(Path(tmp), extra_config={
            "profiles": {**PROFILES, **pipeline_profiles(turns)}, "task_interval": 0.3,
            "usage_interval": 0.3})
        write_lab_settings(server)
        shutil.copy(DASHBOARD, server.root / DASHBOARD.name)
        try:
            server.start()
            set_up(server)
            set_up_pipelines(server, turns)
            with sync_playwright() as pw:
                browser = launch_browser(pw)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000},
                                            device_scale_factor=scale)
                    page.set_default_timeout(30_000)
                    page.goto(f"{server.url}voila/render/{DASHBOARD.name}?token={server.token}",
                              timeout=180_000)
                    page.wait_for_selector(".hive-task-board", timeout=180_000)
                    page.locator(".hive-column-blocked .hive-taskcard").first.wait_for()
                    if ready:
                        ready(page)
                    return shoot(page, out, only)
                finally:
                    browser.close()
        finally:
            server.stop()
            server.kill_tmux()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(VIEWS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="device scale factor")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    run(args.out, only, args.scale)


if __name__ == "__main__":
    main()
