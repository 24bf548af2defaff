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
