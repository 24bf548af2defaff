"""The pipeline state machine (pure) and its store: every outcome, every bound, every verdict."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hive_lab.core.errors import BadRequest
from hive_lab.orchestrate import pipestore
from hive_lab.orchestrate.pipelines import (ADVANCE, ASK_AGAIN, CHECKS, DEFAULT_STAGES, FEEDBACK,
                                            IMPLEMENT, NEEDS_YOU, READY, REVIEW, S_CHANGES,
                                            S_FAILED, TESTS, TO_READY, CheckOutcome, Pipeline,
                                            PipelineSpec, after_checks, after_turn,
                                            after_verdict, owner_of, parse_verdict,
                                            stage_task_id)
from hive_lab.wire import PIPELINE_STATES, STAGE_KINDS, STAGE_STATES

STAGES = DEFAULT_STAGES  # implement, checks, review, tests, checks, ready


def ok(argv: str = "true") -> CheckOutcome:
    return CheckOutcome((argv,), True, 0, "the check passed", "")


def bad(argv: str = "pytest") -> CheckOutcome:
    return CheckOutcome((argv,), False, 1, "the check exited with status 1", "E assert 1 == 2")


def verdict(text: str) -> tuple:
    return parse_verdict(text)


# -- the spec ------------------------------------------------------------------------------
def spec(tmp_path: Path, **body: object) -> PipelineSpec:
    base = {"id": "p", "prompt": "do it", "repo": str(tmp_path), "scope": ["src/**"],
            "criteria": ["it works"]}
    return PipelineSpec.parse({**base, **body}, lambda d: d)


def test_default_stages_drop_checks_when_there_are_none(tmp_path: Path) -> None:
    assert spec(tmp_path).stages == (IMPLEMENT, REVIEW, TESTS, READY)
    assert spec(tmp_path, checks=[["true"]]).stages == STAGES


def test_custom_stages_get_ready_appended_and_two_reviewers_are_fine(tmp_path: Path) -> None:
    s = spec(tmp_path, stages=["implement", "review", "review"])
    assert s.stages == (IMPLEMENT, REVIEW, REVIEW, READY)


@pytest.mark.parametrize("body, needle", [
    ({"stages": ["implement", "checks"]}, "needs checks"),
    ({"stages": ["implement", "implement"]}, "once"),
    ({"stages": ["implement", "ready", "review"]}, "last"),
    ({"checks": [["true"], "false"]}, "checks[1]"),
    ({"checks": [[""]]}, "checks[0]"),
    ({"criteria": ["  "]}, "criterion"),
    ({"id": "x" * 49}, "at most 48"),
    ({"test_scope": ["../x/**"]}, "test_scope"),
    ({"implementer": "bad name"}, "implementer"),
])
def test_bad_specs_are_refused(tmp_path: Path, body: dict, needle: str) -> None:
    with pytest.raises(BadRequest) as exc:
        spec(tmp_path, **body)
    assert needle in exc.value.detail


def test_the_spec_round_trips_through_json(tmp_path: Path) -> None:
    s = spec(tmp_path, checks=[["ruff", "check"], ["pytest", "-q"]], reviewer="r")
    assert PipelineSpec.from_json(json.loads(json.dumps(s.to_json()))) == s


# -- decisions -----------------------------------------------------------------------------
def test_a_turn_moves_on_and_the_last_stage_is_ready() -> None:
    assert after_turn(STAGES, 0).action == ADVANCE and after_turn(STAGES, 0).goto == 1
    d = after_turn((IMPLEMENT, READY), 0)
    assert d.action == TO_READY and "ready" in d.reason


def test_checks_owner_is_the_nearest_writer_never_a_reviewer() -> None:
    assert owner_of(STAGES, 1) == 0
    assert owner_of(STAGES, 4) == 3  # after tests: the tester fixes its tests
    assert owner_of((IMPLEMENT, REVIEW, CHECKS, READY), 2) == 0


def test_a_failing_check_goes_back_to_its_owner_then_needs_you() -> None:
    d = after_checks(STAGES, 1, [ok(), bad()], 0, 3)
    assert d.action == FEEDBACK and d.goto == 0 and d.to_stage == 0 and d.stage_state == S_FAILED
    assert "E assert 1 == 2" in d.text and "round 1 of 3" in d.text
    d = after_checks(STAGES, 1, [bad()], 3, 3)
    assert d.action == NEEDS_YOU and d.retry is not None and d.retry.action == FEEDBACK
    assert after_checks(STAGES, 1, [ok(), ok()], 2, 3).action == ADVANCE


def test_approve_moves_on_changes_go_to_the_implementer_bounded() -> None:
    good, _ = verdict('```json\n{"verdict": "approve"}\n```')
    assert after_verdict(STAGES, 2, good, "", False, 1, 3).goto == 3
    changes, _ = verdict('```json\n{"verdict": "changes", "findings": [{"file": "a.py", '
                         '"line": 3, "severity": "minor", "text": "rename x"}]}\n```')
    d = after_verdict(STAGES, 2, changes, "", False, 2, 3)
    assert d.action == FEEDBACK and d.goto == 0 and d.next_round and d.stage_state == S_CHANGES
    assert "a.py:3 [minor] rename x" in d.text
    d = after_verdict(STAGES, 2, changes, "", False, 3, 3)
    assert d.action == NEEDS_YOU and d.retry is not None and d.retry.next_round


def test_a_malformed_verdict_is_asked_once_then_needs_you() -> None:
    v, error = verdict("looks fine to me")
    assert v is None and error
    assert after_verdict(STAGES, 2, None, error, False, 1, 3).action == ASK_AGAIN
    d = after_verdict(STAGES, 2, None, error, True, 1, 3)
    assert d.action == NEEDS_YOU and d.retry is not None and d.retry.action == ASK_AGAIN


@pytest.mark.parametrize("text, needle", [
    ('```json\n{"verdict": "yes"}\n```', "approve"),
    ('```json\n{"verdict": "changes"}\n```', "at least one finding"),
    ('```json\n{"verdict": "changes", "findings": [{"file": "a", "line": "3", "text": "t"}]}\n```',
     "line"),
    ('```json\n{"verdict": "changes", "findings": [{"file": "a", "severity": "huge", '
     '"text": "t"}]}\n```', "severity"),
    ('```json\n{"verdict": "approve",\n```', "does not parse"),
    ('```json\n[1, 2]\n```', "object"),
    ("", "no message"),
])
def test_malformed_verdicts_say_what_is_wrong(text: str, needle: str) -> None:
    v, error = verdict(text)
    assert v is None and needle in error, error


def test_the_last_block_counts_and_control_characters_are_cleaned() -> None:
    text = ('first thought:\n```json\n{"verdict": "changes", "findings": [{"file": "x", '
            '"text": "t"}]}\n```\nthen:\n```json\n{"verdict": "changes", "findings": '
            '[{"file": "src/a.py", "text": "bad\\u001b[31m red"}]}\n```')
    v, _ = verdict(text)
    assert v is not None and v.findings[0].file == "src/a.py"
    assert "\x1b" not in v.findings[0].text and v.findings[0].severity == "major"
    bare, _ = verdict('{"verdict": "approve", "summary": "ok"}')
    assert bare is not None and bare.verdict == "approve"


def test_stage_task_ids_fit_the_name_rule() -> None:
    assert stage_task_id("p" * 48, REVIEW, 19, 99) == "p" * 48 + "-rev19-99"
    assert len(stage_task_id("p" * 48, REVIEW, 19, 99)) <= 64
    assert stage_task_id("p", IMPLEMENT, 0, 5) == "p-impl"


def test_wire_vocabulary_matches() -> None:
    from hive_lab.orchestrate import pipelines as pl
    assert PIPELINE_STATES == pl.P_STATES and STAGE_KINDS == pl.KINDS
    assert set(STAGE_STATES) == {pl.S_RUNNING, pl.S_PASSED, pl.S_CHANGES, pl.S_FAILED,
                                 pl.S_NEEDS_YOU, pl.S_CANCELED}


# -- the store -------------------------------------------------------------------------------
def test_store_round_trip(tmp_path: Path) -> None:
    conn = sqlite3.connect(":memory:")
    pipestore.apply(conn)
    p = Pipeline(spec=spec(tmp_path, checks=[["true"]]), created=1.0, base_sha="a" * 40,
                 base_branch="main", cursor={"tasks": {"0": "p-impl"}})
    pipestore.insert(conn, p, 1.0)
    row = pipestore.start_stage(conn, "p", 0, IMPLEMENT, 1, 2.0)
    pipestore.update_stage(conn, row, state="passed", verdict={"verdict": "approve"}, cost=0.5)
    pipestore.add_findings(conn, "p", row, 1, [{"file": "a", "line": None, "severity": "info",
                                                "text": "t"}], 3.0)
    pipestore.add_check(conn, "p", row, ["true"], {"passed": True, "exit_code": 0,
                                                   "seconds": 0.1, "reason": "ok",
                                                   "output_tail": ""}, 3.0)
    back = pipestore.get(conn, "p")
    assert back.spec == p.spec and back.cursor == p.cursor and back.base_branch == "main"
    [stage] = pipestore.stages(conn, "p")
    assert stage["verdict"] == {"verdict": "approve"} and stage["cost"] == 0.5
    assert pipestore.findings(conn, "p")[0]["line"] is None
    assert pipestore.checks(conn, "p", row)[0]["passed"] is True
    assert [x.id for x in pipestore.list_all(conn, "running")] == ["p"]


# -- stages of one pipeline take turns, they are not rivals ----------------------------------
def test_the_planner_lets_a_tester_start_beside_its_held_implementer() -> None:
    from hive_lab.orchestrate.planner import Limits, ProfileInfo, Start, plan
    from hive_lab.orchestrate.tasks import BLOCKED, READY, Task

    prof = ProfileInfo("claude", frozenset(), True, None)

    def tasks(group_b: str) -> list[Task]:
        impl = Task(id="p-impl", prompt="x", repo="/r", scope=("**",), state=BLOCKED,
                    flags={"pipeline": "p", "hold": True})
        tester = Task(id="p-test3-1", prompt="x", repo="/r", scope=("tests/**",), state=READY,
                      flags={"pipeline": group_b, "hold": True})
        return [impl, tester]

    same = plan(tasks("p"), [prof], [], {frozenset({"p-impl", "p-test3-1"})}, Limits(), 0)
    assert same.start == [Start("p-test3-1", "claude")]
    other = plan(tasks("q"), [prof], [], set(), Limits(), 0)
    assert other.start == [] and "scope overlaps" in other.why["p-test3-1"]


def test_the_guard_does_not_count_a_sibling_stage_as_the_owner() -> None:
    from hive_lab.orchestrate import guard
    from hive_lab.orchestrate.tasks import BLOCKED, RUNNING, Task

    impl = Task(id="p-impl", prompt="x", repo="/r", scope=("**",), state=BLOCKED,
                flags={"pipeline": "p"})
    tester = Task(id="p-test3-1", prompt="x", repo="/r", scope=("tests/**",), state=RUNNING,
                  flags={"pipeline": "p"})
    assert guard.check_rel("tests/test_a.py", tester, [])[0] is True
    assert guard.check_rel("tests/test_a.py", tester, [impl])[0] is False  # why _others skips it


# -- the frames ----------------------------------------------------------------------------------
def test_pipeline_frames_have_fixed_columns_and_dtypes_empty_or_not() -> None:
    from hive_lab import frames, pipeframes

    doc = {"id": "p", "history": [
        {"id": 7, "idx": 2, "kind": "review", "round": 1, "state": "changes", "reason": "r",
         "task_id": "p-rev2-1", "started": 1.0, "ended": 2.0, "cost": 0.25,
         "verdict": {"verdict": "changes"}},
        {"id": 8, "idx": 1, "kind": "checks", "round": 1, "state": "running", "reason": "",
         "task_id": None, "started": 3.0, "ended": None, "cost": None, "verdict": None}],
        "findings": [{"id": 1, "stage_row": 7, "round": 1, "file": "a.py", "line": None,
                      "severity": "major", "text": "t", "created": 2.0}],
        "checks": [{"stage_row": 8, "passed": False}]}
    for build, schema in ((pipeframes.stages_frame, "stages"),
                          (pipeframes.findings_frame, "findings")):
        full, empty = build(doc), build({})
        assert list(full.columns) == [c for c, _ in frames.SCHEMAS[schema]]
        kinds = [str(d) for d in full.dtypes]  # "category" whatever the categories
        assert kinds == [str(d) for d in empty.dtypes] == [str(d) for d in
                                                            frames.empty(schema).dtypes]
    stages = pipeframes.stages_frame(doc)
    assert list(stages["kind"].cat.categories) == list(STAGE_KINDS)
    assert list(stages["state"].cat.categories) == list(STAGE_STATES)
    assert stages["findings"].tolist() == [1, 0]
    assert stages["checks"].tolist()[1] == 1 and stages["checks_passed"].tolist()[1] is False
    assert str(stages["started"].dtype) == "datetime64[ns, UTC]" and stages["ended"].isna()[1]
    found = pipeframes.findings_frame(doc)
    assert found["line"].isna()[0] and found["seq"].tolist() == [7]
    empty = pipeframes.pipelines_frame([])
    assert list(empty["state"].cat.categories) == list(PIPELINE_STATES)
