"""Regenerate notebooks/HiveOS.ipynb from this script (so the notebook stays reviewable)."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parent.parent


def md(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_markdown_cell(text.strip())


def code(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_code_cell(text.strip())


def hiveos() -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        md("""
# HiveOS: the control room for your coding agents

Hive Lab runs each agent (Claude Code, Codex CLI, Gemini CLI, Aider, or any terminal program) in
its own **tmux** session on a private socket, receives every **hook event** it fires, and decides
its **status** from hooks first and its screen second. This notebook is a client of the Jupyter
server extension that does all that: nothing here talks to tmux directly.

**How to use it:** run the cells top to bottom. The panel below updates live from the server's
event stream; you can start, answer, interrupt and stop agents from it.
"""),
        md("""
## 1. Connect

`hive_lab.connect()` finds the Jupyter server this kernel belongs to (through `JPY_PARENT_PID`
and Jupyter's runtime files) and returns a `HiveClient`. Outside Jupyter, pass `url=` and `token=`.
"""),
        code("""
import hive_lab
hive = hive_lab.connect()
hive.status()
"""),
        md("""
## 2. The control room

`ControlRoom()` is the screen you run the fleet from; it follows the server's event stream live
(the kernel stays usable: fetches run in a worker thread, redraws are coalesced).

* **Needs you** (top): every agent that waits for you, oldest first, with what it asks: the tool
  and its command or file (for a Write or Edit the content or the change it proposes), a
  question's text and its numbered choices, scope requests and budget pauses. Answer right
  there: *Approve*, *Deny*, a choice, a typed reply, *Widen scope*, *Raise to ...*. An answer is
  sent only while that question is still open; a card whose question has gone says so and
  sends nothing. A badge counts them; a browser notification (asked for once; nothing while
  this tab has the focus) tells you when a new one arrives.
  **Keys** on a focused card (click it or Tab to it): `a` approve / widen / raise, `d` deny /
  refuse, `1`-`9` pick a choice, `r` reply box, `j` / `k` next / previous card.
* **The fleet**, grouped by repository: state and where it came from, for how long, task, the
  last tool, git (branch, commits ahead, files changed, predicted conflicts), cost against its
  budget, attempts, exit status. Filter, sort, select several to stop them; stopped agents stay
  greyed until you dismiss them; *Clean up finished worktrees* removes merged/pushed ones.
* **Click an agent** for its detail: a live terminal with colours (followed twice a second
  while it is on screen), its diff against the base per file, its event timeline, cost over
  time and attempts, and a box to type into it plus its keys.

Every button is one `HiveClient` call you could make from a cell (`room.answer(key, "approve")`
does what the button does).
"""),
        code("""
from hive_lab.widgets.room import ControlRoom
room = ControlRoom(hive)
room
"""),
        md("""
## 2b. The classic panel

The compact panel of earlier versions (still importable as
`hive_lab.widgets.SessionsPanel`). *Sessions* shows every agent with its state (`starting`, `working`, `waiting`, `idle`, `exited`,
`error`) and **where that state came from** (`hook:PreToolUse`, `screen`, `pane`...).
*Waiting for you* lists agents stuck at a permission prompt or a question. Use the forms to start
an agent and to type into it (*Env* takes `KEY=value` lines; agents whose CLI is missing say
*not installed*); *Approve (1)* / *Deny (Esc)* answer Claude Code's permission dialog. *Stop*
asks before it ends an agent, and stopped sessions stay listed under the table. The panel
redraws at most four times a second and fetches in the background, so cells stay responsive
however busy the fleet is.
"""),
        code("""
from hive_lab.widgets import SessionsPanel
panel = SessionsPanel(hive)
panel
"""),
        md("""
## 3. The same things from code

Every button is one API call. Here we start a plain program (the `shell` agent takes any argv),
type into it, and read its screen. Text is delivered byte-exact: quotes, `;`, `$(...)` and
`#{...}` arrive as typed, never interpreted.
"""),
        code("""
import time
demo = hive.spawn("demo-echo", agent="shell", command=["cat"])
hive.send("demo-echo", "hello from the notebook; $(not run) #{not expanded}")
time.sleep(0.5)
print(hive.screen("demo-echo"))
"""),
        md("""
## 4. Events

Every hook event and every state change is stored (SQLite, WAL) and streamed. `events()` takes
filters that the server applies: `session=`, `event=`, `after=` (an event id), `since=`/`until=`.
"""),
        code("""
for e in hive.events(session="demo-echo"):
    print(e["id"], e["event"], e["summary"])
"""),
        md("""
## 5. What changed, and where agents collide

Started inside a git repository, every agent gets its own worktree on branch `hive/<name>`,
so parallel agents never edit the same checkout. `git()` shows each one's branch, commits
ahead of its base, changed files and whether it still merges cleanly; `conflicts()` lists files
two sessions both change and the merge conflicts `git merge-tree` predicts between them.
"""),
        code("""
{name: (state or {}).get("branch") for name, state in hive.git()["sessions"].items()}
"""),
        code("""
hive.conflicts()
"""),
        md("""
## 6. What it cost

Hive Lab follows each agent's transcript as it grows and prices every API response with a
dated pricing table (an unknown model is reported as unknown, never as $0). Group by
`session`, `day`, `model` or 5-hour billing `block`. For DataFrames and plots see
`analysis.ipynb`.
"""),
        code("""
hive.usage(by="session")["totals"]
"""),
        md("""
## 7. Give the agents tasks

A **task** is a prompt with boundaries: a repository, a **scope** (the files it may change), the
capabilities it **requires** of an agent profile, tasks it **depends on**, and a **check** that
decides when it is done. Hive Lab starts each task when it can, on a profile that qualifies, in
its own worktree on branch `hive/<id>`, and keeps its agent inside the scope (a write elsewhere
is denied before it happens, or flagged by the audit). Whenever a task is not running, its
`why` says what it waits for.

This demo is safe to run: it works in a throwaway git repository made here, and its tasks ask
for a capability (`teaching-demo`) that no agent profile has, so no agent starts. Give a real
task `requires=["implement"]` and Claude Code, Codex or Gemini picks it up.
"""),
        code("""
import subprocess, tempfile, time
from pathlib import Path

demo_repo = Path(tempfile.mkdtemp(prefix="hive-demo-"))
(demo_repo / "docs").mkdir()
(demo_repo / "docs" / "index.md").write_text("# Demo\\n")
git = ["git", "-C", str(demo_repo), "-c", "user.name=Demo", "-c", "user.email=demo@example.com"]
subprocess.run([*git, "init", "-q"], check=True)
subprocess.run([*git, "add", "-A"], check=True)
subprocess.run([*git, "commit", "-qm", "initial"], check=True)
demo_repo
"""),
        code("""
hive.add_task(id="demo-docs", repo=str(demo_repo), prompt="Describe the install steps in docs/",
              scope=["docs/**"], requires=["teaching-demo"],
              check=["test", "-f", "docs/install.md"])
hive.add_task(id="demo-review", repo=str(demo_repo), prompt="Review the new docs (read only)",
              depends_on=["demo-docs"], requires=["review"])
for _ in range(50):  # the planner runs every task_interval seconds (default 1)
    if "teaching-demo" in (hive.task("demo-docs").get("why") or ""):
        break
    time.sleep(0.2)
for t in hive.tasks(repo=str(demo_repo)):
    print(f"{t['id']:<12} {t['state']['name']:<8} why: {t.get('why')}")
"""),
        md("""
The same as a DataFrame: `state` is a categorical of every task state in order (`pending`,
`ready`, `running`, `waiting`, `checking`, `blocked`, `done`, `failed`, `canceled`), times are
tz-aware, counts nullable integers. `hive.frames.attempts()` has one row per attempt (its agent
profile, outcome, check rounds, duration).
"""),
        code("""
hive.frames.tasks(repo=str(demo_repo))[["id", "state", "why", "scope", "requires", "depends_on"]]
"""),
        md("""
When an agent needs a file outside its scope it runs `hive-lab task request-scope <task> '<glob>'
--why '...'` in its session; the task turns `blocked`, and you decide:
`hive.scope_requests(state="pending")`, then `hive.approve_scope(rid)` (the glob joins the scope
and the agent is told to continue) or `hive.refuse_scope(rid, note="...")`. From a terminal:
`hive-lab task ls`, `hive-lab task requests`, `hive-lab task approve ID`.

Canceling stops a task's session (its worktree keeps the work); deleting removes the record.
"""),
        code("""
for tid in ("demo-review", "demo-docs"):
    hive.cancel_task(tid)
    hive.delete_task(tid)
[t["id"] for t in hive.tasks(repo=str(demo_repo))]
"""),
        md("""
## 8. Clean up

`kill()` ends the whole process tree of the agent (children that called `setsid` included).
"""),
        code("""
hive.kill("demo-echo")
panel.refresh();
"""),
    ]
    return nb


def dashboard() -> nbf.NotebookNode:
    """The standalone control room (hive-lab dashboard renders it with Voila)."""
    sys.path.insert(0, str(ROOT))
    from hive_lab.widgets.dashboard import notebook_json

    return nbf.from_dict(notebook_json())


if __name__ == "__main__":
    out = ROOT / "notebooks" / "HiveOS.ipynb"
    out.parent.mkdir(exist_ok=True)
    nbf.write(hiveos(), out)
    print(f"wrote {out}")
    out = ROOT / "notebooks" / "Dashboard.ipynb"
    nbf.write(dashboard(), out)
    print(f"wrote {out}")
