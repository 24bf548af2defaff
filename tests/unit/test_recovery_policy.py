"""The recovery policies on their own (pure): backoff, fleet cap, parking, stagger, loops."""
from __future__ import annotations

import pytest

from hive_lab.orchestrate import recovery as r
from hive_lab.orchestrate.planner import Limits, ProfileInfo, plan
from hive_lab.orchestrate.tasks import READY, Attempt, Task

CFG = r.RecoveryConfig(backoff_base=10, backoff_cap=300, fleet_restarts_per_hour=3,
                       resume_stagger=5, probe_base=60, probe_cap=900)


def test_backoff_doubles_and_is_capped() -> None:
    assert [r.backoff(n, CFG) for n in (1, 2, 3, 4, 5, 6, 7)] == [10, 20, 40, 80, 160, 300, 300]


def test_decide_retry_backs_off_then_fails_and_auth_fails_at_once() -> None:
    d = r.decide_retry(r.CRASH, 1, 3, "the agent exited with status 3", 1000.0, CFG)
    assert not d.fail and d.not_before == 1010.0
    assert "backoff 10 s, attempt 2 of 3" in d.reason and "restarts at" in d.reason
    d2 = r.decide_retry(r.CRASH, 2, 3, "x", 1000.0, CFG)
    assert d2.not_before == 1020.0
    done = r.decide_retry(r.CRASH, 3, 3, "the agent exited with status 3", 1000.0, CFG)
    assert done.fail and "3 of 3 attempt(s) used" in done.reason
    auth = r.decide_retry(r.AUTH, 1, 3, "401", 1000.0, CFG)
    assert auth.fail and "not retried" in auth.reason


def test_fleet_cap_counts_the_last_hour_only() -> None:
    now = 10_000.0
    assert r.restarts_left([], now, 3) == (3, None)
    left, frees = r.restarts_left([now - 4000, now - 100, now - 50, now - 10], now, 3)
    assert left == 0 and frees == now - 100 + 3600


def _task(tid: str, **kw) -> Task:
    base = dict(id=tid, prompt="p", repo="/r", state=READY, created=1.0)
    base.update(kw)
    return Task(**base)


def test_planner_honours_not_before_parking_and_the_restart_cap() -> None:
    now = 500.0
    later = _task("later", flags={"not_before": now + 10, "not_before_why": "restarts at X"})
    due = _task("due", flags={"not_before": now - 1})
    profiles = [ProfileInfo("p", frozenset())]
    out = plan([later, due], profiles, [], [], Limits(), now)
    assert [s.task_id for s in out.start] == ["due"] and out.why["later"] == "restarts at X"
    parked = [ProfileInfo("p", frozenset(), parked="provider claude parked until 12:40 (rate limit)")]
    out = plan([due], parked, [], [], Limits(), now)
    assert not out.start and out.why["due"].startswith("provider claude parked until")
    att = [Attempt("t", 1, "s", "p", 1.0, 2.0, "died", "")]
    restarts = [_task(f"r{i}", attempts=list(att)) for i in range(4)] + [_task("fresh")]
    out = plan(restarts, profiles, [], [], Limits(None, 2, "cap says no"), now)
    started = {s.task_id for s in out.start}
    assert "fresh" in started and len(started - {"fresh"}) == 2
    assert sorted(t for t, w in out.why.items() if w == "cap says no") == ["r2", "r3"]


def test_parking_known_and_unknown_reset_and_probe_backoff() -> None:
    p = r.park(None, "claude", r.RATE_LIMIT, 1100.0, 1000.0, CFG)
    assert p.until == 1100.0 and p.since == 1000.0 and "parked until" in p.why()
    longer = r.park(p, "claude", r.RATE_LIMIT, 1050.0, 1010.0, CFG)
    assert longer.until == 1100.0 and longer.since == 1000.0  # never shortened
    unknown = r.park(None, "claude", r.RATE_LIMIT, None, 1000.0, CFG)
    assert unknown.until == 1060.0
    again = r.after_probe_failed(unknown, 1060.0, CFG)
    assert again.probes == 1 and again.until == 1060.0 + 120.0
    assert r.after_probe_failed(r.Park("c", r.RATE_LIMIT, 0, 0, 10), 0, CFG).until == 900.0


def test_resume_schedule_staggers() -> None:
    assert r.resume_schedule(["a", "b", "c"], 100.0, 90.0, 5.0) == [
        ("a", 100.0), ("b", 105.0), ("c", 110.0)]
    assert r.resume_schedule(["b"], 100.0, 120.0, 5.0, last_resume=118.0)[0][1] == 123.0


def test_classification_and_providers() -> None:
    assert r.classify_stop_failure("rate_limit") == r.RATE_LIMIT
    assert r.classify_stop_failure("authentication_failed") == r.AUTH
    assert r.classify_stop_failure(["rate_limit"]) is None
    assert r.classify_status(429) == r.RATE_LIMIT and r.classify_status(529) == r.OVERLOADED
    assert r.classify_status(401) == r.AUTH and r.classify_status(True) is None
    assert r.provider_of("claude", "claude", "claude") == "claude"
    assert r.provider_of("mine", None, "/usr/bin/aider") == "aider"
    assert r.provider_of("shell", None, None) is None


def test_retry_after_forms() -> None:
    assert r.parse_retry_after("30", 100.0) == 130.0
    assert r.parse_retry_after(5, 100.0) == 105.0
    assert r.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0.0) == 1445412480.0
    assert r.parse_retry_after("2015-10-21T07:28:00Z", 0.0) == 1445412480.0
    assert r.parse_retry_after("soon", 0.0) is None and r.parse_retry_after(-1, 0.0) is None


def test_loop_watch_flags_once_per_run_and_resets_on_a_different_call() -> None:
    w = r.LoopWatch()
    hits = [w.see("Bash", {"command": "ls"}, 3) for _ in range(5)]
    assert hits == [False, False, True, False, False]
    assert not w.see("Bash", {"command": "pwd"}, 3)
    assert [w.see("Bash", {"command": "ls"}, 3) for _ in range(3)] == [False, False, True]
    # key order in the input does not make two calls different
    assert r.call_key("E", {"a": 1, "b": 2}) == r.call_key("E", {"b": 2, "a": 1})


def test_stalled_only_when_working_and_silent() -> None:
    assert r.stalled("working", 0.0, 600.0, 10)
    assert not r.stalled("working", 1.0, 600.0, 10)
    assert not r.stalled("idle", 0.0, 6000.0, 10)
    assert not r.stalled("working", 0.0, 6000.0, 0)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        r.RecoveryConfig(loop_repeats=1).validate()
    with pytest.raises(ValueError):
        r.RecoveryConfig(backoff_base=-1).validate()


def test_a_refusal_soon_after_a_resume_is_that_resumes_failed_probe_even_once_unparked() -> None:
    """CI race: every parked session was told to continue, so the parking was lifted before the
    probe's refusal arrived; the refusal must still count as a failed probe (probes + 1)."""
    from hive_lab.orchestrate.recovering import PROBE_MEMORY, _probed_park

    flags = {"resumed_at": 100.0, "resumed_from": {"provider": "claude", "kind": "rate_limit",
                                                   "since": 90.0, "until": 94.0, "probes": 0}}
    park = _probed_park(flags, "claude", 105.0)
    assert park is not None and (park.provider, park.since, park.probes) == ("claude", 90.0, 0)
    assert _probed_park(flags, "codex", 105.0) is None  # another provider's refusal
    assert _probed_park(flags, "claude", 100.0 + PROBE_MEMORY + 1) is None  # long after: new
    assert _probed_park({}, "claude", 105.0) is None
