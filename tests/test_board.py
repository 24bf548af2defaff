"""Unit tests of the task board, money view and start form (no server: a recording client).

The form checks are compared with the server's own parsing on the same inputs, so the form
never refuses what the server takes, nor lets through what it refuses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncio
import pytest

from hive_lab.client import HiveAPIError
from hive_lab.core.errors import BadRequest
from hive_lab.orchestrate import scopes
from hive_lab.orchestrate.budgets import parse_task_budget
from hive_lab.orchestrate.tasks import TaskSpec
from hive_lab.widgets import board as board_mod
from hive_lab.widgets import money, start, taskform

HOSTILE = '<img src=x onerror="alert(1)">'


@dataclass
class Data:
    tasks: list[dict[str, Any]] = field(default_factory=list)
    scopes: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)


class Client:
    """Records calls; ``fail`` maps a method to the HiveAPIError it raises."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, HiveAPIError] = {}

    def _call(self, name: str, *args: Any) -> Any:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail[name]
        return {"id": args[0].get("id") if args and isinstance(args[0], dict) else args[0],
                "name": args[0]}

    def transitions(self, session: str | None = None, after: int = 0) -> list[Any]:
        return []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, *args, *kwargs.items())


class Live:
    def __init__(self) -> None:
        self.client = Client()
        self.data = Data()
        self.callbacks: list[Any] = []
        self.stale: list[tuple[str, ...]] = []

    def on_change(self, cb: Any) -> Any:
        self.callbacks.append(cb)
        return cb

    def mark_stale(self, *parts: str) -> None:
        self.stale.append(parts)

    def emit(self, parts: set[str]) -> None:
        for cb in self.callbacks:
            cb(parts)


def task(tid: str, state: str, why: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": tid, "title": extra.pop("title", tid), "state": {"name": state,
            "reason": extra.pop("reason", "")}, "attempts": extra.pop("attempts", []),
            "max_attempts": 3, "why": why, "priority": 0, "created": 1.0, **extra}


# -- the form's checks agree with the server -------------------------------------------------
def server_accepts(body: dict[str, Any], repo: str) -> bool:
    try:
        TaskSpec.parse(body, lambda _d: repo)
    except BadRequest:
        return False
    return True


@pytest.mark.parametrize("fields,bad", [
    ({"id": "t1", "prompt": "do it", "repo": "{repo}"}, None),
    ({"id": "-t1", "prompt": "do it", "repo": "{repo}"}, "id"),
    ({"id": "t 1", "prompt": "do it", "repo": "{repo}"}, "id"),
    ({"id": "t1", "prompt": "  ", "repo": "{repo}"}, "prompt"),
    ({"id": "t1", "prompt": "x", "repo": "relative/dir"}, "repo"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "scope": "src/**, tests/"}, None),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "scope": "../etc"}, "scope"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "scope": "/abs/**"}, "scope"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "scope": ".git/config"}, "scope"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "scope": "src/a**b"}, "scope"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "scope": "src\\x"}, "scope"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "requires": "python, web"}, None),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "requires": "py thon"}, "requires"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "check": "pytest -q 'a b'"}, None),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "check": "pytest 'unclosed"}, "check"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "budget": "dollars=2 minutes=30"}, None),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "budget": "$2, 30m, 100k"}, None),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "budget": "dollars=-1"}, "budget"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "budget": "warn_at=0.5"}, "budget"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "budget": "tokens=1.5"}, "budget"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "budget": "euros=3"}, "budget"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "base": "main"}, None),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "base": "-x"}, "base"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "base": "a..b"}, "base"),
    ({"id": "t1", "prompt": "x", "repo": "{repo}", "title": "x" * 201}, "title"),
])
def test_form_checks_agree_with_the_server(tmp_path: Path, fields: dict[str, str],
                                           bad: str | None) -> None:
    repo = str(tmp_path)
    fields = {k: v.replace("{repo}", repo) for k, v in fields.items()}
    draft = taskform.check_task(fields)
    if bad is None:
        assert draft.ok, draft.errors
        assert server_accepts(draft.body, repo)
    else:
        assert set(draft.errors) == {bad}, draft.errors
        assert draft.body == {}  # nothing is sent
        # the same value, sent raw the way the form would, is refused by the server too
        raw: dict[str, Any] = {"id": fields["id"], "prompt": fields["prompt"],
                               "repo": fields["repo"]}
        if bad == "scope":
            raw["scope"] = taskform.split_list(fields["scope"])
        elif bad == "requires":
            raw["requires"] = taskform.split_list(fields["requires"])
        elif bad in ("base", "title"):
            raw[bad] = fields[bad]
        if bad in ("id", "prompt", "repo", "scope", "requires", "base", "title"):
            assert not server_accepts(raw, repo)


@pytest.mark.parametrize("glob", ["src/**", "a/*.py", "docs/", "./x", "**/*.md", "a/[ab].py",
                                  "", "..", "a/../b", "~/x", "a//b", "**/.git", "a/./b"])
def test_scope_pattern_check_matches_the_server(glob: str) -> None:
    try:
        scopes.validate_pattern(glob)
        server_ok = True
    except BadRequest:
        server_ok = False
    mine = bool(glob.strip()) and taskform.check_pattern(glob) is None
    assert mine == server_ok, glob


@pytest.mark.parametrize("text", ["dollars=2", "minutes=30 tokens=1000", "$1.5", "2M",
                                  "dollars=2 ceiling=2", "dollars=1 warn_at=0.5"])
def test_budget_text_is_what_the_server_takes(text: str) -> None:
    body = taskform.parse_budget(text)
    assert parse_task_budget(body) is not None


def test_every_error_is_shown_at_once_and_nothing_sent() -> None:
    draft = taskform.check_task({"id": "", "prompt": "", "repo": "x", "scope": "/a",
                                 "check": "'", "budget": "nope"})
    assert set(draft.errors) == {"id", "prompt", "repo", "scope", "check", "budget"}
    assert draft.body == {}


def test_id_is_made_from_the_title() -> None:
    draft = taskform.check_task({"title": "Fix the Login bug!", "prompt": "x", "repo": "/r"})
    assert draft.body["id"] == "fix-the-login-bug"


def test_server_errors_name_their_field() -> None:
    assert taskform.field_of(409, "conflict", "task t1 already exists") == "id"
    assert taskform.field_of(400, "bad_request", "repo '/x' is not a directory") == "repo"
    assert taskform.field_of(400, "bad_request",
                             "repo '/x' is not inside a git repository") == "repo"
    assert taskform.field_of(400, "bad_request", "scope pattern 'a' ...") == "scope"
    assert taskform.field_of(400, "bad_request", "budget dollars must be ...") == "budget"
    assert taskform.field_of(500, "boom", "something else") is None


# -- the board ----------------------------------------------------------------------------------
def test_cards_sit_in_their_state_column_and_move() -> None:
    live = Live()
    live.data.tasks = [task("a", "ready", why="waiting for a free agent"), task("b", "running")]
    b = board_mod.TaskBoard(live)
    assert b.column_of("a") == "ready" and b.column_of("b") == "running"
    card_a = b.cards["a"].box
    assert card_a in b.columns["ready"].children
    assert "why: waiting for a free agent" in b.cards["a"].html.value
    assert "why:" not in b.cards["b"].html.value  # running: no why
    live.data.tasks = [task("a", "running"), task("b", "done")]
    live.emit({"tasks"})
    assert b.cards["a"].box is card_a  # the same card, moved
    assert card_a in b.columns["running"].children
    assert card_a not in b.columns["ready"].children
    assert "1" in b.titles["done"].value


def test_board_redraws_only_for_its_parts() -> None:
    live = Live()
    live.data.tasks = [task("a", "ready")]
    b = board_mod.TaskBoard(live)
    n = b.redraws
    live.emit({"git", "usage"})
    assert b.redraws == n
    live.data.tasks = list(live.data.tasks)  # a refetch with equal content
    live.emit({"tasks"})
    assert b.redraws == n


def test_agent_text_is_escaped_on_cards() -> None:
    live = Live()
    live.data.tasks = [task("a", "blocked", why=HOSTILE, title=HOSTILE)]
    live.data.scopes = [{"id": 7, "task_id": "a", "glob": HOSTILE, "why": HOSTILE,
                         "state": "pending"}]
    b = board_mod.TaskBoard(live)
    html = b.cards["a"].html.value + "".join(
        w.children[0].value for w in b.cards["a"].requests.children)
    assert "<img" not in html and "&lt;img" in html


def test_buttons_are_one_client_call_each() -> None:
    live = Live()
    live.data.tasks = [task("a", "blocked"), task("f", "failed"), task("d", "done")]
    live.data.scopes = [{"id": 7, "task_id": "a", "glob": "docs/**", "why": "docs",
                         "state": "pending"}]
    b = board_mod.TaskBoard(live)
    assert b.cards["d"].cancel.layout.display == "none"  # nothing to cancel when done
    assert b.cards["a"].retry.layout.display == "none"
    b.cards["a"].cancel.click()
    b.cards["f"].retry.click()
    approve, refuse = b.cards["a"].requests.children[0].children[1].children
    approve.click()
    refuse.click()
    assert [c[0] for c in live.client.calls] == ["cancel_task", "retry_task", "approve_scope",
                                                 "refuse_scope"]
    assert live.client.calls[2][1] == (7,)
    assert live.stale and set(live.stale[-1]) == {"tasks", "scopes"}


def test_a_refused_action_says_why() -> None:
    live = Live()
    live.data.tasks = [task("f", "failed")]
    live.client.fail["retry_task"] = HiveAPIError(409, "conflict", "task f is done")
    b = board_mod.TaskBoard(live)
    b.cards["f"].retry.click()
    assert "task f is done" in b.message.value


def test_create_form_error_in_place_and_nothing_sent() -> None:
    live = Live()
    b = board_mod.TaskBoard(live)
    form = b.form
    form.inputs["prompt"].value = "do it"
    form.inputs["repo"].value = "/r"
    form.inputs["scope"].value = "../outside"
    form.create_button.click()
    assert live.client.calls == []
    assert "must not contain" in form.errors["scope"].value
    assert form.errors["prompt"].value == ""
    # a server refusal the form could not foresee goes next to its field
    form.inputs["scope"].value = "src/**"
    live.client.fail["add_task"] = HiveAPIError(400, "bad_request",
                                                "repo '/r' is not a directory")
    form.create_button.click()
    assert "is not a directory" in form.errors["repo"].value
    assert form.errors["scope"].value == ""
    del live.client.fail["add_task"]
    form.create_button.click()
    assert live.client.calls[-1][0] == "add_task"
    body = live.client.calls[-1][1][0]
    assert body == {"id": "do-it", "prompt": "do it", "repo": "/r", "scope": ["src/**"]}
    assert "created task do-it" in form.result.value


# -- money ------------------------------------------------------------------------------------
def test_forecast_text() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    b = {"by": "dollars", "dollars": 50.0, "level": "warn",
         "forecast": "2026-12-02T15:40:00+00:00"}
    assert money.forecast_text(b, now) == "reaches $50 at 15:40 UTC"
    assert money.forecast_text({**b, "forecast": None}, now).endswith("not reached at the "
                                                                      "current rate")
    assert money.forecast_text({**b, "level": "paused"}, now).startswith("reached $50")
    assert "200,000 tokens" in money.forecast_text({"by": "tokens", "tokens": 200000,
                                                    "forecast": None}, now)


def test_fleet_totals_skip_unknown_prices() -> None:
    usage = {"a": {"knownCost": 1.25, "totalTokens": 100},
             "b": {"knownCost": None, "totalCost": None, "totalTokens": 5}}
    assert money.fleet_totals(usage) == (1.25, 105)


def test_money_view_extends_the_traces_and_rebuilds_gauges_only_when_budgets_change() -> None:
    live = Live()
    live.data.usage = {"a": {"knownCost": 1.0, "totalTokens": 10}}
    view = money.MoneyView(live, seed=False)
    spend_data = view.spend.data[0]
    assert view.points == 1 and list(spend_data.y) == [1.0]
    live.data.usage = {"a": {"knownCost": 1.5, "totalTokens": 30}}
    live.emit({"usage"})
    assert view.spend.data[0] is spend_data  # the same trace, grown
    assert list(spend_data.y) == [1.0, 1.5] and list(view.spend.data[1].y) == [10, 30]
    live.emit({"usage"})  # nothing new: no point
    assert view.points == 2
    report = {"budgets": [{"id": "fleet:*:day", "scope": "fleet", "key": "*", "window": "day",
                           "dollars": 5.0, "by": "dollars", "fraction": 0.3, "level": "ok",
                           "forecast": None, "summary": "fleet: $1.5 of $5", "ceiling": 1.5,
                           "warn_at": 0.8}]}
    live.data.budgets = report
    live.emit({"budgets"})
    assert view.gauge_rebuilds == 2 and view.gauges.data[0].value == 30.0
    live.data.budgets = {"budgets": [{**report["budgets"][0], "fraction": 0.9,
                                      "level": "warn"}]}  # a refetch: a new report
    live.emit({"budgets"})
    assert view.gauge_rebuilds == 2 and view.gauges.data[0].value == 90.0
    assert "fleet / day" in view.budget_text.value
    # the synced state (what a view opened later starts from) is the figure as it is now
    assert list(view.spend._widget_data[0]["y"]) == [1.0, 1.5]
    assert view.gauges._widget_data[0]["value"] == 90.0


# -- start form ---------------------------------------------------------------------------------
PROFILES = [{"name": "claude", "command": ["claude"], "installed": False},
            {"name": "shell", "command": [], "installed": True},
            {"name": "codex", "command": ["codex"], "installed": True}]


def test_installed_profiles_first_missing_ones_marked() -> None:
    opts = start.profile_options(PROFILES)
    assert opts[0] == ("shell", "shell") and opts[-1] == ("claude (not installed)", "claude")
    live = Live()
    form = start.StartForm(live, profiles=PROFILES)
    form.agent.value = "claude"
    assert "npm install -g @anthropic-ai/claude-code" in form.profile_note.value


def test_start_errors_in_place_and_one_call() -> None:
    live = Live()
    form = start.StartForm(live, profiles=PROFILES)
    form.agent.value = "shell"
    form.name.value = "-bad"
    form.start_button.click()
    assert live.client.calls == [] and "Name" in form.errors["name"].value
    form.name.value = "ok1"
    form.command.value = "python3 -i"
    form.env.value = "not an env line"
    form.start_button.click()
    assert live.client.calls == [] and "Environment" in form.errors["env"].value
    form.env.value = "A=1"
    live.client.fail["spawn"] = HiveAPIError(409, "conflict", "session ok1 already exists")
    form.start_button.click()
    assert "already exists" in form.errors["name"].value
    del live.client.fail["spawn"]
    form.start_button.click()
    assert live.client.calls[-1][0] == "spawn"
    assert "started" in form.result.value


# -- the standalone dashboard ---------------------------------------------------------------
def test_dashboard_notebook_is_what_the_script_writes() -> None:
    import importlib.util

    import nbformat

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("make_notebooks",
                                                  root / "scripts" / "make_notebooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = nbformat.read(root / "notebooks" / "Dashboard.ipynb", as_version=4)
    assert [(c.cell_type, c.source) for c in stored.cells] == \
        [(c.cell_type, c.source) for c in module.dashboard().cells]


def test_dashboard_cli_finds_or_writes_the_notebook_and_never_overwrites(tmp_path: Path) -> None:
    from hive_lab import dashcli

    assert dashcli.notebook_path(tmp_path, None) == "Dashboard.ipynb"
    written = (tmp_path / "Dashboard.ipynb").read_text()
    assert "control_room()" in written
    (tmp_path / "Dashboard.ipynb").write_text("mine")
    assert dashcli.notebook_path(tmp_path, None) == "Dashboard.ipynb"
    assert (tmp_path / "Dashboard.ipynb").read_text() == "mine"  # kept as it was
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "Dashboard.ipynb").write_text("{}")
    assert dashcli.notebook_path(tmp_path, None) == "notebooks/Dashboard.ipynb"
    assert dashcli.notebook_path(tmp_path, "/x/My Room.ipynb") == "x/My Room.ipynb"
    assert dashcli.dashboard_url("http://h:1/base/", "t&k", "x/My Room.ipynb") == \
        "http://h:1/base/voila/render/x/My%20Room.ipynb?token=t%26k"


def test_the_state_timeline_is_redrawn_at_most_every_few_seconds_whatever_the_event_rate(
        monkeypatch: Any) -> None:
    # Redrawn whole on every round, 50 agents at 20 events/s made the room 2.3 s late
    # (benchmarks/bench_room.py); state changes within TIMELINE_SECONDS join one redraw.
    monkeypatch.setattr(money, "TIMELINE_SECONDS", 0.5, raising=False)

    async def scenario() -> tuple[int, int]:
        live = Live()
        view = money.MoneyView(live, seed=False)
        first = view.timeline_redraws  # the drawing at construction
        for i in range(30):
            live.data.sessions = [{"name": "a", "state": {"name": ("idle", "working")[i % 2]}}]
            live.emit({"sessions"})
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.8)
        return first, view.timeline_redraws

    first, after = asyncio.run(scenario())
    assert first == 1 and after == 2, (first, after)  # 30 changes, one redraw
