"""Take docs/dashboard.png: the HiveOS panel in a real JupyterLab with a few live sessions.

    .venv/bin/python scripts/screenshot.py [--out docs/dashboard.png] [--scale 1]

Needs Debian's chromium (`apt-get install chromium`; never `playwright install`). Everything
runs in a temporary directory: a real `jupyter server` with Hive Lab on a private tmux socket,
a throw-away git repository, and Chromium; all of it is stopped and removed at the end.

What is real and what is replayed: every session is a real tmux session started through the
REST API, with a real git worktree where shown, and the panel is the shipped notebook run
through JupyterLab's UI. The agent states come from real Claude Code 2.1.197 hook payloads
(../shared/samples) replayed through the real hook client, with their paths and prompts
rewritten for the demo; the program behind the "claude" sessions is `cat`, so no API is
needed. Cost comes from the real sample transcript, followed live by the server.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import SAMPLES, HiveServer, fire_hook, spawn, wait_for  # noqa: E402
from test_browser import (CHROMIUM, NOTEBOOK, SESSIONS_TABLE, launch_browser,  # noqa: E402
                          open_notebook, run_all_cells, session_row, write_lab_settings)

HOOKS = SAMPLES / "claude-code-2.1.197-hooks.jsonl"
TRANSCRIPT = SAMPLES / "claude-code-2.1.197-transcript.jsonl"
EVENT_ROWS = 6  # rows of "Latest events" in the picture
GIT = ["git", "-c", "user.name=Hive Agent", "-c", "user.email=agent@example.com"]

# Per demo agent: its prompt (put in the replayed payloads), which sample hook lines to replay
# before the notebook runs ("replay") and after ("later", seen live by the panel), the share
# of the sample transcript it has written, and the files it committed or left uncommitted.
AGENTS: dict[str, dict[str, Any]] = {
    "fix-auth": {
        "prompt": "Fix the token refresh race in src/auth.py and add a regression test",
        "replay": range(1, 10),    # SessionStart .. PermissionRequest (Write)
        "later": [10],             # its Notification, after the notebook ran
        "transcript": 1.0,
        "commit": {"src/auth.py":
                   "def refresh(token):\n    with LOCK:\n        return renew(token)\n"},
        "edit": {"tests/test_auth.py": "def test_refresh_is_serialised():\n    ...\n"},
    },
    "api-pagination": {
        "prompt": "Add cursor pagination to GET /orders",
        "replay": range(1, 5),     # SessionStart, UserPromptSubmit, PreToolUse Bash x2
        "later": [5, 6, 7, 3],     # PostToolUse x2, PostToolBatch, PreToolUse Bash...
        "later_bash": "python -m pytest -q tests/test_orders.py",  # ...running the tests
        "transcript": 0.5,
        "commit": {"src/auth.py": "def refresh(token):\n    return renew(token, paginate=True)\n",
                   "src/orders.py": "def list_orders(cursor=None, limit=50):\n    ...\n"},
    },
    "write-docs": {
        "prompt": "Document the new pagination parameters in docs/api.md",
        "replay": [1, 2, 3, 4, 5, 6, 7, 12],   # ... then Stop: idle, waiting for a prompt
        "transcript": 0.7,
        "edit": {"docs/api.md": "# Orders API\n\n`GET /orders?cursor=...&limit=50`\n"},
    },
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run([*GIT, "-C", str(repo), *args], capture_output=True, text=True,
                         timeout=30)
    if out.returncode:
        raise RuntimeError(f"git {args}: {out.stderr}")
    return out.stdout


def make_repo(path: Path) -> Path:
    files = {"README.md": "# webshop\n",
             # as in real projects: Hive Lab installs its hooks there (per worktree)
             ".gitignore": ".claude/settings.local.json\n",
             "src/auth.py": "def refresh(token):\n    return renew(token)\n",
             "src/orders.py": "def list_orders():\n    ...\n", "docs/api.md": "# Orders API\n",
             "tests/test_orders.py": "def test_list():\n    ...\n"}
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "webshop: initial import")
    return path


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def transcript_copy(lines: list[str], share: float, name: str) -> str:
    """The first ``share`` of the sample transcript, as this session's own API responses.

    Hive Lab counts a response (message id + request id) once across all transcripts, as it
    must for resumed sessions, and attributes it by the agent's session id; so each demo
    session gets its own ids."""
    out = []
    for line in lines[:max(1, round(len(lines) * share))]:
        record = json.loads(line)
        if "sessionId" in record:
            record["sessionId"] = f"demo-{name}"  # the session_id its hooks report
        if record.get("type") == "assistant":
            record["requestId"] = f"{record['requestId']}-{name}"
            record["message"]["id"] = f"{record['message']['id']}-{name}"
        out.append(json.dumps(record))
    return "\n".join(out) + "\n"


def replay(server: HiveServer, name: str, spec: dict[str, Any], cwd: str, transcript: Path) -> None:
    """Fire the chosen sample payloads as this session's agent would, paths made local."""
    lines = HOOKS.read_text().splitlines()
    for index in spec["replay"]:
        payload = json.loads(lines[index])
        payload.update(session_id=f"demo-{name}", cwd=cwd, transcript_path=str(transcript))
        if "prompt" in payload:
            payload["prompt"] = spec["prompt"]
        tool_input = payload.get("tool_input")
        if isinstance(tool_input, dict) and "file_path" in tool_input:
            tool_input["file_path"] = f"{cwd}/tests/test_auth.py"
        if isinstance(tool_input, dict) and "command" in tool_input:
            tool_input["command"] = {"ls": "ls src", "pwd": "git status --short"}.get(
                tool_input["command"], tool_input["command"])
            if spec.get("bash") and payload["hook_event_name"] == "PreToolUse":
                tool_input["command"] = spec["bash"]
        result = fire_hook(server, name, payload)
        if result.returncode:
            raise RuntimeError(f"hook for {name} failed: {result.stderr!r}")


def set_up(server: HiveServer) -> None:
    repo = make_repo(server.root / "webshop")
    transcript_lines = TRANSCRIPT.read_text().splitlines()
    (server.root / "transcripts").mkdir()
    for name, spec in AGENTS.items():
        session = spawn(server, name, None, cwd=repo, agent="claude", worktree=True)
        cwd = Path(session["cwd"])
        if spec.get("commit"):
            write(cwd, spec["commit"])
            git(cwd, "commit", "-qam", spec["prompt"])
        write(cwd, spec.get("edit", {}))
        transcript = server.root / "transcripts" / f"{name}.jsonl"
        transcript.write_text(transcript_copy(transcript_lines, spec["transcript"], name))
        replay(server, name, spec, str(cwd), transcript)
    # a plain program that already finished: a check run with no worktree
    spawn(server, "lint-check", ["sh", "-c", "git status --short; exit 0"], cwd=repo,
          worktree=False)
    # a Python REPL waiting at its prompt
    spawn(server, "py-repl", ["python3", "-q"], cwd=server.root, worktree=False)

    def settled() -> bool:
        sessions = {s["name"]: s["state"] for s in server.get("sessions")["sessions"]}
        git_state = server.get("git")["sessions"]
        usage = {u["sessionId"] for u in server.get("usage?by=session")["sessions"]}
        conflicts = server.get("git/conflicts")["conflicts"]
        states = {"fix-auth": "waiting", "api-pagination": "working", "write-docs": "idle",
                  "lint-check": "exited"}
        return (all(sessions.get(n, {}).get("name") == want for n, want in states.items())
                and all((git_state.get(n) or {}).get("ahead")
                        for n in ("fix-auth", "api-pagination"))
                and set(AGENTS) <= usage and bool(conflicts))

    wait_for(settled, timeout=60, interval=0.5, what="the demo sessions to settle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--scale", type=float, default=1.0, help="device scale factor")
    parser.add_argument("--size", default="1400x1250", help="browser viewport, WIDTHxHEIGHT")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="hive-shot-") as tmp:
        server = HiveServer(Path(tmp), extra_config={
            "profiles": {"claude": {"command": ["cat"], "hooks": "claude"}}})
        write_lab_settings(server)
        shutil.copy(NOTEBOOK, server.root / NOTEBOOK.name)
        try:
            server.start()
            set_up(server)
            with sync_playwright() as pw:
                browser = launch_browser(pw)
                try:
                    width, height = (int(v) for v in args.size.split("x"))
                    page = browser.new_page(viewport={"width": width, "height": height},
                                            device_scale_factor=args.scale)
                    page.set_default_timeout(30_000)
                    open_notebook(server, page)
                    run_all_cells(page)
                    shoot(server, page, args.out)
                finally:
                    browser.close()
        finally:
            server.stop()
            server.kill_tmux()
    print(f"wrote {args.out}")


def shoot(server: HiveServer, page: Any, out: Path) -> None:
    """Let the live panel catch up with some more agent activity, then take the viewport."""
    for name in (*AGENTS, "lint-check", "py-repl"):
        session_row(page, name).wait_for(timeout=20_000)
    # activity after the cells ran reaches the panel through the live stream
    for name, spec in AGENTS.items():
        if spec.get("later"):
            replay(server, name, {**spec, "replay": spec["later"], "bash": spec.get("later_bash")},
                   server.get(f"sessions/{name}")["cwd"],
                   server.root / "transcripts" / f"{name}.jsonl")
    events = page.locator("table.hive-table:has(th:text-is('Summary'))")
    events.locator("td", has_text="Claude needs your permission").wait_for(timeout=20_000)
    # the talk form aimed at the agent that waits for an answer
    target = page.locator(".widget-dropdown", has=page.locator("label", has_text="Session")
                          ).locator("select")
    target.select_option(label="fix-auth")
    # more room for the panel: hide the file browser, put the panel's cell at the top
    page.keyboard.press("Control+b")
    page.wait_for_timeout(300)
    page.locator(".jp-CodeCell", has=page.locator(SESSIONS_TABLE)).evaluate(
        "cell => { cell.scrollIntoView({block: 'start'});"
        " cell.closest('.jp-WindowedPanel-outer').scrollBy(0, -8); }")
    page.mouse.move(0, 0)  # no hover effects
    page.wait_for_timeout(800)
    # end the picture at a row boundary of the events list (or at the window's bottom)
    viewport = page.viewport_size
    rows = events.locator("tr")
    bottom = viewport["height"]
    if rows.count() > EVENT_ROWS:
        box = rows.nth(EVENT_ROWS).bounding_box()
        if box and box["y"] + box["height"] + 1 < viewport["height"]:
            bottom = box["y"] + box["height"] + 1
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": viewport["width"],
                                         "height": bottom})


if __name__ == "__main__":
    main()
