"""Widget HTML: agent strings are escaped wherever they appear."""
from __future__ import annotations

from hive_lab.widgets import render

EVIL = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def test_sessions_table_escapes_everything() -> None:
    sessions = [{"name": "a1", "agent": EVIL, "cwd": EVIL,
                 "state": {"name": "waiting", "reason": EVIL, "tool": EVIL, "source": EVIL,
                           "since": "2026-11-24T00:00:00+00:00"}}]
    out = render.sessions_table(sessions)
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in out
    assert "onerror=&quot;" in out


def test_waiting_list_shows_only_waiting_and_escapes() -> None:
    sessions = [{"name": "w", "state": {"name": "waiting", "reason": "permission", "tool": EVIL}},
                {"name": "busy", "state": {"name": "working"}}]
    out = render.waiting_list(sessions)
    assert "busy" not in out and "<b>w</b>" in out and "<script>" not in out
    assert "Nobody" in render.waiting_list([sessions[1]])


def test_screen_and_events_escape() -> None:
    assert "<script>" not in render.screen_html(EVIL)
    out = render.events_table([{"id": 1, "session": "s", "event": EVIL, "summary": EVIL}])
    assert "<script>" not in out and "&lt;img" in out


def test_state_label() -> None:
    assert render.state_label({"name": "exited", "exit_status": 3}) == "exited (status 3)"
    assert render.state_label({"name": "waiting", "reason": "permission", "tool": "Write"}) == \
        "waiting (permission, Write)"


def test_git_cost_and_conflict_cells() -> None:
    state = {"branch": "hive/<b>x", "ahead": 2, "merges_cleanly": False,
             "staged": [], "unstaged": [{"path": "a.py"}], "untracked": [{"path": EVIL}],
             "committed": ["a.py", "b.py"]}
    cell = render.git_cell(state)
    assert "hive/&lt;b&gt;x" in cell and "+2 commits" in cell and "3 files" in cell
    assert "conflicts with base" in cell and "<script>" not in cell
    assert "no worktree" in render.git_cell(None)
    cost = render.cost_cell({"totalCost": 0.043975, "inputTokens": 10, "outputTokens": 5,
                             "cacheCreationTokens": 0, "cacheReadTokens": 100})
    assert "$0.0440" in cost and "115 tok" in cost
    assert "unknown model" in render.cost_cell({"totalCost": None, "inputTokens": 1})
    out = render.conflicts_html({"conflicts": [{"sessions": ["a", EVIL], "paths": [EVIL]}],
                                 "overlaps": [{"path": "x.py", "sessions": ["a", "b"]}]})
    assert "<script>" not in out and "x.py changed by a, b" in out
    assert "No two agents" in render.conflicts_html({})
    table = render.sessions_table([{"name": "s1", "agent": "claude", "state": {"name": "idle"}}],
                                  git={"s1": state}, usage={"s1": {"totalCost": 1.5}})
    assert "$1.5000" in table and "+2 commits" in table


def test_conflict_is_not_repeated_as_an_overlap() -> None:
    out = render.conflicts_html({
        "conflicts": [{"sessions": ["a", "b"], "paths": ["src/auth.py"]}],
        "overlaps": [{"path": "src/auth.py", "sessions": ["b", "a"]},
                     {"path": "README.md", "sessions": ["a", "c"]}]})
    assert out.count("src/auth.py") == 1 and "README.md changed by a, c" in out
