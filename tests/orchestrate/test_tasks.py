"""Task records, the state machine, and POST/PATCH parsing with hostile bodies."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hive_lab.core.errors import BadRequest, Conflict
from hive_lab.orchestrate.errors import DependencyCycle, IllegalTransition, UnknownDependency
from hive_lab.orchestrate.tasks import (
    CANCELED, DONE, PENDING, READY, RUNNING, STATES, TRANSITIONS, Task, TaskPatch, TaskSpec,
    check_dependencies, find_cycle, transition,
)


@pytest.fixture()
def repo(tmp_path: Path) -> str:
    (tmp_path / "sub").mkdir()
    return str(tmp_path)


def spec(root: str, **kw: Any) -> TaskSpec:
    body = {"id": "api-auth", "prompt": "Add login", "repo": root} | kw
    return TaskSpec.parse(body, lambda d: root if d.startswith(root) else None)


def test_parse_minimal_defaults(repo: str) -> None:
    s = spec(repo)
    assert (s.base, s.max_attempts, s.priority, s.check, s.scope) == ("HEAD", 3, 0, None, ())
    assert s.title == "Add login"
    t = s.to_task(now=5.0)
    assert (t.state, t.state_since, t.branch, t.read_only) == (PENDING, 5.0, "hive/api-auth", True)


def test_parse_full(repo: str) -> None:
    s = spec(repo, repo=repo + "/sub", title="Auth", base="origin/main", requires=["python", "implement", "python"],
             agent="claude", scope=["src/auth/", "tests/test_auth.py"], shared=["CHANGELOG.md"],
             depends_on=["schema"], priority=5, check=["pytest", "-q"], max_attempts=20,
             budget={"dollars": 2})
    assert s.repo == str(Path(repo).resolve()) and s.cwd == repo + "/sub"
    assert s.requires == ("implement", "python")
    assert s.scope == ("src/auth/**", "tests/test_auth.py")
    assert s.check == ("pytest", "-q")


@pytest.mark.parametrize("kw", [
    {"id": "-rf"}, {"id": "a b"}, {"id": "x" * 65}, {"id": None}, {"id": "#{pane}"},
    {"prompt": ""}, {"prompt": 3}, {"prompt": "x" * 100_001}, {"prompt": "a\x00b"},
    {"repo": "relative/dir"}, {"repo": "/definitely/not/here"}, {"repo": "/"},
    {"base": "-x"}, {"base": "a..b"}, {"base": "a b"}, {"base": "x\n"}, {"base": "$(id)"},
    {"base": "x.lock"}, {"base": 7},
    {"requires": "python"}, {"requires": ["ok", "no way"]},
    {"agent": "../claude"}, {"scope": ["../x"]}, {"scope": ["/abs"]}, {"shared": ["a\x01"]},
    {"depends_on": ["api-auth"]}, {"depends_on": ["x;y"]},
    {"priority": "1"}, {"priority": True}, {"priority": 10**9}, {"priority": 1.5},
    {"check": "pytest -q"}, {"check": []}, {"check": ["pytest", 1]}, {"check": [""]},
    {"check": ["a\x00"]}, {"max_attempts": 0}, {"max_attempts": 21}, {"max_attempts": "3"},
    {"budget": [1]}, {"budget": {"x": float("nan")}}, {"budget": {"x": "y" * 5000}},
    {"unknown_field": 1},
])
def test_parse_rejects(repo: str, kw: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        spec(repo, **kw)


def test_parse_rejects_non_object_and_no_repo(repo: str) -> None:
    for body in (None, [], "x", 1):
        with pytest.raises(BadRequest):
            TaskSpec.parse(body, lambda d: d)
    with pytest.raises(BadRequest, match="not inside a git repository"):
        TaskSpec.parse({"id": "a", "prompt": "p", "repo": repo}, lambda d: None)


def test_transitions() -> None:
    t = Task(id="a", prompt="p", repo="/r", state=PENDING)
    t2 = transition(t, READY, "dependencies done", 1.0)
    assert (t.state, t2.state, t2.state_reason, t2.state_since) == (PENDING, READY, "dependencies done", 1.0)
    with pytest.raises(IllegalTransition):
        transition(t, RUNNING, "skip ready", 1.0)
    done = Task(id="a", prompt="p", repo="/r", state=DONE)
    for s in STATES:
        with pytest.raises((IllegalTransition, BadRequest)):
            transition(done, s, "x", 1.0)
    with pytest.raises(BadRequest):
        transition(t, "exploded", "x", 1.0)
    assert transition(t, CANCELED, "a\x1b[31mred\nx" + "y" * 900, 2.0).state_reason.startswith("a [31mred")
    # every state but the terminal ones can be canceled
    assert all(CANCELED in TRANSITIONS[s] for s in STATES if s not in (DONE, CANCELED))


def test_patch() -> None:
    p = TaskPatch.parse({"priority": 4, "check": None, "scope": ["docs/"]})
    t = Task(id="a", prompt="p", repo="/r", check=("x",), state=RUNNING)
    t2 = p.apply(t, 3.0)
    assert (t2.priority, t2.check, t2.scope, t2.state) == (4, None, ("docs/**",), RUNNING)
    c = TaskPatch.parse({"state": "canceled"}).apply(t, 3.0)
    assert c.state == CANCELED
    with pytest.raises(IllegalTransition):
        TaskPatch.parse({"state": "canceled"}).apply(Task(id="a", prompt="p", repo="/r", state=DONE), 1)
    for bad in ({}, {"state": "done"}, {"title": "x"}, {"max_attempts": 99}, [], {"scope": ["/x"]}):
        with pytest.raises(BadRequest):
            TaskPatch.parse(bad)


def test_cycles() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": ["x"]}) == ["x", "x"]
    long = {f"n{i}": [f"n{i + 1}"] for i in range(5000)}
    long["n5000"] = ["n0"]
    assert len(find_cycle(long)) == 5002  # no recursion limit
    existing = [Task(id="schema", prompt="p", repo="/r"),
                Task(id="api", prompt="p", repo="/r", depends_on=("schema",))]
    check_dependencies(Task(id="ui", prompt="p", repo="/r", depends_on=("api",)), existing)
    with pytest.raises(UnknownDependency, match="nope"):
        check_dependencies(Task(id="ui", prompt="p", repo="/r", depends_on=("nope",)), existing)
    with pytest.raises(DependencyCycle, match="schema -> ui -> api -> schema|api -> schema -> ui -> api") as e:
        # re-defining schema to depend on ui, which depends on api, which depends on schema
        check_dependencies(Task(id="schema", prompt="p", repo="/r", depends_on=("ui",)),
                           existing + [Task(id="ui", prompt="p", repo="/r", depends_on=("api",))])
    assert isinstance(e.value, BadRequest) and not isinstance(e.value, Conflict)
    assert e.value.extra["cycle"][0] == e.value.extra["cycle"][-1]


def test_task_json_roundtrip_via_row() -> None:
    import json
    t = Task(id="a", prompt="p", repo="/r", scope=("src/**",), check=("pytest",), flags={"x": 1})
    row = {"id": "a", "prompt": "p", "repo": "/r", "title": "", "base": "HEAD",
           "requires": "[]", "agent": None, "scope": json.dumps(list(t.scope)), "shared": None,
           "depends_on": "[]", "priority": 0, "check_argv": '["pytest"]', "max_attempts": 3,
           "budget": None, "state": "pending", "state_reason": "created", "state_since": 0,
           "created": 0, "session": None, "worktree": None, "owner": None, "lease_until": None,
           "generation": 0, "flags": '{"x": 1}'}
    assert Task.from_row(row) == t
    j = t.to_json()
    assert j["state"] == {"name": "pending", "reason": "created", "since": 0.0}
    assert json.loads(json.dumps(j)) == j
