"""Tasks from the kernel side: HiveClient, the `hive-lab task` CLI, frames, and an agent asking
for more scope from inside its session (no token) while a person approves it with the CLI.

A real Jupyter server, real tmux, real git, the real hook client; the only stand-in is the
scripted agent (tests/support/scripted_agent.py), for the model.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from support import BIN, git, HiveServer, make_repo, ROOT, wait_for
from hive_lab import cli, frames, taskcli
from hive_lab.client import HiveAPIError, HiveClient

AGENT = str(Path(__file__).resolve().parent / "support" / "scripted_agent.py")
# The agent's shell finds `hive-lab` on the PATH the orchestrator gives it (the server's bin);
# PYTHONPATH makes that script run this tree's code.
AGENT_ENV = {"GIT_AUTHOR_NAME": "Agent", "GIT_AUTHOR_EMAIL": "agent@example.com",
             "GIT_COMMITTER_NAME": "Agent", "GIT_COMMITTER_EMAIL": "agent@example.com",
             "PYTHONPATH": str(ROOT)}
PROFILES = {
    "scripted": {"command": [sys.executable, "-u", AGENT], "capabilities": ["implement"],
                 "env": AGENT_ENV},
    "guarded": {"command": [sys.executable, "-u", AGENT, "--hooked"], "hooks": "claude",
                "capabilities": ["hooked"], "env": AGENT_ENV},
}
T, S, C, I, F, O = ("datetime64[ns, UTC]", "string", "category", "Int64", "Float64", "object")
# Written out by hand: the documented contract of the two frames.
EXPECTED = {
    "tasks": {"id": S, "title": S, "state": C, "reason": S, "why": S, "since": T, "created": T,
              "priority": I, "agent": C, "requires": O, "scope": O, "shared": O,
              "depends_on": O, "check": S, "max_attempts": I, "attempts": I, "round": I,
              "violations": I, "guard_degraded": I, "cost": F, "session": S, "branch": S,
              "base": S, "worktree": S, "repo": S, "prompt": S},
    "attempts": {"task": S, "n": I, "id": I, "session": S, "profile": C, "started": T,
                 "ended": T, "duration": "timedelta64[ns]", "outcome": C, "reason": S,
                 "rounds": I, "cost": F, "check_tail": S},
}
TASK_STATES = ["pending", "ready", "running", "waiting", "checking", "blocked", "paused", "done",
               "failed", "canceled"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = HiveServer(tmp_path_factory.mktemp("tkernel"),
                     extra_config={"profiles": PROFILES, "task_interval": 0.3}).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture
def client(server: HiveServer) -> HiveClient:
    return HiveClient(server.url, server.token)


@pytest.fixture
def repo(server: HiveServer, tmp_path: Path) -> Path:
    path = server.root / f"repo-{tmp_path.name[-10:]}"
    return make_repo(path, {"src/app.py": "print('app')\n", "docs/index.md": "# docs\n"})


def run_cli(server: HiveServer, capsys: pytest.CaptureFixture[str], *argv: str,
            stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None
            ) -> tuple[int, str, str]:
    """``hive-lab --url --token ARGV`` in this process; (exit code, stdout, stderr)."""
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = cli.main(["--url", server.url, "--token", server.token, *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- the Python API ------------------------------------------------------------------------------
def test_client_task_calls_and_their_errors(client: HiveClient, repo: Path) -> None:
    # agent "nobody" is not configured: the tasks stay ready, nothing starts
    a = client.add_task(id="k-a", prompt="first", repo=str(repo), agent="nobody",
                        scope=["src/**"], priority=2)
    b = client.add_task({"id": "k-b", "prompt": "second", "repo": str(repo), "agent": "nobody",
                         "depends_on": ["k-a"]})
    assert (a["state"]["name"], b["state"]["name"]) == ("ready", "pending")
    assert b["why"] == "waits for task k-a"
    assert client.task("k-a")["scope"] == ["src/**"]
    assert [t["id"] for t in client.tasks(state="pending")] == ["k-b"]
    assert {"k-a", "k-b"} <= {t["id"] for t in client.tasks(repo=str(repo))}
    why = wait_for(lambda: "not configured" in (w := client.task("k-a").get("why") or "") and w,
                   what="the planner's why")
    assert why == "agent profile nobody is not configured"
    assert client.patch_task("k-a", priority=7, check=["true"])["priority"] == 7
    assert client.task("k-a")["check"] == ["true"]

    with pytest.raises(HiveAPIError) as bad:
        client.add_task(id="k-c", prompt="x", repo=str(repo), check="make test")
    assert bad.value.status == 400 and "check" in bad.value.detail
    with pytest.raises(HiveAPIError) as bad:
        client.retry_task("k-a")
    assert bad.value.status == 409 and "only a failed task" in bad.value.detail
    with pytest.raises(HiveAPIError) as bad:
        client.approve_scope(987654)
    assert bad.value.status == 404 and "987654" in bad.value.detail
    with pytest.raises(HiveAPIError) as bad:
        client.accept_violations("k-a", ["src/app.py"])
    assert bad.value.status == 400 and "not flagged" in bad.value.detail
    with pytest.raises(HiveAPIError) as bad:
        client.task("k-c")
    assert bad.value.status == 404  # the refused task was not stored
    assert client.scope_requests(task="k-a") == []

    canceled = client.cancel_task("k-a")
    assert canceled["state"]["name"] == "canceled"
    assert client.delete_task("k-b") == {"id": "k-b", "deleted": True}
    assert client.delete_task("k-a")["deleted"] is True
    assert not {"k-a", "k-b"} & {t["id"] for t in client.tasks()}


# -- the CLI ---------------------------------------------------------------------------------
def test_cli_add_ls_show_cancel_delete(server: HiveServer, client: HiveClient, repo: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "src")  # --repo defaults to the cwd; the server finds the root
    code, out, err = run_cli(
        server, capsys, "task", "add", "--id", "c-one", "--prompt", "-", "--scope", "src/**",
        "--scope", "docs/*.md", "--requires", "review,docs", "--agent", "nobody",
        "--check", "sh -c 'test -f \"src/a b.py\" && exit 0'", "--priority", "3",
        "--max-attempts", "2", "--json", stdin="Do the thing\nin two lines\n",
        monkeypatch=monkeypatch)
    assert code == 0, err
    task = json.loads(out)
    assert task["prompt"] == "Do the thing\nin two lines\n"
    assert task["repo"] == str(repo.resolve())
    assert task["scope"] == ["src/**", "docs/*.md"] and task["requires"] == ["docs", "review"]
    assert task["check"] == ["sh", "-c", "test -f \"src/a b.py\" && exit 0"]
    assert (task["priority"], task["max_attempts"], task["agent"]) == (3, 2, "nobody")

    prompt_file = repo.parent / f"{repo.name}-prompt.txt"
    prompt_file.write_text("From a file\n")
    code, out, err = run_cli(server, capsys, "task", "add", "--id", "c-two", "--prompt-file",
                             str(prompt_file), "--repo", str(repo), "--depends-on", "c-one",
                             "--agent", "nobody")
    assert code == 0, err
    assert "added task c-two: pending (waits for task c-one)" in out
    assert client.task("c-two")["prompt"] == "From a file\n"

    wait_for(lambda: "not configured" in (client.task("c-one").get("why") or ""),
             what="c-one's why")
    code, out, _ = run_cli(server, capsys, "task", "ls", "--repo", str(repo))
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STATE", "SINCE", "PRI", "AGENT", "TRIES", "WHY", "/",
                              "REASON"]
    by_id = {r.split()[0]: r for r in rows}
    assert by_id["c-one"].split()[1] == "ready" and "not configured" in by_id["c-one"]
    assert by_id["c-two"].split()[1] == "pending" and "waits for task c-one" in by_id["c-two"]
    code, out, _ = run_cli(server, capsys, "task", "ls", "--state", "pending", "--json")
    assert [t["id"] for t in json.loads(out)] == ["c-two"]

    code, out, _ = run_cli(server, capsys, "task", "show", "c-one")
    assert code == 0
    assert "why       agent profile nobody is not configured" in out
    assert "scope     src/**, docs/*.md" in out
    assert "check     sh -c 'test -f \"src/a b.py\" && exit 0'" in out
    assert "Do the thing" in out

    code, out, _ = run_cli(server, capsys, "task", "requests", "--task", "c-one")
    assert out.strip() == "no scope requests in state pending"
    code, out, _ = run_cli(server, capsys, "task", "cancel", "c-one")
    assert code == 0 and out.startswith("task c-one canceled: now canceled")
    code, out, err = run_cli(server, capsys, "task", "delete", "c-one")
    assert code == 1 and err.strip() == "hive-lab: conflict: tasks c-two depend on c-one"
    code, out, _ = run_cli(server, capsys, "task", "delete", "c-two")
    assert out.strip() == "task c-two deleted"
    code, out, _ = run_cli(server, capsys, "task", "delete", "c-one")
    assert out.strip() == "task c-one deleted"
    assert client.tasks(repo=str(repo)) == []


@pytest.mark.parametrize("argv, needle", [
    (["--id", "bad1", "--prompt", "x", "--check", "sh -c 'unclosed"], "--check"),
    (["--id", "bad1"], "--prompt"),
    (["--id", "bad1", "--prompt", "x", "--prompt-file", "/nonexistent"], "--prompt"),
    (["--id", "bad1", "--prompt-file", "/nonexistent/prompt.txt"], "prompt-file"),
    (["--id", "bad;1", "--prompt", "x"], "task id"),
    (["--id", "bad1", "--prompt", "x", "--scope", "../outside/**"], "scope"),
    (["--id", "bad1", "--prompt", "x", "--depends-on", "nope"], "nope"),
])
def test_cli_bad_task_input_says_why_and_stores_nothing(server: HiveServer, client: HiveClient,
                                                        repo: Path, argv: list[str], needle: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    code, out, err = run_cli(server, capsys, "task", "add", "--repo", str(repo), *argv)
    assert code in (1, 2) and needle in err and "Traceback" not in err, (code, out, err)
    assert "bad1" not in {t["id"] for t in client.tasks()}


def test_cli_help_says_how_check_is_split(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["task", "add", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "shlex" in text and "WITHOUT a shell" in text and "--max-attempts" in text
    with pytest.raises(SystemExit):
        cli.main(["task", "--help"])
    text = capsys.readouterr().out
    for verb in ("add", "ls", "show", "cancel", "retry", "delete", "requests", "approve",
                 "refuse", "accept", "request-scope"):
        assert f"    {verb}" in text, verb


def test_request_scope_outside_a_session_fails_clearly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_LAB_")}
    proc = subprocess.run([str(BIN / "hive-lab"), "task", "request-scope", "t1", "docs/**",
                           "--why", "need it"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not a Hive Lab agent session" in proc.stderr and "Traceback" not in proc.stderr
    inside = {**env, "HIVE_LAB_SESSION": "other", "HIVE_LAB_DIR": str(tmp_path),
              "HIVE_LAB_AGENT": "scripted"}
    with pytest.raises(taskcli.ScopeRequestError, match="works on task 'other'"):
        taskcli.send_scope_request("t1", "docs/**", "need it", env=inside)
    with pytest.raises(taskcli.ScopeRequestError, match="relative"):
        taskcli.send_scope_request("other", "/etc/**", "need it", env=inside)
    with pytest.raises(taskcli.ScopeRequestError, match=r"'\.\.'"):
        taskcli.send_scope_request("other", "../x/**", "need it", env=inside)
    with pytest.raises(taskcli.ScopeRequestError, match="--why"):
        taskcli.send_scope_request("other", "docs/**", "  ", env=inside)
    assert not (tmp_path / "spool").exists()  # nothing was sent


@pytest.mark.parametrize("server_json", [None, {"hooks_url": "http://127.0.0.1:9/x", "pid": 0},
                                         {"hooks_url": "http://127.0.0.1:9/x", "pid": 2 ** 22 + 7}])
def test_request_scope_with_the_server_away_says_not_sent_and_saves_nothing(
        tmp_path: Path, server_json: dict | None) -> None:
    """No server, a refused port, a stale server.json: exit 3, "not sent", no spool line (a
    request spooled for later could be refused with no one to tell the agent)."""
    (tmp_path / "sessions" / "t1").mkdir(parents=True)
    (tmp_path / "sessions" / "t1" / "secret").write_text("s3cret")
    if server_json is not None:
        (tmp_path / "server.json").write_text(json.dumps(server_json))
    env = {**os.environ, "HIVE_LAB_SESSION": "t1", "HIVE_LAB_DIR": str(tmp_path),
           "HIVE_LAB_AGENT": "scripted", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(BIN / "hive-lab"), "task", "request-scope", "t1", "docs/**",
                           "--why", "the docs need it"], env=env, capture_output=True, text=True)
    assert proc.returncode == taskcli.EXIT_NOT_SENT == 3, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert "not sent: the Hive Lab server is not answering" in proc.stderr
    assert "Nothing was recorded" in proc.stderr and "again" in proc.stderr
    assert not (tmp_path / "spool").exists()


# -- frames --------------------------------------------------------------------------------------
def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in frame.dtypes.items()}


def test_empty_task_frames_have_the_schema(client: HiveClient) -> None:
    for name in ("tasks", "attempts"):
        frame = getattr(frames, name)(client, state="failed", repo="/nonexistent")
        assert len(frame) == 0
        assert dtypes(frame) == EXPECTED[name] and list(frame.columns) == list(EXPECTED[name])
    assert list(frames.empty("tasks")["state"].cat.categories) == TASK_STATES


def test_task_frames_of_a_finished_task(server: HiveServer, client: HiveClient,
                                        repo: Path) -> None:
    check = ["sh", "-c", "test -f src/f2.py || { echo '@write src/f2.py F = 2'; "
                         "echo '@commit f2'; exit 1; }"]
    client.add_task(id="fr-a", prompt="@write src/f1.py F = 1\n@commit f1", repo=str(repo),
                    agent="scripted", scope=["src/**"], check=check)
    client.add_task(id="fr-wait", prompt="later", repo=str(repo), agent="nobody",
                    depends_on=["fr-a"])
    done = wait_for(lambda: (t := client.task("fr-a"))["state"]["name"] in ("done", "failed")
                    and t, timeout=60, what="fr-a to finish")
    assert done["state"]["name"] == "done", done["state"]
    tasks = client.frames.tasks(repo=str(repo))
    assert dtypes(tasks) == EXPECTED["tasks"] and list(tasks.columns) == list(EXPECTED["tasks"])
    assert list(tasks["state"].cat.categories) == TASK_STATES
    row = tasks.set_index("id").loc["fr-a"]
    assert row["state"] == "done" and row["reason"] == "the check passed"
    assert pd.isna(row["why"]) and row["attempts"] == 1 and row["round"] == 2
    assert row["check"].startswith("sh -c 'test -f src/f2.py") and row["scope"] == ["src/**"]
    assert row["branch"] == "hive/fr-a" and row["violations"] == 0
    assert row["since"] >= row["created"] and row["since"].tzinfo is not None
    # a dependency that is done, but the dependent's profile is missing: the why says so
    wait_for(lambda: client.task("fr-wait")["state"]["name"] == "ready", what="fr-wait promoted")
    waiting = client.frames.tasks(repo=str(repo)).set_index("id").loc["fr-wait"]
    assert waiting["state"] == "ready"
    wait_for(lambda: "nobody" in (client.task("fr-wait").get("why") or ""), what="a why")
    assert pd.isna(waiting["session"]) and waiting["depends_on"] == ["fr-a"]

    attempts = client.frames.attempts(repo=str(repo))
    assert dtypes(attempts) == EXPECTED["attempts"]
    assert list(attempts.columns) == list(EXPECTED["attempts"])
    a = attempts.iloc[0]
    assert len(attempts) == 1 and (a["task"], a["n"], a["profile"]) == ("fr-a", 1, "scripted")
    assert a["outcome"] == "done" and a["rounds"] == 2 and a["session"] == "fr-a"
    assert a["duration"] == a["ended"] - a["started"] and a["duration"] > pd.Timedelta(0)
    client.cancel_task("fr-wait")


# -- asking for scope, end to end -----------------------------------------------------------------
def test_an_agent_asks_for_scope_and_a_person_approves_it_with_the_cli(
        server: HiveServer, client: HiveClient, repo: Path) -> None:
    ask = "hive-lab task request-scope rs-a 'docs/**' --why 'the docs must mention the flag'"
    add = client.add_task(
        id="rs-a", repo=str(repo), requires=["hooked"], scope=["src/**"],
        check=["test", "-f", "docs/flag.md"],
        prompt=("@write docs/early.md too soon\n@write src/flag.py FLAG = 1\n"
                f"@run {ask}\n@await scope now includes\n@write docs/flag.md The flag\n"
                "@commit flag and its docs"))
    assert add["scope"] == ["src/**"]
    blocked = wait_for(lambda: (t := client.task("rs-a"))["state"]["name"] in
                       ("blocked", "done", "failed") and t, timeout=40, what="rs-a blocked")
    assert blocked["state"]["name"] == "blocked", blocked["state"]
    assert blocked["state"]["reason"].startswith("scope: asks for docs/**")
    assert "the docs must mention the flag" in blocked["why"]
    # the agent read what to do next, in words
    screen = wait_for(lambda: "Stop now and wait" in (s := client.screen("rs-a")) and s,
                      what="request-scope's answer on the agent's screen")
    flat = " ".join(screen.split())
    assert "ran: 0 request " in flat and " sent; wait for a person. Asked for docs/** on task rs-a" in flat
    # a person lists and approves, through the CLI with the token (a real process)
    base = [str(BIN / "hive-lab"), "--url", server.url, "--token", server.token, "task"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([*base, "requests", "--json"], capture_output=True, text=True,
                            env=env, check=True)
    (request,) = [r for r in json.loads(listed.stdout) if r["task_id"] == "rs-a"]
    assert (request["glob"], request["state"], request["session"]) == ("docs/**", "pending", "rs-a")
    table = subprocess.run([*base, "requests"], capture_output=True, text=True, env=env,
                           check=True).stdout
    assert f"{request['id']}" in table and "docs/**" in table and "hive-lab task approve" in table
    approved = subprocess.run([*base, "approve", str(request["id"]), "--note", "go ahead"],
                              capture_output=True, text=True, env=env)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == (f"request {request['id']} approved: docs/** joins the "
                                       "scope of task rs-a; the agent is told")
    assert client.task("rs-a")["scope"] == ["src/**", "docs/**"]
    done = wait_for(lambda: (t := client.task("rs-a"))["state"]["name"] in ("done", "failed")
                    and t, timeout=40, what="rs-a done")
    assert done["state"]["name"] == "done", done["state"]
    tree = git(repo, "ls-tree", "-r", "--name-only", "hive/rs-a").split()
    assert "docs/flag.md" in tree and "src/flag.py" in tree and "docs/early.md" not in tree
    # the guard denied only the write made before the scope was widened
    decided = client.events(session="rs-a", event="HookDecided")
    assert [d["payload"]["verdict"]["action"] for d in decided] == ["deny"]
    assert "docs/early.md" in decided[0]["payload"]["verdict"]["reason"]
    again = subprocess.run([*base, "approve", str(request["id"])], capture_output=True,
                           text=True, env=env)
    assert again.returncode == 1 and "already approved" in again.stderr


def test_a_refused_request_is_told_to_the_agent_which_stays_in_scope(
        server: HiveServer, client: HiveClient, repo: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ask = "hive-lab task request-scope rs-no 'docs/**' --why 'want to edit the docs'"
    client.add_task(id="rs-no", repo=str(repo), agent="scripted", scope=["src/**"],
                    check=["test", "-f", "src/instead.py"],
                    prompt=f"@run {ask}\n@await was refused\n@write src/instead.py X = 1\n"
                           "@commit within scope")
    wait_for(lambda: client.task("rs-no")["state"]["name"] == "blocked", timeout=40,
             what="rs-no blocked")
    (request,) = client.scope_requests(task="rs-no", state="pending")
    code, out, err = run_cli(server, capsys, "task", "refuse", str(request["id"]), "--note",
                             "docs are frozen this week")
    assert code == 0, err
    assert "stays outside the scope of task rs-no" in out
    screen = wait_for(lambda: "frozen" in (s := client.screen("rs-no")) and s,
                      what="the refusal typed to the agent")
    assert "Your request for docs/** was refused: docs are frozen this week" in " ".join(
        screen.split())
    done = wait_for(lambda: (t := client.task("rs-no"))["state"]["name"] in ("done", "failed")
                    and t, timeout=40, what="rs-no done")
    assert done["state"]["name"] == "done" and done["scope"] == ["src/**"]
    (decided,) = client.scope_requests(task="rs-no")
    assert (decided["state"], decided["note"]) == ("refused", "docs are frozen this week")


def test_request_scope_hears_the_servers_answer_from_inside_a_real_session(
        server: HiveServer, client: HiveClient, repo: Path, tmp_path: Path) -> None:
    """The agent's own shell runs the command; every refusal is its exit status and reason."""
    out = tmp_path / "answers.txt"
    asks = [("src/[", "a malformed glob"), ("src/**", "already mine"), (".git/**", "hooks"),
            ("docs/**", "the docs must mention it"), ("docs/**", "asking twice")]
    lines = [f"@run hive-lab task request-scope rs-e2e '{g}' --why '{w}' >> {out} 2>&1; "
             f"echo \"exit=$?\" >> {out}" for g, w in asks]
    client.add_task(id="rs-e2e", repo=str(repo), agent="scripted", scope=["src/**"],
                    prompt="\n".join(lines) + "\n@await was refused\n@write src/e.py E = 1\n"
                                              "@commit within scope")
    wait_for(lambda: out.exists() and out.read_text().count("exit=") == len(asks), timeout=60,
             what="the five answers")
    text = out.read_text()
    answers = [a.strip() for a in text.split("exit=")]
    codes = [int(a.split()[0]) for a in answers[1:]]
    assert codes == [1, 1, 1, 0, 1], text
    (request,) = client.scope_requests(task="rs-e2e")
    rid = request["id"]
    assert (request["glob"], request["state"], request["why"]) == (
        "docs/**", "pending", "the docs must mention it")
    prefix = "hive-lab task request-scope: refused: "
    assert answers[0].startswith(prefix + "unclosed '[' in pattern segment '['"), text
    assert answers[1].split("\n", 1)[1].startswith(
        prefix + "src/** is already in the scope of task rs-e2e"), text
    assert answers[2].split("\n", 1)[1].startswith(prefix + "requested scope pattern '.git/**'")
    assert answers[3].split("\n", 1)[1].startswith(f"request {rid} sent; wait for a person."), text
    assert answers[4].split("\n", 1)[1].startswith(
        prefix + f"request {rid} for docs/** is already pending"), text
    assert client.task("rs-e2e")["state"]["name"] == "blocked"
    refused = client.events(session="rs-e2e", event="ScopeRequested")
    assert len([e for e in refused if "refused" in e["payload"]]) == 4
    client.refuse_scope(rid, note="not now")
    done = wait_for(lambda: (t := client.task("rs-e2e"))["state"]["name"] in ("done", "failed")
                    and t, timeout=40, what="rs-e2e done")
    assert done["state"]["name"] == "done" and done["scope"] == ["src/**"]


def test_the_scope_request_endpoint_takes_only_the_sessions_secret(
        server: HiveServer, client: HiveClient, repo: Path) -> None:
    """Hostile callers of hooks/scope-request: the outcome is a clear JSON error, nothing kept."""
    from hive_lab import hook
    from hive_lab.wire import SCOPE_REQUEST_PATH

    client.add_task(id="rs-auth", repo=str(repo), agent="scripted", scope=["src/**"],
                    prompt="@await never")
    client.add_task(id="rs-other", repo=str(repo), agent="nobody", scope=["lib/**"],
                    prompt="x")
    wait_for(lambda: client.task("rs-auth")["state"]["name"] == "running", timeout=40,
             what="rs-auth running")
    secret = (server.data_dir / "sessions" / "rs-auth" / "secret").read_text().strip()
    hooks_url = json.loads((server.data_dir / "server.json").read_text())["hooks_url"]
    url = hooks_url.rstrip("/") + SCOPE_REQUEST_PATH.removeprefix("hooks")

    def post(body: object, session: str | None = "rs-auth", key: str | None = secret,
             raw: bytes | None = None) -> tuple[int, dict]:
        headers = [(n, v) for n, v in (("X-Hive-Session", session), ("X-Hive-Secret", key))
                   if v is not None]
        status, answer = hook.http_post(url, headers, raw if raw is not None else
                                        json.dumps(body).encode(), time.monotonic() + 10)
        assert answer, status
        return status, json.loads(answer)

    ok = {"task": "rs-auth", "glob": "docs/**", "why": "w"}
    assert post(ok, key=None)[0] == 403
    assert post(ok, key="wrong")[0] == 403
    assert post(ok, session=None)[0] == 403
    status, body = post(ok, session="rs-other")  # no such session, whatever the secret
    assert status == 403
    for bad, code, words in [
            ({**ok, "glob": "../x/**"}, 400, "must not contain '..'"),
            ({**ok, "glob": "/etc/**"}, 400, "relative to the repository root"),
            ({**ok, "glob": "docs/\x00"}, 400, "control characters"),
            ({**ok, "why": "  "}, 400, "say why"),
            ({**ok, "why": 3}, 400, "say why"),
            ({**ok, "task": "rs-other"}, 403, "does not work on task rs-other"),
            ({**ok, "task": "no-such"}, 404, "no-such"),
            ({**ok, "task": "../x"}, 400, "task"),
            ([1, 2], 400, "JSON object")]:
        status, body = post(bad)
        assert (status, body["error"]) == (code, {400: "bad_request", 403: "forbidden",
                                                  404: "not_found"}[code]), (bad, body)
        assert words in body["detail"], (bad, body)
    assert post(None, raw=b"\xff")[0] == 400
    assert client.scope_requests(task="rs-auth") == []
    assert client.task("rs-auth")["state"]["name"] == "running"
    # an agent asking in a loop: ten pending requests at most, the eleventh is told to wait
    for n in range(10):
        status, body = post({**ok, "glob": f"docs/{n}.md"})
        assert status == 201 and body["request"]["glob"] == f"docs/{n}.md", body
    status, body = post({**ok, "glob": "docs/10.md"})
    assert (status, body["error"]) == (409, "conflict")
    assert "10 scope requests pending already" in body["detail"]
    assert len(client.scope_requests(task="rs-auth", state="pending")) == 10
    assert client.task("rs-auth")["state"]["name"] == "blocked"
    client.cancel_task("rs-auth")
    client.cancel_task("rs-other")


def test_cli_retry_puts_a_failed_task_back(server: HiveServer, client: HiveClient, repo: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    client.add_task(id="rt-crash", prompt="@exit 3", repo=str(repo), agent="scripted",
                    scope=["src/**"], max_attempts=1)
    wait_for(lambda: client.task("rt-crash")["state"]["name"] == "failed", timeout=40,
             what="rt-crash failed")
    code, out, _ = run_cli(server, capsys, "task", "ls", "--state", "failed")
    assert "rt-crash" in out and "1/1" in out and "status 3" in out
    code, out, err = run_cli(server, capsys, "task", "retry", "rt-crash", "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == {**json.loads(out)["state"], "name": "ready",
                                        "reason": "retried by request"}
    failed = wait_for(lambda: (t := client.task("rt-crash"))["state"]["name"] == "failed"
                      and len(t["attempts"]) == 2 and t, timeout=40, what="the second attempt")
    assert [a["outcome"] for a in failed["attempts"]] == ["died", "died"]
    code, out, err = run_cli(server, capsys, "task", "retry", "nope-404")
    assert code == 1 and "not_found" in err and "nope-404" in err
