"""The planner: reasons in words, priorities, limits, and properties over random fleets."""
from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hive_lab.orchestrate.planner import Limits, ProfileInfo, RunningInfo, Start, plan
from hive_lab.orchestrate.scopes import scopes_overlap
from hive_lab.orchestrate.tasks import ACTIVE, DONE, PENDING, READY, RUNNING, Task

CLAUDE = ProfileInfo("claude", frozenset({"implement", "python", "tests"}), True, 2)
CODEX = ProfileInfo("codex", frozenset({"implement", "review"}), False, None)


def t(id: str, **kw) -> Task:
    kw.setdefault("state", READY)
    return Task(id=id, prompt="p", repo=kw.pop("repo", "/r"), **kw)


def test_reasons_in_words() -> None:
    tasks = [
        t("api-auth", state=RUNNING, scope=("src/auth/**",)),
        t("login", scope=("src/auth/login.py",), created=1),
        t("review", requires=("review",), created=2),
        t("schema", state=PENDING, scope=("db/**",)),
        t("ui", state=PENDING, depends_on=("schema",)),
        t("docs", scope=("docs/**",), created=3),
        t("merge-y", scope=("x/**",), created=4),
    ]
    p = plan(tasks, [CLAUDE, CODEX], [RunningInfo("api-auth", "claude")],
             {frozenset({"merge-y", "api-auth"})}, Limits(max_agents=4), now=10)
    assert p.why["login"] == "scope overlaps running task api-auth on src/auth/**"
    assert p.why["review"] == "no installed profile has capability 'review' (codex would, but is not installed)"
    assert p.why["ui"] == "waits for task schema"
    assert p.why["merge-y"] == "branch predicted to conflict with running task api-auth"
    assert p.promote == ["schema"]
    # claude has max_sessions=2 and one running: schema or docs starts, the other waits
    assert p.start == [Start("schema", "claude")]  # priority equal, schema is older (created 0)
    assert p.why["docs"] == "profile claude at max_sessions=2"
    assert "api-auth" not in p.why


def test_fleet_limit_priority_and_same_plan_overlap() -> None:
    prof = ProfileInfo("any", frozenset(), True, None)
    tasks = [t("low", priority=1, scope=("a/**",)), t("high", priority=9, scope=("a/x.py",)),
             t("other", priority=5, scope=("b/**",)), t("third", priority=0, scope=("c/**",))]
    p = plan(tasks, [prof], [], set(), Limits(max_agents=2), now=0)
    assert [s.task_id for s in p.start] == ["high", "other"]
    assert p.why["low"] == "scope overlaps task high (starting now) on a/x.py"
    assert p.why["third"] == "fleet at max_agents=2"


def test_explicit_agent() -> None:
    tasks = [t("a", agent="codex"), t("b", agent="nope"), t("c", agent="claude", requires=("review",)),
             t("d", agent="claude")]
    p = plan(tasks, [CLAUDE, CODEX], [], set(), Limits(), now=0)
    assert p.why["a"] == "agent profile codex is not installed"
    assert p.why["b"] == "agent profile nope is not configured"
    assert p.why["c"] == "agent profile claude lacks capability 'review'"
    assert p.start == [Start("d", "claude")]


def test_dependencies_failed_and_other_repos() -> None:
    tasks = [t("s", state="failed"), t("u", depends_on=("s",)),
             t("r1", state=RUNNING, scope=("src/**",), repo="/one"),
             t("r2", scope=("src/**",), repo="/two")]
    p = plan(tasks, [CLAUDE], [], set(), Limits(), now=0)
    assert p.why["u"] == "dependency s failed; this task cannot start"
    assert p.start == [Start("r2", "claude")]  # same scope, different repository


def test_read_only_tasks_run_alongside_anything() -> None:
    tasks = [t("w", state=RUNNING, scope=("**",)), t("ro1", scope=()), t("ro2", scope=())]
    p = plan(tasks, [ProfileInfo("x")], [], set(), Limits(), now=0)
    assert [s.task_id for s in p.start] == ["ro1", "ro2"]


# ---------------------------------------------------------------- properties

SCOPES = ["src/**", "src/a/**", "src/a/x.py", "docs/**", "*.md", "**/*.py", "tests/test_a.py",
          "lib/**", "db/**"]
CAPS = ["implement", "review", "tests", "python"]


@st.composite
def worlds(draw):
    n = draw(st.integers(1, 25))
    ids = [f"t{i}" for i in range(n)]
    tasks = []
    for i, tid in enumerate(ids):
        state = draw(st.sampled_from([READY, READY, READY, PENDING, RUNNING, DONE, "waiting", "blocked"]))
        deps = tuple(draw(st.lists(st.sampled_from(ids[:i]), max_size=2, unique=True))) if i else ()
        tasks.append(Task(
            id=tid, prompt="p", repo=draw(st.sampled_from(["/r1", "/r2"])), state=state,
            scope=tuple(draw(st.lists(st.sampled_from(SCOPES), max_size=3, unique=True))),
            requires=tuple(draw(st.lists(st.sampled_from(CAPS), max_size=2, unique=True))),
            priority=draw(st.integers(0, 3)), created=draw(st.integers(0, 5)), depends_on=deps,
            agent=draw(st.sampled_from([None, None, "p0", "p1"]))))
    profiles = [ProfileInfo(f"p{k}", frozenset(draw(st.lists(st.sampled_from(CAPS), max_size=4))),
                            draw(st.booleans()), draw(st.sampled_from([None, 1, 2, 3])))
                for k in range(draw(st.integers(1, 4)))]
    running = [x for x in tasks if x.state in ACTIVE]
    sessions = [RunningInfo(x.id, draw(st.sampled_from([p.name for p in profiles]))) for x in running]
    sessions += [RunningInfo(None, profiles[0].name) for _ in range(draw(st.integers(0, 2)))]
    pairs = draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=6))
    conflicts = {frozenset(p) for p in pairs if p[0] != p[1]}
    limits = Limits(draw(st.sampled_from([None, 1, 3, 6])))
    return tasks, profiles, sessions, conflicts, limits


@settings(max_examples=200, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_plan_never_breaks_a_rule(world, rnd: random.Random) -> None:
    tasks, profiles, sessions, conflicts, limits = world
    p = plan(tasks, profiles, sessions, conflicts, limits, now=0)
    by_id = {x.id: x for x in tasks}
    prof = {x.name: x for x in profiles}
    started = [by_id[s.task_id] for s in p.start]
    holding = [x for x in tasks if x.state in ACTIVE] + started
    # no two scope-holders in one repo overlap, unless both were already running
    for i, a in enumerate(holding):
        for b in holding[i + 1:]:
            if a in started or b in started:
                assert not (a.repo == b.repo and scopes_overlap(a.scope, b.scope)), (a.id, b.id)
                assert frozenset({a.id, b.id}) not in conflicts
    if limits.max_agents is not None:
        assert len(sessions) + len(p.start) <= max(limits.max_agents, len(sessions))
        if len(sessions) >= limits.max_agents:
            assert not p.start
    for name, pr in prof.items():
        n = sum(1 for s in sessions if s.profile == name)
        k = sum(1 for s in p.start if s.profile == name)
        if pr.max_sessions is not None and k:
            assert n + k <= pr.max_sessions
    for s in p.start:
        x, pr = by_id[s.task_id], prof[s.profile]
        assert x.state in (READY, PENDING) and pr.installed and set(x.requires) <= pr.capabilities
        assert x.agent in (None, s.profile)
        assert all(by_id[d].state == DONE for d in x.depends_on)
    assert len({s.task_id for s in p.start}) == len(p.start)
    # every ready/pending task is started or has a why
    started_ids = {s.task_id for s in p.start}
    for x in tasks:
        if x.state in (READY, PENDING):
            assert (x.id in started_ids) != (x.id in p.why), x.id
    # the same world in another order gives the same plan
    shuffled = list(tasks)
    rnd.shuffle(shuffled)
    profs2 = list(profiles)
    rnd.shuffle(profs2)
    q = plan(shuffled, profs2, list(reversed(sessions)), set(conflicts), limits, now=0)
    assert (q.start, q.why, q.promote) == (p.start, p.why, p.promote)
