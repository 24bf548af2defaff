"""Widget HTML: agent strings are escaped wherever they appear."""
from __future__ import annotations

import pytest

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


def test_exit_status_0_and_42_have_different_badges() -> None:
    ok = render.badge({"name": "exited", "source": "pane", "exit_status": 0})
    failed = render.badge({"name": "exited", "source": "pane", "exit_status": 42})
    colour = lambda html: html.split("background:")[1].split('"')[0]  # noqa: E731
    assert colour(ok) != colour(failed)
    assert colour(failed) == render.STATE_COLOURS["error"]
    assert colour(ok) == render.STATE_COLOURS["exited"]
    assert "status 42" in failed
    assert colour(render.badge({"name": "exited", "exit_status": None})) == render.STATE_COLOURS["exited"]


def test_screen_is_headed_by_its_session_and_errors_show_no_screen() -> None:
    shown = render.screen_html("hello", "a<b>")
    assert "a&lt;b&gt;" in shown and "hello" in shown and "<b>a<b>" not in shown
    failed = render.screen_error_html(EVIL, EVIL)
    assert "class=\"hive-screen\"" not in failed and "<script>" not in failed


def test_stopped_list_escapes_and_is_empty_when_nothing_stopped() -> None:
    assert render.stopped_html([]) == ""
    out = render.stopped_html([{"name": EVIL, "agent": "shell", "at": "10:00:00",
                                "state": {"name": "working", "tool": EVIL}}])
    assert "<script>" not in out and "stopped at 10:00:00" in out


def test_form_checks_speak_the_forms_language() -> None:
    from hive_lab.widgets import forms

    profiles = {"shell": {"name": "shell", "command": [], "installed": False},
                "claude": {"name": "claude", "command": ["claude"], "installed": False}}
    check = lambda **kw: forms.check_start(**{"name": "n", "agent": "shell", "command": "",  # noqa: E731
                                              "cwd": "", "prompt": "", "env": "", **kw},
                                           profiles=profiles)
    for kwargs, words in (({}, "Command: shell runs the program"),
                          ({"name": ""}, "Name: give"), ({"name": "-x"}, "Name: use"),
                          ({"command": "'open"}, "Command: No closing quotation"),
                          ({"agent": "claude"}, "Agent: claude is not installed"),
                          ({"command": "cat", "env": "A=1\nbad"}, "Environment, line 2")):
        with pytest.raises(forms.FormError, match=words):
            check(**kwargs)
    form = check(command="cat -n", env="A=1\n# c\n\nB= two=2 ", cwd=" /tmp ")
    assert (form.command, form.env, form.cwd) == (["cat", "-n"], {"A": "1", "B": " two=2"}, "/tmp")
    assert forms.spawn_error("conflict", "session 'n' already exists", form).startswith("Name:")
    assert "argv" not in forms.spawn_error(
        "bad_request", "agent 'shell' needs a command (a list of argv strings)", form)
