"""Recovery from API errors with the real Claude Code CLI (2.1.197), through the REST API only.

The model is :class:`MeteredAPI` (``SCENARIO:burn N``: N Bash calls, one per response, a plan
that survives a refused request); :meth:`FakeAnthropic.outage` makes every ``/v1/messages``
request answer 429, 529 or 401 until :meth:`recover`. What the CLI does with each is in
tests/claude_support/NOTES.md ("API errors"); these tests check what Hive Lab makes of it:

- 429 the CLI does not retry: the session is ``waiting(rate_limit)``, the provider is parked
  for the fleet (a new claude task waits with that why), and after the reset the parked
  sessions are told to continue one by one, each once -- across a SIGKILL of the server too;
- 429 with ``retry-after`` and ``x-should-retry: true``, and any 529: the CLI retries by
  itself with no hook, its screen counting down. The session is ``waiting(rate_limit)`` with a
  ``resume_at`` meanwhile, new claude tasks wait for the parking, and nothing is typed into it;
- 401: one request, the task fails at once with an ``AuthFailed`` event, never a retry loop.
"""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from support import HiveServer, wait_for

try:  # with or without tests/__init__.py
    from tests.claude_support import cli as _cli
    from tests.claude_support.budget_api import MeteredAPI, burn_progress
except ImportError:  # pragma: no cover - tests/ itself on sys.path
    from claude_support import cli as _cli  # type: ignore[no-redef]
    from claude_support.budget_api import MeteredAPI, burn_progress  # type: ignore[no-redef]

from test_budgets_claude import (add, calls_of, claude_env, events, explain, quiet,
                                 task, until_state)

pytestmark = pytest.mark.e2e

PROBE = 4.0  # rate_limit_probe: no reset time known -> the first probe after this
STAGGER = 3.0


@pytest.fixture(scope="module")
def claude() -> Path:
    path = _cli.find_or_install_claude()
    if path is None:
        pytest.skip(f"real Claude Code CLI unavailable: {_cli.skip_reason()}")
    return path


@pytest.fixture
def api() -> Any:
    with MeteredAPI(seed=12) as fake:
        yield fake


@pytest.fixture
def server(claude: Path, api: MeteredAPI, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    overrides = getattr(request.function, "hive_config", {})
    srv = HiveServer(tmp_path / "hive", extra_path=[str(claude.parent)],
                     drop_env_prefixes=("ANTHROPIC_", "CLAUDE", "OTEL_"),
                     extra_config={"profiles": {"claude": {"env": claude_env(tmp_path, api)}},
                                   "task_interval": 0.3, "usage_interval": 0.5,
                                   "loop_repeats": 10000, "rate_limit_probe": PROBE,
                                   "resume_stagger": STAGGER, "restart_backoff_base": 1.0,
                                   **overrides})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill_tmux()


@pytest.fixture
def repo(server: HiveServer) -> Path:
    path = server.root / "repo"
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.py").write_text("print('app')\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(["git", "-C", str(path), "-c", "user.name=T", "-c", "user.email=t@e", *args],
                       check=True, capture_output=True)
    return path


def all_events(server: HiveServer, name: str) -> list[dict[str, Any]]:
    return server.get(f"events?event={name}&limit=10000")["events"]


def session_state(server: HiveServer, name: str) -> dict[str, Any]:
    return server.get(f"sessions/{name}")["state"]


def told(server: HiveServer, task_id: str) -> list[float]:
    """When the task was told to continue (its TaskChanged events)."""
    return [e["payload"]["task"]["state"]["since"] for e in events(server, task_id, "TaskChanged")
            if e["payload"]["reason"].startswith("told to continue")]


def burn(task_id: str, n: int = 2) -> dict[str, Any]:
    return {"id": task_id, "agent": "claude", "scope": [f"src/{task_id}/**"], "check": ["true"],
            "prompt": f"Run the burn steps.\nSCENARIO:burn {n}"}


def refused(api: MeteredAPI, t: dict[str, Any]) -> list[Any]:
    return [c for c in calls_of(api, t) if c.status != 200]


def park_and_resume(server: HiveServer, api: MeteredAPI, repo: Path, restart: bool) -> None:
    api.outage(429)  # x-should-retry: false, no retry-after: the CLI gives up at once
    for tid in ("rl1", "rl2"):
        add(server, repo=str(repo), **burn(tid))
    for tid in ("rl1", "rl2"):
        waiting = until_state(server, tid, "waiting")
        assert "provider claude parked until" in waiting["why"] or \
            "provider claude parked until" in waiting["state"]["reason"], waiting
        state = session_state(server, tid)
        assert (state["name"], state["reason"]) == ("waiting", "rate_limit"), state
        assert "429" in (state.get("detail") or ""), state
    assert len(all_events(server, "ProviderParked")) == 1  # one parking for the fleet
    # A new claude task does not start while the provider is parked, and says why.
    add(server, repo=str(repo), **burn("rl3", 1))
    why = wait_for(lambda: (w := task(server, "rl3").get("why") or "").startswith(
        "provider claude parked until") and w, timeout=30, interval=0.2, what="the parked why")
    assert "rate limit" in why
    assert task(server, "rl3")["state"]["name"] == "ready"
    # The CLI asked once per session and then waited: no retry loop while parked.
    t1, t2 = task(server, "rl1"), task(server, "rl2")
    assert [len(refused(api, t)) for t in (t1, t2)] == [1, 1]
    if restart:
        killed = time.monotonic()
        server.stop(signal.SIGKILL)  # mid-parking
        server.start()
        assert task(server, "rl3")["state"]["name"] == "ready"
        after = {t: task(server, t)["state"] for t in ("rl1", "rl2")}
        print("after the restart:", time.monotonic() - killed, after)
        assert all(s["name"] == "waiting" for s in after.values()), after
        assert server.get("tasks/rl3").get("why", "").startswith("provider claude parked")
    api.recover()
    for tid in ("rl1", "rl2", "rl3"):
        done = until_state(server, tid, "done", "failed")
        assert done["state"]["name"] == "done", explain(server, tid)
    told_at = {tid: told(server, tid) for tid in ("rl1", "rl2")}
    assert [len(v) for v in told_at.values()] == [1, 1], told_at  # none resumed twice
    first, second = sorted(told_at["rl1"] + told_at["rl2"])
    assert second - first >= STAGGER  # staggered, not all at once
    for t in (task(server, "rl1"), task(server, "rl2")):
        goal, ok, _ = burn_progress(calls_of(api, t)[-1].body["messages"])
        assert (goal, ok) == (2, 2)
        assert len(refused(api, t)) == 1
    assert len(all_events(server, "ProviderParked")) == 1
    assert len(all_events(server, "ProviderResumed")) == 1
    # rl3 started only after the provider was back
    resumed = all_events(server, "ProviderResumed")[0]
    started = [e for e in events(server, "rl3", "TaskChanged")
               if e["payload"]["task"]["state"]["name"] == "running"]
    assert started and started[0]["id"] > resumed["id"]


@pytest.mark.timeout(400)
def test_a_429_parks_claude_and_resumes_the_sessions_staggered_once(
        server: HiveServer, api: MeteredAPI, repo: Path) -> None:
    park_and_resume(server, api, repo, restart=False)


@pytest.mark.timeout(400)
def test_a_server_killed_while_claude_is_parked_still_parks_and_resumes_once(
        server: HiveServer, api: MeteredAPI, repo: Path) -> None:
    park_and_resume(server, api, repo, restart=True)


# A restart takes a few seconds under load: the first probe must not fall due meanwhile (it
# would be refused again and park longer -- right, but not what this test is about).
test_a_server_killed_while_claude_is_parked_still_parks_and_resumes_once.hive_config = {  # type: ignore[attr-defined]
    "rate_limit_probe": 12.0}


@pytest.mark.timeout(400)
def test_a_server_killed_between_two_staggered_resumes_resumes_neither_twice(
        server: HiveServer, api: MeteredAPI, repo: Path) -> None:
    api.outage(429)
    for tid in ("sk1", "sk2"):
        add(server, repo=str(repo), **burn(tid))
    for tid in ("sk1", "sk2"):
        until_state(server, tid, "waiting")
    api.recover()
    # The first is told to continue at the probe; the second only a stagger (12 s) later.
    first = wait_for(lambda: [t for t in ("sk1", "sk2") if told(server, t)], timeout=60,
                     interval=0.2, what="the first resume")
    assert len(first) == 1
    server.stop(signal.SIGKILL)
    server.start()
    for tid in ("sk1", "sk2"):
        done = until_state(server, tid, "done", "failed")
        assert done["state"]["name"] == "done", explain(server, tid)
    told_at = {tid: told(server, tid) for tid in ("sk1", "sk2")}
    assert [len(v) for v in told_at.values()] == [1, 1], told_at
    assert abs(told_at["sk1"][0] - told_at["sk2"][0]) >= 12.0
    for tid in ("sk1", "sk2"):
        t = task(server, tid)
        assert len(refused(api, t)) == 1
        # the conversation was told to continue once: one CONTINUE prompt in its last request
        sent = [b.get("text", "") for m in calls_of(api, t)[-1].body["messages"]
                if m.get("role") == "user" and isinstance(m.get("content"), list)
                for b in m["content"] if isinstance(b, dict) and b.get("type") == "text"]
        assert sum("The API limit that stopped you has passed" in x for x in sent) == 1, sent
    assert len(all_events(server, "ProviderResumed")) == 1


test_a_server_killed_between_two_staggered_resumes_resumes_neither_twice.hive_config = {  # type: ignore[attr-defined]
    "resume_stagger": 12.0}


@pytest.mark.timeout(300)
def test_a_429_whose_reset_outlasts_the_probe_is_probed_again_with_backoff(
        server: HiveServer, api: MeteredAPI, repo: Path) -> None:
    # retry-after 5 s with x-should-retry: false: the CLI does not retry, and its StopFailure
    # carries no reset time (NOTES.md), so Hive Lab probes after rate_limit_probe (4 s). The
    # limit lasts longer (PROBE + 3 s): the first probe is refused, the next waits twice as long.
    api.outage(429, lasting=PROBE + 3.0, retry_after=5)
    add(server, repo=str(repo), **burn("rx", 1))
    until_state(server, "rx", "waiting")
    state = session_state(server, "rx")
    assert (state["name"], state["reason"], state.get("resume_at")) == ("waiting", "rate_limit", None)
    first = all_events(server, "ProviderParked")[0]["payload"]["park"]
    assert abs(first["until"] - first["since"] - PROBE) < 0.01 and first["probes"] == 0
    done = until_state(server, "rx", "done", "failed")
    assert done["state"]["name"] == "done", explain(server, "rx")
    parks = [e["payload"]["park"] for e in all_events(server, "ProviderParked")]
    assert [p["probes"] for p in parks] == [0, 1], parks
    assert abs(parks[1]["until"] - parks[1]["since"] - 2 * PROBE) < 0.5, parks
    assert len(told(server, "rx")) == 2  # once per parking
    assert len(refused(api, done)) == 2  # the first request and the failed probe
    # Whether the first parking is lifted before the probe's refusal arrives is a race (a tick
    # unparks once every parked session was told; CI hit both orders). Either way the provider
    # is announced resumed after its last parking, and never twice for one parking.
    marks = [e["event"] for e in sorted(all_events(server, "ProviderParked")
                                        + all_events(server, "ProviderResumed"), key=lambda e: e["id"])]
    assert marks[-1] == "ProviderResumed" and "ProviderResumed,ProviderResumed" not in ",".join(marks), marks
    assert marks.count("ProviderParked") == 2, marks


def self_retries(server: HiveServer, tid: str) -> list[dict[str, Any]]:
    """The session's states read off the CLI's own retry countdown (its StateChanged records)."""
    return [e["payload"]["record"] for e in events(server, tid, "StateChanged")
            if e["payload"]["record"]["source"] == "screen:retrying"]


def never_told(server: HiveServer, api: MeteredAPI, t: dict[str, Any]) -> None:
    """No "continue" was typed: no such task change, and no such text reached the API."""
    assert not told(server, t["id"])
    texts = [b.get("text", "") for c in calls_of(api, t) for m in c.body["messages"]
             if m.get("role") == "user" and isinstance(m.get("content"), list)
             for b in m["content"] if isinstance(b, dict) and b.get("type") == "text"]
    assert texts and not any("The API limit that stopped you" in x for x in texts), texts
    goal, ok, _ = burn_progress(calls_of(api, t)[-1].body["messages"])
    assert ok == goal  # the one conversation went on to the end by itself


def after_retrying(server: HiveServer, tid: str) -> None:
    """Each countdown was a waiting(rate_limit) with a resume_at, and working/idle came after."""
    retries = self_retries(server, tid)
    assert retries, explain(server, tid) + "\n" + str(server.get(f"transitions?session={tid}"))
    for r in retries:
        assert (r["name"], r["reason"]) == ("waiting", "rate_limit"), r
        assert r["resume_at"] is not None and 0 <= r["resume_at"] - r["since"] <= 6, r
        assert "retries by itself" in r["detail"] and "attempt" in r["detail"], r
    names = [e["payload"]["record"]["name"] for e in events(server, tid, "StateChanged")]
    last_wait = max(i for i, n in enumerate(names) if n == "waiting")
    assert {"working", "idle"} & set(names[last_wait + 1:]), names
    changes = [e["payload"]["reason"] for e in events(server, tid, "TaskChanged")]
    assert any("the CLI retries by itself" in r and "provider claude parked until" in r
               for r in changes), changes


@pytest.mark.timeout(400)
def test_the_clis_own_retries_wait_on_the_rate_limit_park_new_starts_and_are_never_typed_into(
        server: HiveServer, api: MeteredAPI, repo: Path) -> None:
    """429 with retry-after and x-should-retry, then a 529: Claude Code retries by itself and
    fires no hook meanwhile (NOTES.md); only its screen says so ("Retrying in 4s · attempt
    1/10"). The session waits (rate_limit) with a resume_at, new claude tasks wait for the
    parking, and nothing is ever typed into the retrying session."""
    # Main-loop requests only: the CLI's start-up side calls would use the outage up unseen.
    api.outage(429, count=2, retry_after=4, should_retry=True, side_calls=False)
    add(server, repo=str(repo), **burn("ra", 2))
    def retrying() -> dict[str, Any] | None:
        status, body = server.request("GET", "sessions/ra")  # 404 until the task starts it
        state = body.get("state") or {} if status == 200 else {}
        return state if state.get("name") == "waiting" else None
    try:
        seen = wait_for(retrying, timeout=120, interval=0.1, what="ra waiting while its CLI retries")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{[c.status for c in api.calls]}\n{explain(server, 'ra')}") from None
    assert (seen["reason"], seen["source"]) == ("rate_limit", "screen:retrying"), seen
    assert "resume_at" in seen and "retries by itself" in seen["detail"], seen
    # Parked for new starts while it retries: a new claude task waits, and says why.
    add(server, repo=str(repo), **burn("rb", 1))
    why = wait_for(lambda: (w := task(server, "rb").get("why") or "").startswith(
        "provider claude parked until") and w, timeout=30, interval=0.1, what="rb's parked why")
    assert "rate limit" in why
    for tid in ("ra", "rb"):
        done = until_state(server, tid, "done", "failed")
        assert done["state"]["name"] == "done", explain(server, tid)
    ra = task(server, "ra")
    assert len(refused(api, ra)) >= 1  # refused, and retried by the CLI itself
    after_retrying(server, "ra")
    never_told(server, api, ra)
    parked = all_events(server, "ProviderParked")
    assert len(parked) == 1 and parked[0]["payload"]["self_retry"], parked
    resumed = all_events(server, "ProviderResumed")
    assert len(resumed) == 1 and resumed[0]["payload"]["resumed"] == [], resumed
    started = [e for e in events(server, "rb", "TaskChanged")
               if e["payload"]["task"]["state"]["name"] == "running"]
    assert started and started[0]["id"] > resumed[0]["id"]  # rb only once claude was back

    # 529, x-should-retry false: retried by the CLI anyway (backoff ~0.6, 1.2, 2.4 s: the last
    # one is seen for sure).
    api.outage(529, count=3, side_calls=False)
    add(server, repo=str(repo), **burn("ov", 2))
    done = until_state(server, "ov", "done", "failed")
    assert done["state"]["name"] == "done", explain(server, "ov")
    assert len(refused(api, done)) >= 1
    after_retrying(server, "ov")  # the screen cannot tell a 529 from a 429: rate_limit
    never_told(server, api, done)
    assert not any(t["reason"] == "overloaded" for t in
                   server.get("transitions?session=ov")["transitions"])
    assert len(all_events(server, "ProviderParked")) >= 2

    def marks() -> list[str]:
        return [e["event"] for e in sorted(all_events(server, "ProviderParked")
                                           + all_events(server, "ProviderResumed"),
                                           key=lambda e: e["id"])]
    # Not left parked once it got through: lifted a stagger after the last retry was seen.
    wait_for(lambda: marks()[-1] == "ProviderResumed", timeout=30, interval=0.2,
             what=f"claude resumed after the 529s: {marks()}")


@pytest.mark.timeout(300)
def test_a_401_fails_the_task_after_one_request_with_auth_failed(
        server: HiveServer, api: MeteredAPI, repo: Path) -> None:
    api.outage(401)
    add(server, repo=str(repo), max_attempts=3, **burn("key", 2))
    failed = until_state(server, "key", "failed", "done")
    assert failed["state"]["name"] == "failed", explain(server, "key")
    assert len(failed["attempts"]) == 1 and failed["attempts"][0]["outcome"] == "auth"
    assert "not retried" in failed["state"]["reason"]
    auth = all_events(server, "AuthFailed")
    assert len(auth) == 1 and auth[0]["payload"]["provider"] == "claude", auth
    calls = quiet(api, failed)
    assert [c.status for c in calls] == [401]  # one request, never a retry loop
    assert not all_events(server, "ProviderParked")
