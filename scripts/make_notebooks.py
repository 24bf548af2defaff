"""Regenerate notebooks/HiveOS.ipynb from this script (so the notebook stays reviewable)."""
from __future__ import annotations

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
## 2. The panel

*Sessions* shows every agent with its state (`starting`, `working`, `waiting`, `idle`, `exited`,
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
## 7. Clean up

`kill()` ends the whole process tree of the agent (children that called `setsid` included).
"""),
        code("""
hive.kill("demo-echo")
panel.refresh();
"""),
    ]
    return nb


if __name__ == "__main__":
    out = ROOT / "notebooks" / "HiveOS.ipynb"
    out.parent.mkdir(exist_ok=True)
    nbf.write(hiveos(), out)
    print(f"wrote {out}")
