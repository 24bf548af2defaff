"""pandas frames from a real server: exact dtypes, values of a real hook replay, filters that
reach the server, empty frames with their schema, and usage straight from transcript files.

Hook payloads and the transcript are real Claude Code 2.1.197 output (../shared/samples);
expected values are computed here from the raw files, not through hive_lab.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

import hive_lab
import pytest

from support import GIT_ENV, SAMPLES, fire_hook, HiveServer, spawn, wait_for
from hive_lab import frames
from hive_lab.client import HiveClient

HOOKS = SAMPLES / "claude-code-2.1.197-hooks.jsonl"
TRANSCRIPT = SAMPLES / "claude-code-2.1.197-transcript.jsonl"
T, S, C, I, F, B, O = ("datetime64[ns, UTC]", "string", "category", "Int64", "Float64",
                       "boolean", "object")
TOKENS = {"input": I, "output": I, "cache_write_5m": I, "cache_write_1h": I, "cache_read": I,
          "total_tokens": I}
AGG = {"requests": I, "input": I, "output": I, "cache_write": I, "cache_write_5m": I,
       "cache_write_1h": I, "cache_read": I, "total_tokens": I, "cost": F, "known_cost": F,
       "cost_complete": B, "unknown_models": O}
# Written out by hand (not read from frames.SCHEMAS): the documented contract.
EXPECTED = {
    "sessions": {"name": S, "agent": C, "state": C, "reason": S, "tool": C, "source": C,
                 "since": T, "exit_status": I, "detail": S, "created": T, "pid": I,
                 "pane_id": S, "cwd": S, "command": S, "worktree": S, "branch": S,
                 "external": B, "agent_session_id": S, "transcript_path": S},
    "events": {"id": I, "time": T, "received": T, "session": C, "agent": C, "event": C,
               "tool": C, "tool_use_id": S, "agent_session_id": S, "summary": S, "payload": O},
    "transitions": {"id": I, "event_id": I, "session": C, "state": C, "reason": S, "tool": C,
                    "source": C, "since": T, "until": T, "duration": "timedelta64[ns]",
                    "exit_status": I},
    "git": {"session": S, "branch": S, "head": S, "ahead": I, "behind": I, "dirty": B,
            "staged": I, "unstaged": I, "untracked": I, "committed": I, "merges_cleanly": B,
            "merge_conflicts": O, "last_commit_sha": S, "last_commit_subject": S,
            "last_commit_author": S, "last_commit_time": T, "base_ref": S, "base_sha": S,
            "base_tip": S, "base_missing": B, "merge_base": S, "worktree": S, "repo": S},
    "git_files": {"session": S, "kind": C, "path": S, "status": C, "added": I, "removed": I},
    "overlaps": {"path": S, "session": S, "committed": B, "repo": S, "sessions": O},
    "conflicts": {"session_a": S, "session_b": S, "path": S, "head_a": S, "head_b": S,
                  "repo": S},
    "usage_rows": {"time": T, "session": C, "agent_session_id": S, "agent": C, "model": C,
                   "speed": C, "project": S, **TOKENS, "cost": F, "sidechain": B,
                   "message_id": S, "request_id": S, "source": S},
    "usage_session": {"session": C, "agent": C, "project": S, "first": T, "last": T, **AGG,
                      "models": O},
    "usage_day": {"day": T, **AGG, "models": O},
    "usage_model": {"model": C, **AGG},
    "usage_block": {"start": T, "end": T, "actual_end": T, "is_active": B, "is_gap": B, **AGG,
                    "models": O},
}
REPLAY_STATES = ["starting", "idle", "working", "waiting", "working", "idle", "exited"]


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in frame.dtypes.items()}


def assert_schema(frame: pd.DataFrame, schema: str) -> None:
    assert dtypes(frame) == EXPECTED[schema]  # dict equality ignores order: check it too
    assert list(frame.columns) == list(EXPECTED[schema])


class RecordingClient(HiveClient):
    """A real client that remembers every URL it asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.urls: list[str] = []

    def api_url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = super().api_url(path, params)
        self.urls.append(url)  # REST calls and the stream's WebSocket alike
        return url

    def queries(self, endpoint: str) -> list[dict[str, str]]:
        out = []
        for url in self.urls:
            parts = urllib.parse.urlsplit(url)
            if parts.path.endswith("/hive_lab/api/" + endpoint):
                out.append(dict(urllib.parse.parse_qsl(parts.query)))
        return out


def expected_usage(lines: list[str]) -> dict[str, Any]:
    """Each (message.id, requestId) once, the last line kept; FACTS.md's cost formula."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        d = json.loads(line)
        if d.get("type") == "assistant":
            seen[(d["message"]["id"], d["requestId"])] = d["message"]["usage"]
    tin = sum(u["input_tokens"] for u in seen.values())
    tout = sum(u["output_tokens"] for u in seen.values())
    cw = sum(u["cache_creation_input_tokens"] for u in seen.values())
    cr = sum(u["cache_read_input_tokens"] for u in seen.values())
    return {"responses": len(seen), "input": tin, "output": tout, "cache_write": cw,
            "cache_read": cr, "total": tin + tout + cw + cr,
            "cost": (tin * 5 + tout * 25 + cw * 1.25 * 5 + cr * 0.1 * 5) / 1e6}


@pytest.fixture(scope="module")
def replay(server: HiveServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A hooked session that went through the real sample's hooks."""
    work = server.root / "frames-replay"
    work.mkdir()
    spawn(server, "fr-replay", None, cwd=work, agent="hooked")
    for line in HOOKS.read_bytes().splitlines():
        if line.strip():
            assert fire_hook(server, "fr-replay", line).returncode == 0
    return "fr-replay"


@pytest.fixture
def client(server: HiveServer) -> RecordingClient:
    return RecordingClient(server.url, server.token)


# -- sessions ---------------------------------------------------------------------------------
def test_sessions_frame(server: HiveServer, replay: str, client: RecordingClient) -> None:
    df = frames.sessions(client)
    assert_schema(df, "sessions")
    row = df[df["name"] == replay].iloc[0]
    assert (row["agent"], row["state"], row["reason"], row["source"]) == (
        "hooked", "exited", "prompt_input_exit", "hook:SessionEnd")
    assert row["command"] == "cat" and row["external"] == False  # noqa: E712 - numpy bool
    assert row["agent_session_id"] == "ff4417c6-5010-4c34-b485-e16fb85e8db2"
    assert row["transcript_path"].endswith("ff4417c6-5010-4c34-b485-e16fb85e8db2.jsonl")
    assert pd.isna(row["exit_status"]) and pd.isna(row["worktree"])
    assert row["created"] <= row["since"] <= pd.Timestamp.now(tz="UTC")
    assert list(df["state"].cat.categories)[:6] == ["starting", "working", "waiting", "idle",
                                                     "exited", "error"]


# -- events -----------------------------------------------------------------------------------
def test_events_frame_values_and_dtypes(replay: str, client: RecordingClient) -> None:
    df = frames.events(client, session=replay)
    assert_schema(df, "events")
    hooks = [json.loads(line) for line in HOOKS.read_text().splitlines() if line.strip()]
    mine = df[df["agent"] == "claude"]
    assert list(mine["event"]) == [h["hook_event_name"] for h in hooks]
    assert list(mine["payload"]) == hooks
    assert mine["id"].is_monotonic_increasing and df["time"].dt.tz is not None
    tools = mine[mine["event"] == "PreToolUse"]
    assert list(tools["tool"]) == ["Bash", "Bash", "Write"]
    assert list(tools["tool_use_id"]) == [h["tool_use_id"] for h in hooks
                                          if h["hook_event_name"] == "PreToolUse"]
    assert set(df["session"]) == {replay}
    assert (df["received"] >= df["time"] - pd.Timedelta("1s")).all()
    # Hive Lab's own events carry no agent session id: NA, not "None" or ""
    assert df.loc[df["agent"] == "hive", "agent_session_id"].isna().all()


def test_event_filters_are_sent_to_the_server(replay: str, client: RecordingClient) -> None:
    everything = frames.events(client, session=replay)
    client.urls.clear()
    pre = frames.events(client, session=replay, event="PreToolUse", limit=2)
    (query,) = client.queries("events")
    assert query == {"after": "0", "session": replay, "event": "PreToolUse", "limit": "2"}
    assert list(pre["tool"]) == ["Bash", "Bash"]  # the server's first two, nothing more fetched

    # time bounds: epoch seconds on the wire, since inclusive, until exclusive, on "time"
    times = list(everything["time"])
    ms = [t.floor("ms") for t in times]
    k = next(i for i in range(3, len(ms)) if ms[i] > ms[i - 1])
    m = next(i for i in range(k + 3, len(ms)) if ms[i] > ms[i - 1])
    client.urls.clear()
    window = frames.events(client, session=replay, since=times[k], until=times[m].to_pydatetime())
    (query,) = client.queries("events")
    assert float(query["since"]) == pytest.approx(times[k].timestamp(), abs=1e-6)
    assert float(query["until"]) == pytest.approx(times[m].timestamp(), abs=1e-6)
    assert list(window["id"]) == list(everything["id"][k:m])
    # naive datetimes mean UTC; ISO text works too
    naive = times[k].tz_convert("UTC").tz_localize(None).to_pydatetime()
    assert list(frames.events(client, session=replay, since=naive)["id"]) == \
        list(everything["id"][k:])
    assert list(frames.events(client, session=replay, since=times[k].isoformat())["id"]) == \
        list(everything["id"][k:])
    # agent and after filters
    client.urls.clear()
    hive_only = frames.events(client, session=replay, agent="hive", after=int(everything["id"][3]))
    assert client.queries("events")[0]["agent"] == "hive"
    assert client.queries("events")[0]["after"] == str(int(everything["id"][3]))
    assert set(hive_only["agent"]) == {"hive"} and (hive_only["id"] > everything["id"][3]).all()
    # a timedelta means "that long ago"
    assert len(frames.events(client, session=replay, since=timedelta(hours=1))) == len(everything)
    assert frames.events(client, session=replay, since=timedelta(0)).empty


def test_events_are_paged(replay: str, client: RecordingClient,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    everything = frames.events(client, session=replay)
    monkeypatch.setattr(frames, "PAGE", 4)
    client.urls.clear()
    paged = frames.events(client, session=replay)
    queries = client.queries("events")
    assert len(queries) == len(everything) // 4 + 1
    assert [q["after"] for q in queries[1:]] == [str(int(i)) for i in everything["id"][3::4]]
    pd.testing.assert_frame_equal(paged, everything)
    client.urls.clear()
    assert list(frames.events(client, session=replay, limit=6)["id"]) == list(everything["id"][:6])
    assert [q["limit"] for q in client.queries("events")] == ["4", "2"]


# -- transitions ------------------------------------------------------------------------------
def test_transitions_of_the_replay(replay: str, client: RecordingClient) -> None:
    df = frames.transitions(client, session=replay)
    assert client.queries("transitions") == [{"session": replay, "after": "0"}]
    assert_schema(df, "transitions")
    assert list(df["state"]) == REPLAY_STATES
    assert list(df["state"].cat.categories) == ["starting", "working", "waiting", "idle",
                                                "exited", "error"]
    assert list(df["source"]) == ["spawn", "hook:SessionStart", "hook:UserPromptSubmit",
                                  "hook:PermissionRequest", "hook:UserPromptSubmit",
                                  "hook:Stop", "hook:SessionEnd"]
    waiting = df[df["state"] == "waiting"].iloc[0]
    assert (waiting["reason"], waiting["tool"]) == ("permission", "Write")
    assert df["reason"].iloc[-1] == "prompt_input_exit"
    # until = the next transition's since; the current state is open
    assert list(df["until"][:-1]) == list(df["since"][1:])
    assert pd.isna(df["until"].iloc[-1]) and pd.isna(df["duration"].iloc[-1])
    assert (df["duration"][:-1] == df["until"][:-1] - df["since"][:-1]).all()
    assert (df["duration"][:-1] >= pd.Timedelta(0)).all()
    # each StateChanged event is the transition's event
    changes = frames.events(client, session=replay, event="StateChanged")
    assert list(df["event_id"]) == list(changes["id"])


def test_transition_spans_stay_within_a_session(server: HiveServer, replay: str,
                                                client: RecordingClient) -> None:
    spawn(server, "fr-other", None, cwd=server.root, agent="hooked")
    fire_hook(server, "fr-other", {"hook_event_name": "SessionStart", "session_id": "o-1"})
    df = frames.transitions(client)
    assert {replay, "fr-other"} <= set(df["session"])
    for _, grp in df.groupby("session", observed=True):
        grp = grp.sort_values("since")
        assert list(grp["until"][:-1]) == list(grp["since"][1:])
        assert pd.isna(grp["until"].iloc[-1])
    other = df[df["session"] == "fr-other"]
    assert list(other["state"]) == ["starting", "idle"]
    server.request("DELETE", "sessions/fr-other")


# -- empty frames -----------------------------------------------------------------------------
def test_empty_frames_have_the_schema(server: HiveServer, client: RecordingClient) -> None:
    assert_schema(frames.events(client, session="fr-nobody"), "events")
    assert_schema(frames.transitions(client, session="fr-nobody"), "transitions")
    assert_schema(frames.usage(client, session="fr-nobody"), "usage_rows")
    for by in ("session", "day", "model", "block"):
        df = frames.usage(client, by=by, session="fr-nobody")
        assert df.empty
        assert_schema(df, f"usage_{by}")
        assert df.attrs["totals"]["requests"] == 0
    for schema in EXPECTED:
        empty = frames.empty(schema)
        assert empty.empty
        assert_schema(empty, schema)


def test_bad_arguments(client: RecordingClient) -> None:
    with pytest.raises(ValueError, match="by must be"):
        frames.usage(client, by="week")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        frames.events(client, since=True)
    assert client.urls == []  # refused before asking the server


# -- usage --------------------------------------------------------------------------------------
def test_usage_from_files_offline(tmp_path: Path) -> None:
    lines = TRANSCRIPT.read_text().splitlines()
    want = expected_usage(lines)
    rows = frames.usage_from_files(TRANSCRIPT)
    assert_schema(rows, "usage_rows")
    assert len(rows) == want["responses"] == 4  # 5 assistant lines, one response written twice
    assert int(rows["input"].sum()) == want["input"]
    assert int(rows["output"].sum()) == want["output"]
    assert int((rows["cache_write_5m"] + rows["cache_write_1h"]).sum()) == want["cache_write"]
    assert int(rows["cache_read"].sum()) == want["cache_read"]
    assert int(rows["total_tokens"].sum()) == want["total"]
    assert float(rows["cost"].sum()) == pytest.approx(want["cost"], abs=1e-12)
    sid = json.loads(lines[0])["sessionId"]
    assert set(rows["session"]) == {sid} and set(rows["agent_session_id"]) == {sid}
    assert set(rows["model"]) == {"claude-opus-4-8"} and rows["time"].is_monotonic_increasing
    # duplicated files and directories: still counted once
    (tmp_path / "a").mkdir()
    shutil.copy(TRANSCRIPT, tmp_path / "a" / "one.jsonl")
    shutil.copy(TRANSCRIPT, tmp_path / "two.jsonl")
    assert len(frames.usage_from_files([tmp_path])) == 4
    by_session = frames.usage_from_files(tmp_path, by="session")
    assert_schema(by_session, "usage_session")
    (row,) = by_session.to_dict("records")
    assert (row["session"], row["requests"], row["input"], row["cache_write"]) == (
        sid, 4, want["input"], want["cache_write"])
    assert row["cost"] == pytest.approx(want["cost"]) and row["cost_complete"]
    assert row["models"] == ["claude-opus-4-8"]
    assert by_session.attrs["totals"]["totalTokens"] == want["total"]
    model = frames.usage_from_files(tmp_path, by="model")
    assert list(model["model"]) == ["claude-opus-4-8"] and int(model["output"][0]) == want["output"]
    day = frames.usage_from_files(tmp_path, by="day")
    assert list(day["day"]) == [pd.Timestamp(json.loads(lines[5])["timestamp"][:10], tz="UTC")]
    block = frames.usage_from_files(tmp_path, by="block")
    assert_schema(block, "usage_block")
    assert int(block["requests"].sum()) == 4 and not block["is_gap"].any()
    (tmp_path / "empty").mkdir()
    assert_schema(frames.usage_from_files(tmp_path / "empty"), "usage_rows")
    assert frames.usage_from_files(tmp_path / "empty", by="day").empty
    with pytest.raises(FileNotFoundError):
        frames.usage_from_files(tmp_path / "nothing-here")


def test_usage_through_the_server(server: HiveServer, client: RecordingClient) -> None:
    lines = TRANSCRIPT.read_text().splitlines()
    want = expected_usage(lines)
    work = server.root / "frames-usage"
    work.mkdir()
    transcript = work / "spend.jsonl"
    shutil.copy(TRANSCRIPT, transcript)
    spawn(server, "fr-spender", None, cwd=work, agent="hooked")
    fire_hook(server, "fr-spender", {"hook_event_name": "Stop", "session_id": "sid-fr",
                                     "transcript_path": str(transcript)})
    wait_for(lambda: len(frames.usage(client, session="fr-spender")) == 4, timeout=20,
             what="usage rows of fr-spender")
    client.urls.clear()
    rows = frames.usage(client, session="fr-spender")
    assert client.queries("usage/rows") == [{"session": "fr-spender"}]
    assert_schema(rows, "usage_rows")
    assert set(rows["session"]) == {"fr-spender"}
    assert int(rows["total_tokens"].sum()) == want["total"]
    assert float(rows["cost"].sum()) == pytest.approx(want["cost"])
    by_session = frames.usage(client, by="session", session="fr-spender")
    assert list(by_session["session"]) == ["fr-spender"]
    assert int(by_session["cache_read"][0]) == want["cache_read"]
    # time bounds reach the server as epoch seconds and cut rows there
    t = list(rows["time"])
    client.urls.clear()
    late = frames.usage(client, session="fr-spender", since=t[2])
    q = client.queries("usage/rows")[0]
    assert float(q["since"]) == pytest.approx(t[2].timestamp()) and "until" not in q
    assert list(late["message_id"]) == list(rows["message_id"][2:])
    early = frames.usage(client, by="model", session="fr-spender", until=t[2])
    q = client.queries("usage")[0]
    assert q["by"] == "model" and q["session"] == "fr-spender"
    assert float(q["until"]) == pytest.approx(t[2].timestamp())
    assert int(early["requests"][0]) == 2
    server.request("DELETE", "sessions/fr-spender")


# -- git ------------------------------------------------------------------------------------


def run_git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@e",
                          *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_git_frames(server: HiveServer, client: RecordingClient) -> None:
    repo = server.root / "frames-repo"
    repo.mkdir()
    run_git(repo, "init", "-q", "-b", "main")
    (repo / "shared.txt").write_text("one\ntwo\nthree\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-qm", "initial")
    for name, word in (("fr-git-a", "A"), ("fr-git-b", "B")):
        spawn(server, name, ["sh"], cwd=repo, env=GIT_ENV)
        server.request("POST", f"sessions/{name}/input", {"text": (
            f"sed -i 's/two/two by {word}/' shared.txt && git commit -qam '{word} edits' && "
            f"echo new > notes-{word}.txt")})

    def ready() -> bool:
        for name in ("fr-git-a", "fr-git-b"):
            client.git(name)  # GET git serves cached states: make sure they are current
        df = frames.git(client)
        mine = df[df["session"].isin(["fr-git-a", "fr-git-b"])]
        done = (mine["ahead"] == 1) & (mine["untracked"] == 1)  # NA until git was read
        return len(mine) == 2 and bool(done.fillna(False).all())

    wait_for(ready, timeout=30, what="both sessions committed")
    df = frames.git(client)
    assert_schema(df, "git")
    a = df[df["session"] == "fr-git-a"].iloc[0]
    assert (a["branch"], a["ahead"], a["behind"], a["committed"], a["dirty"]) == (
        "hive/fr-git-a", 1, 0, 1, True)
    assert a["last_commit_subject"] == "A edits" and a["last_commit_author"] == "Agent"
    assert a["head"] == a["last_commit_sha"] and len(a["head"]) == 40
    assert a["base_ref"] == "refs/heads/main" and a["merges_cleanly"] == True  # noqa: E712
    assert a["merge_conflicts"] == []
    assert abs(pd.Timestamp.now(tz="UTC") - a["last_commit_time"]) < pd.Timedelta("5min")
    # sessions without a worktree have a row of NA
    others = df[~df["session"].str.startswith("fr-git-")]
    assert others.drop(columns="session").drop(columns="merge_conflicts").isna().all().all()

    files = frames.git_files(client)
    assert_schema(files, "git_files")
    mine = files[files["session"] == "fr-git-a"].sort_values("kind")
    assert [(r.kind, r.path) for r in mine.itertuples()] == [("committed", "shared.txt"),
                                                             ("untracked", "notes-A.txt")]
    assert pd.isna(mine.iloc[0]["status"]) and pd.isna(mine.iloc[0]["added"])
    assert (mine.iloc[1]["status"], mine.iloc[1]["added"]) == ("?", 1)

    over = frames.overlaps(client)
    assert_schema(over, "overlaps")
    shared = over[over["path"] == "shared.txt"]
    assert sorted(shared["session"]) == ["fr-git-a", "fr-git-b"] and shared["committed"].all()
    assert sorted(shared["sessions"].iloc[0]) == ["fr-git-a", "fr-git-b"]
    conf = frames.conflicts(client)
    assert_schema(conf, "conflicts")
    pairs = conf[conf["session_a"].str.startswith("fr-git-")]
    assert [(sorted([r.session_a, r.session_b]), r.path) for r in pairs.itertuples()] == [
        (["fr-git-a", "fr-git-b"], "shared.txt")]
    assert len(pairs["head_a"].iloc[0]) == 40
    for name in ("fr-git-a", "fr-git-b"):
        server.request("DELETE", f"sessions/{name}?cleanup=worktree&force=true")


# -- accessor ---------------------------------------------------------------------------------
def test_frames_accessor_and_connect(server: HiveServer, replay: str) -> None:
    hive = hive_lab.connect(server.url, server.token)  # the documented way in
    assert isinstance(hive, HiveClient)
    pd.testing.assert_frame_equal(hive.frames.transitions(session=replay),
                                  frames.transitions(hive, session=replay))
    pd.testing.assert_frame_equal(frames.Frames(hive).events(session=replay, event="Stop"),
                                  frames.events(hive, session=replay, event="Stop"))
    assert list(hive.frames.sessions().columns) == list(EXPECTED["sessions"])


def test_pandas_is_not_imported_with_the_package() -> None:
    code = ("import sys, hive_lab, hive_lab.client\n"
            "print('pandas' in sys.modules, 'plotly' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr

