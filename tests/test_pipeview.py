"""The control room's pipelines and merge queue view (hive_lab.widgets.pipes).

Pure drawing is checked on hand-made records; the live part runs a real Jupyter server, real
tmux and git, and the scripted stand-in agent playing implementer and reviewer (the only
stand-in, for the model), read through a real :class:`LiveState` (no loop: ``refresh``).
"""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from hive_lab import wire
from hive_lab.orchestrate import mergeplan
from hive_lab.widgets import live as live_mod
from hive_lab.widgets import needs
from hive_lab.widgets import pipes
from hive_lab.widgets.live import LiveState
from support import GIT_ENV, HiveServer, git, wait_for

HOSTILE = '<img src=x onerror="alert(1)">'
AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")


def pipeline(state: str = "running", stage: int = 1, **extra: Any) -> dict[str, Any]:
    return {"id": "p1", "title": "Fix it", "stages": ["implement", "checks", "review", "ready"],
            "state": {"name": state, "reason": extra.pop("reason", "")}, "stage": stage,
            "round": 1, "max_review_rounds_now": 3, "history": [], "findings": [],
            "cost": None, "can_retry": False, **extra}


# -- pure ---------------------------------------------------------------------------------------
def test_chips_done_current_pending_and_failed() -> None:
    assert [s for _, s in pipes.chip_states(pipeline(stage=2))] == [
        "done", "done", "current", "pending"]
    stuck = pipeline("needs_you", 2, history=[{"id": 5, "idx": 2, "kind": "review",
                                              "state": "failed", "round": 1}])
    assert [s for _, s in pipes.chip_states(stuck)] == ["done", "done", "failed", "pending"]
    assert {s for _, s in pipes.chip_states(pipeline("ready", 3))} == {"done"}
    html = pipes.pipeline_html(pipeline(stage=2, round=2))
    assert "review · round 2/3" in html


def test_everything_from_agents_is_escaped() -> None:
    p = pipeline("needs_you", 2, title=HOSTILE, reason=HOSTILE, history=[
        {"id": 7, "idx": 2, "kind": "review", "state": "changes", "round": 1,
         "verdict": {"verdict": "changes"}}],
        findings=[{"stage_row": 7, "file": HOSTILE, "line": 3, "severity": HOSTILE,
                   "text": HOSTILE}])
    merge = {"id": 1, "branch": HOSTILE, "base": "main", "state": "needs_you",
             "reason": HOSTILE, "order_reason": HOSTILE, "conflicts": [HOSTILE], "source": "x"}
    for html in (pipes.pipeline_html(p), pipes.merge_html(merge)):
        assert "<img" not in html and "&lt;img" in html


def test_latest_review_findings_only() -> None:
    p = pipeline(history=[{"id": 1, "kind": "review", "round": 1},
                          {"id": 2, "kind": "implement", "round": 2},
                          {"id": 3, "kind": "review", "round": 2}],
                 findings=[{"stage_row": 1, "file": "a.py", "line": 1, "severity": "major",
                            "text": "old"},
                           {"stage_row": 3, "file": "b.py", "line": 9, "severity": "minor",
                            "text": "new"}])
    review, found = pipes.latest_review(p)
    assert review is not None and review["id"] == 3 and [f["text"] for f in found] == ["new"]
    assert "b.py:9" in pipes.pipeline_html(p) and "old" not in pipes.pipeline_html(p)
    p["history"].append({"id": 4, "kind": "review", "round": 3, "state": "running"})
    assert (pipes.latest_review(p)[0] or {}).get("id") == 3  # a reviewer at work: round 2's stay


def test_queue_order_and_the_states_agree_with_the_server() -> None:
    assert pipes.APPROVABLE == mergeplan.APPROVABLE and pipes.TERMINAL == mergeplan.TERMINAL
    items = [{"id": 1, "state": "merged", "updated": 5}, {"id": 2, "state": "queued",
             "position": 2}, {"id": 3, "state": "checking", "position": 1},
             {"id": 4, "state": "rejected", "updated": 9}]
    assert [m["id"] for m in pipes.queue_order(items)] == [3, 2, 4, 1]


def test_pipeline_and_merge_events_make_their_parts_stale() -> None:
    for name in wire.PIPELINE_EVENTS:
        assert "pipelines" in live_mod.STALE_BY_EVENT[name]
    assert "merges" in live_mod.STALE_BY_EVENT[wire.MERGE_CHANGED]


def test_needs_you_cards_for_a_stopped_pipeline_and_a_merge_awaiting_approval() -> None:
    class Data:
        sessions: list[Any] = []
        scopes: list[Any] = []
        budgets: dict[str, Any] = {}
        pipelines = [pipeline("needs_you", 2, can_retry=True, stage_kind="review",
                              reason="the verdict is malformed again"),
                     pipeline("running", 1) | {"id": "p2"}]
        merges = [{"id": 4, "state": "awaiting_approval", "branch": "hive/x", "base": "main",
                   "reason": "checks passed", "updated": 2.0, "checked_head": "abc"},
                  {"id": 5, "state": "needs_you", "branch": "y", "base": "main",
                   "reason": "conflict", "conflicts": ["a.txt"], "updated": 3.0},
                  {"id": 6, "state": "queued", "branch": "z", "base": "main"}]
    found = {c["kind"] + ":" + str(c.get("pipeline") or c.get("merge")): c
             for c in needs.cards(Data(), lambda name: [])}
    assert set(found) == {"pipeline:p1", "merge:4", "merge:5"}
    assert found["pipeline:p1"]["answers"] == ["retry_pipeline", "cancel_pipeline"]
    assert found["merge:4"]["answers"] == ["approve_merge", "reject_merge"]
    assert [b["label"] for b in found["merge:4"]["buttons"]] == ["Approve merge", "Reject"]
    assert found["merge:5"]["answers"] == ["retry_merge", "reject_merge"]
    assert "a.txt" in found["merge:5"]["body"]


# -- live, with a real server -------------------------------------------------------------------
def _profile(turns: Path, *capabilities: str) -> dict[str, Any]:
    return {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
            "capabilities": list(capabilities), "env": {**GIT_ENV, "SCRIPTED_TURNS": str(turns)}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveServer]:
    root = tmp_path_factory.mktemp("pipeview")
    turns = root / "turns"
    turns.mkdir()
    srv = HiveServer(root, extra_config={"profiles": {"impl": _profile(turns),
                                                      "rev": _profile(turns, "review")},
                                         "task_interval": 0.3}).start()
    srv.turns = turns  # type: ignore[attr-defined]
    yield srv
    srv.stop()
    srv.kill_tmux()


def make_repo(server: HiveServer) -> Path:
    path = server.root / f"repo-{secrets.token_hex(4)}"
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.py").write_text("VALUE = 0\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


def script(server: HiveServer, task_id: str, *turns: list[str]) -> None:
    (server.turns / f"{task_id}.json").write_text(json.dumps(list(turns)))  # type: ignore[attr-defined]


def verdict(data: dict[str, Any]) -> str:
    return "@say I read the diff.\\n```json\\n" + json.dumps(data) + "\\n```"


def settle(live: LiveState, view: pipes.PipelineView, check: Any, what: str,
           timeout: float = 90) -> Any:
    def ok() -> Any:
        live.refresh({"pipelines", "merges"})
        return check()
    return wait_for(ok, timeout=timeout, interval=0.3, what=what)


@pytest.mark.e2e
def test_a_pipeline_row_follows_its_stages_and_its_merge_is_approved(
        server: HiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(server)
    script(server, "pv-impl", ["@write src/app.py VALUE = 41"], ["@write src/app.py VALUE = 42"])
    script(server, "pv-rev1-1", [verdict({"verdict": "changes", "summary": "no", "findings": [
        {"file": "src/app.py", "line": 1, "severity": "major", "text": "want 42 " + HOSTILE}]})])
    script(server, "pv-rev1-2", [verdict({"verdict": "approve", "summary": "ok"})])
    live = LiveState(server.client(), start=False)
    view = pipes.PipelineView(live)
    live.on_change(view.update)
    status, body = server.request("POST", "pipelines", {
        "id": "pv", "title": "Answer " + HOSTILE, "prompt": "Set VALUE to 42.",
        "repo": str(repo), "scope": ["src/**"], "criteria": ["VALUE is 42"],
        "stages": ["implement", "review"], "implementer": "impl", "reviewer": "rev"})
    assert status == 201, body

    settle(live, view, lambda: "pv" in view.pipe_rows, "the pipeline's row")
    row = view.pipe_rows["pv"]
    assert "<img" not in row.html.value and "Answer &lt;img" in row.html.value
    # the reviewer's finding of round 1 is shown while round 2 runs or after it
    settle(live, view, lambda: "want 42" in row.html.value or
           (live.data.pipelines[0]["state"]["name"] == "ready" and
            any(f["text"].startswith("want 42") for f in live.data.pipelines[0]["findings"])),
           "the round-1 finding")
    settle(live, view, lambda: live.data.pipelines[0]["state"]["name"] == "ready",
           "the pipeline ready")
    # implement, review and the ready stage the server appends: all done
    assert row.html.value.count("data-state='done'") == 3
    assert "data-state='pending'" not in row.html.value
    assert "round 2/3" in row.html.value
    assert row.buttons["cancel"].layout.display == "none"

    item = settle(live, view, lambda: next(
        (m for m in live.data.merges if m["branch"] == "hive/pv-impl"
         and m["state"] == "awaiting_approval"), None), "its merge item awaiting approval")
    mrow = view.merge_rows[item["id"]]
    assert mrow.buttons["approve"].layout.display == ""
    draws = row.draws
    live.refresh({"pipelines", "merges"})
    assert row.draws == draws  # nothing changed: the row was not re-sent

    mrow.buttons["approve"].click()  # no loop here: the call is made inline
    assert "approve merge" in view.message.value and "failed" not in view.message.value
    wait_for(lambda: server.get(f"merges/{item['id']}")["state"] == "merged", timeout=60,
             what="the approved merge")
    assert git(repo, "show", "main:src/app.py").strip() == "VALUE = 42"
    settle(live, view, lambda: "data-state='merged'" in mrow.html.value, "the merged row")
    assert mrow.buttons["approve"].layout.display == "none"
    # a settled pipeline is not fetched in detail again while its list entry stays the same
    monkeypatch.setattr(live_mod, "SETTLED_SECONDS", 0.0)
    client = live.client
    asked: list[str] = []
    real = client.pipeline

    def spy(pid: str) -> dict[str, Any]:
        asked.append(pid)
        return real(pid)
    monkeypatch.setattr(client, "pipeline", spy)
    live_mod._DETAILS.pop(client, None)
    first = live_mod.pipeline_details(client)
    again = live_mod.pipeline_details(client)
    assert asked == ["pv"] and again == first and again[0]["history"]


@pytest.mark.e2e
def test_an_approve_the_server_refuses_shows_its_error_and_changes_nothing(
        server: HiveServer) -> None:
    repo = make_repo(server)
    git(repo, "switch", "-q", "-c", "feature")
    (repo / "src" / "app.py").write_text("VALUE = 1\n")
    git(repo, "commit", "-qam", "feature")
    git(repo, "switch", "-q", "main")
    status, item = server.request("POST", "merges", {"repo": str(repo), "branch": "feature",
                                                     "base": "main", "checks": []})
    assert status == 201, item
    live = LiveState(server.client(), start=False)
    view = pipes.PipelineView(live)
    live.on_change(view.update)
    settle(live, view, lambda: item["id"] in view.merge_rows, "the item's row")
    card = settle(live, view, lambda: next(  # also in Needs you, once awaiting approval
        (c for c in needs.cards(live.data, live.hook_payloads) if c.get("merge") == item["id"]),
        None), "the item's Needs-you card")
    assert card["answers"] == ["approve_merge", "reject_merge"]
    status, _ = server.request("POST", f"merges/{item['id']}/reject")  # elsewhere, meanwhile
    assert status == 200
    view.approve(item["id"])  # the row still offered Approve
    assert "failed" in view.message.value and "rejected" in view.message.value
    assert "data-error='1'" in view.message.value
    assert server.get(f"merges/{item['id']}")["state"] == "rejected"
    outcome = needs.answer(server.client(), card, card["answers"][0])  # the Needs-you card
    assert not outcome.ok and "rejected" in outcome.message, outcome
    assert git(repo, "show", "main:src/app.py").strip() == "VALUE = 0"
    live.refresh({"merges"})
    assert view.merge_rows[item["id"]].buttons["approve"].layout.display == "none"
