"""Regenerate notebooks/analysis.ipynb from this script (so the notebook stays reviewable)."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat as nbf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_notebooks import ROOT, code, md  # noqa: E402  (one set of cell helpers)


def analysis() -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        md("""
# Analysing your agents with pandas and plotly

Hive Lab records everything your agents do: every hook event, every change of state, the git
state of each worktree and the tokens (and dollars) each session spends. `hive_lab.frames` turns
that history into pandas DataFrames, `hive_lab.plots` turns the frames into plotly figures.

**What to expect:** each frame has a fixed set of columns with proper dtypes (UTC timestamps,
categoricals for states/agents/models/events/tools, nullable integers, `string` text), the same
columns even when empty. Filters (`session=`, `event=`, `since=`, `until=`) are applied by the
server, so asking for one session never downloads the others. Run the cells top to bottom; on a
server with little history the frames are just short (or empty) and the figures say so.
"""),
        md("""
## 1. Connect

`hive_lab.connect()` finds the Jupyter server this kernel belongs to. Every frame function takes
that client as its first argument.
"""),
        code("""
import pandas as pd
import hive_lab
from hive_lab import frames, plots

hive = hive_lab.connect()
hive.status()
"""),
        md("""
## 2. Sessions

One row per session: its agent, current `state` (a categorical with the six states in order),
why (`reason`, `tool`) and where that came from (`source`: a hook, the screen or the pane).
"""),
        code("""
sessions = frames.sessions(hive)
sessions[["name", "agent", "state", "reason", "source", "since", "branch"]]
"""),
        code("""
sessions.dtypes
"""),
        md("""
## 3. Events

Every hook event an agent fired, plus Hive Lab's own (`StateChanged`, `GitChanged`,
`UsageUpdated`...), in id order. `payload` holds the hook's JSON whole. Here: the last 7 days.
`since`/`until` take a timestamp, ISO text, epoch seconds or a `pd.Timedelta` ("that long ago").
"""),
        code("""
events = frames.events(hive, since=pd.Timedelta(days=7))
events[["id", "time", "session", "agent", "event", "tool", "summary"]].tail(10)
"""),
        code("""
# Which events, per session (the categorical columns make this cheap)
pd.crosstab(events["event"], events["session"])
"""),
        md("""
The server does the filtering: this asks only for `PreToolUse` events, i.e. tool calls.
"""),
        code("""
tool_events = frames.events(hive, event="PreToolUse")
tool_events["tool"].value_counts()
"""),
        md("""
## 4. States over time

`transitions()` has one row per change of state, with `until` (the next change of the same
session) and `duration`, so time spent per state is a `groupby` away. The last state of each
session is still running: its `until` and `duration` are `NaT`.
"""),
        code("""
transitions = frames.transitions(hive)
transitions.groupby(["session", "state"], observed=True)["duration"].sum().unstack(fill_value=pd.Timedelta(0))
"""),
        md("""
The same as a Gantt chart, in the panel's colours (the current state runs up to now):
"""),
        code("""
plots.timeline(transitions)
"""),
        md("""
## 5. Tool calls and activity

`tool_calls` counts `PreToolUse` events by tool, stacked by session. Given the client instead
of a frame, it fetches just those events itself. `events_heatmap` shows when each session was
busy.
"""),
        code("""
plots.tool_calls(hive)
"""),
        code("""
plots.events_heatmap(events)  # bucket size chosen from the time span; or freq="5min"
"""),
        md("""
## 6. Tokens and cost of the server's sessions

Hive Lab follows each agent's transcript while it runs: `usage()` gives one row per API
response (deduplicated), priced from the shipped pricing table (`cost` is NA for a model it
does not know, never a silent 0). `by="session" | "day" | "model" | "block"` aggregates on the
server; the grand totals are in `.attrs["totals"]`.
"""),
        code("""
rows = frames.usage(hive)
per_session = frames.usage(hive, by="session")
per_session[["session", "requests", "input", "output", "cache_write", "cache_read", "cost"]]
"""),
        code("""
plots.cost_over_time(rows, by="session")
"""),
        code("""
plots.tokens_over_time(rows, by="kind")
"""),
        md("""
## 7. Your whole history, from transcript files (no server needed)

`frames.usage_from_files(paths)` reads Claude Code transcripts (and Codex CLI rollouts) straight
from disk, with the same deduplication and prices as the server and as the `hive-lab usage`
command. Here: Claude Code's own transcript folders (`$CLAUDE_CONFIG_DIR/projects` or
`~/.claude/projects`); pass any files or directories instead.
"""),
        code("""
from hive_lab.usage.report import default_paths

paths = default_paths()
print("transcripts under:", [str(p) for p in paths] or "none found")
history = frames.usage_from_files(paths) if paths else frames.empty("usage_rows")
daily = frames.usage_from_files(paths, by="day") if paths else frames.empty("usage_day")
daily[["day", "requests", "total_tokens", "cost", "cost_complete"]]
"""),
        code("""
plots.cost_over_time(history, by="model")
"""),
        md("""
The command line gives the same numbers, as a table or as JSON (`--json`):
"""),
        code("""
import subprocess, sys

if paths:
    report = subprocess.run([sys.executable, "-m", "hive_lab.cli", "usage", "--by", "model",
                             *map(str, paths)], capture_output=True, text=True)
    print(report.stdout or report.stderr)
"""),
        md("""
## 8. Git: what each agent changed, and where they collide

Sessions started in a git repository work in their own worktree on a `hive/<name>` branch.
`git()` has one row per session (NA for sessions without a worktree), `git_files()` one row per
changed file. `overlaps()` lists files changed by several sessions; `conflicts()` the files that
`git merge-tree` predicts will conflict when two sessions' branches are merged.
"""),
        code("""
frames.git(hive)[["session", "branch", "ahead", "behind", "dirty", "staged", "unstaged",
                  "untracked", "committed", "merges_cleanly", "last_commit_subject"]]
"""),
        code("""
frames.git_files(hive)
"""),
        code("""
display(frames.overlaps(hive))
frames.conflicts(hive)
"""),
        md("""
## 9. Live figures

With `live=True` a plot returns a `FigureWidget` that redraws itself from the server's event
stream (a task on this kernel's event loop): the timeline on every state change, the cost
figure on every usage update. `.stop()` ends it.
"""),
        code("""
live = plots.timeline(hive, live=True)
live
"""),
        code("""
live.stop()
"""),
    ]
    return nb


if __name__ == "__main__":
    out = ROOT / "notebooks" / "analysis.ipynb"
    out.parent.mkdir(exist_ok=True)
    nbf.write(analysis(), out)
    print(f"wrote {out}")
