"""plotly figures from real frames: the traces hold the expected data; live figures redraw from
the real event stream; notebooks/analysis.ipynb runs in a kernel started by the server.
"""
from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import nbformat
import pandas as pd
import plotly.graph_objects as go
import pytest

from support import ROOT, HiveServer, fire_hook, spawn, wait_for
from support.kernel import RemoteKernel
from test_frames import HOOKS, TRANSCRIPT, RecordingClient, expected_usage
from hive_lab import frames, plots
from hive_lab.widgets.render import STATE_COLOURS

NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"
ORDER = ["starting", "working", "waiting", "idle", "exited", "error"]


@pytest.fixture(scope="module")
def claude_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLAUDE_CONFIG_DIR whose projects/ holds the sample transcript (for the notebook)."""
    root = tmp_path_factory.mktemp("claude")
    (root / "projects" / "-home-dev-src-alpha").mkdir(parents=True)
    shutil.copy(TRANSCRIPT, root / "projects" / "-home-dev-src-alpha" / "sample.jsonl")
    return root


@dataclass
class PlotServer(HiveServer):
    """The test server, with Claude Code's config dir (inherited by its kernels) set."""

    claude_dir: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "CLAUDE_CONFIG_DIR": self.claude_dir}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, claude_dir: Path):
    srv = PlotServer(tmp_path_factory.mktemp("hive"), claude_dir=str(claude_dir),
                     extra_args=["--HiveLab.usage_interval=0.3"]).start()
    yield srv
    srv.stop()
    srv.kill_tmux()


@pytest.fixture(scope="module")
def replay(server: HiveServer) -> str:
    work = server.root / "plots-replay"
    work.mkdir()
    spawn(server, "pl-replay", None, cwd=work, agent="hooked")
    for line in HOOKS.read_bytes().splitlines():
        if line.strip():
            assert fire_hook(server, "pl-replay", line).returncode == 0
    return "pl-replay"


@pytest.fixture
def client(server: HiveServer) -> RecordingClient:
    return RecordingClient(server.url, server.token)


def utc_naive(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").tz_localize(None)


def second_session_transcript(path: Path, session_id: str = "other-session") -> Path:
    """The sample transcript as another agent session (new session and message ids)."""
    out = []
    for line in TRANSCRIPT.read_text().splitlines():
        d = json.loads(line)
        d["sessionId"] = session_id
        if isinstance(d.get("message"), dict) and "id" in d["message"]:
            d["message"]["id"] += "-" + session_id
        out.append(json.dumps(d))
    path.write_text("\n".join(out) + "\n")
    return path


# -- static figures ---------------------------------------------------------------------------
def test_timeline_bars_match_transitions(replay: str, client: RecordingClient) -> None:
    trans = frames.transitions(client, session=replay)
    now = trans["since"].iloc[-1] + pd.Timedelta(seconds=5)
    fig = plots.timeline(trans, now=now)
    assert isinstance(fig, go.Figure) and not isinstance(fig, go.FigureWidget)
    names = [t.name for t in fig.data]
    assert names == [s for s in ORDER if s in set(trans["state"])]
    for trace in fig.data:
        assert trace.type == "bar" and trace.orientation == "h"
        assert trace.marker.color == STATE_COLOURS[trace.name]
    bars = sorted((pd.Timestamp(b), ms, t.name, y) for t in fig.data
                  for b, ms, y in zip(t.base, t.x, t.y))
    assert [name for _, _, name, _ in bars] == list(trans["state"])
    assert {y for *_, y in bars} == {replay}
    for (start, ms, _, _), (_, row) in zip(bars, trans.iterrows()):
        assert start == utc_naive(row["since"])
        end = row["until"] if pd.notna(row["until"]) else now
        assert ms == pytest.approx((end - row["since"]) / pd.Timedelta(milliseconds=1), abs=1e-3)
    # the client form fetches the same transitions (session filter sent to the server)
    client.urls.clear()
    again = plots.timeline(client, session=replay, now=now)
    assert "session=pl-replay" in client.urls[0] and "transitions" in client.urls[0]
    assert [t.name for t in again.data] == names


def test_tool_calls_counts_pre_tool_use_by_tool_and_session(server: HiveServer, replay: str,
                                                            client: RecordingClient) -> None:
    events = frames.events(client, session=replay)
    fig = plots.tool_calls(events)
    assert [(t.name, tuple(t.x), tuple(t.y)) for t in fig.data] == [
        (replay, ("Bash", "Write"), (2, 1))]
    assert fig.layout.barmode == "stack"
    # a second session: one trace each, tools ordered by total calls
    spawn(server, "pl-tools", None, cwd=server.root, agent="hooked")
    for tool in ("Write", "Write", "Read"):
        fire_hook(server, "pl-tools", {"hook_event_name": "PreToolUse", "tool_name": tool,
                                       "tool_input": {"file_path": "/x"}, "session_id": "t"})
    client.urls.clear()
    both = plots.tool_calls(client)
    assert "event=PreToolUse" in client.urls[0]  # only tool calls were fetched
    data = {t.name: dict(zip(t.x, t.y)) for t in both.data}
    assert data[replay] == {"Bash": 2, "Write": 1, "Read": 0}
    assert data["pl-tools"] == {"Bash": 0, "Write": 2, "Read": 1}
    assert list(both.data[0].x) == ["Write", "Bash", "Read"]
    server.request("DELETE", "sessions/pl-tools")


def test_events_heatmap_counts_every_event(replay: str, client: RecordingClient) -> None:
    events = frames.events(client, session=replay)
    fig = plots.events_heatmap(events, freq="1s")
    (heat,) = fig.data
    assert heat.type == "heatmap" and list(heat.y) == [replay]
    assert sum(map(sum, heat.z)) == len(events)
    xs = [pd.Timestamp(x) for x in heat.x]
    assert xs[0] == utc_naive(events["time"].min()).floor("1s")
    assert all(b - a == pd.Timedelta("1s") for a, b in zip(xs, xs[1:]))
    by_event = plots.events_heatmap(events, freq="1min", y="event")
    counts = dict(zip(by_event.data[0].y, (sum(r) for r in by_event.data[0].z)))
    assert counts == events["event"].astype(str).value_counts().to_dict()
    # no freq: buckets sized to the span (the replay lasts well under a second)
    auto = plots.events_heatmap(events)
    assert auto.layout.title.text == "Events per session and 1s"
    spread = events.assign(time=events["time"] + pd.to_timedelta(range(len(events)), unit="D"))
    wide = plots.events_heatmap(spread)
    assert wide.layout.title.text.endswith(" 6h") and sum(map(sum, wide.data[0].z)) == len(events)


def test_cost_and_tokens_over_time(tmp_path: Path) -> None:
    want = expected_usage(TRANSCRIPT.read_text().splitlines())
    rows = frames.usage_from_files([TRANSCRIPT, second_session_transcript(tmp_path / "b.jsonl")])
    assert len(rows) == 8
    fig = plots.cost_over_time(rows, by="session")
    names = sorted({t.name for t in fig.data})
    assert len(fig.data) == 4 and names == sorted(set(rows["session"].astype(str)))
    for t in fig.data:
        if t.yaxis == "y":  # the cost axis, cumulative
            assert t.y[-1] == pytest.approx(want["cost"]) and list(t.y) == sorted(t.y)
        else:
            assert t.yaxis == "y2" and t.y[-1] == want["total"] and not t.showlegend
    first = rows[rows["session"] == fig.data[0].name]
    assert list(fig.data[0].y) == pytest.approx(list(first["cost"].cumsum().astype(float)))
    assert [pd.Timestamp(x) for x in fig.data[0].x] == [utc_naive(t) for t in first["time"]]
    by_model = plots.cost_over_time(rows, by="model")
    assert {t.name for t in by_model.data} == {"claude-opus-4-8"}
    assert by_model.data[0].y[-1] == pytest.approx(2 * want["cost"])

    kinds = plots.tokens_over_time(rows)
    assert [t.name for t in kinds.data] == ["input", "output", "cache_write_5m",
                                            "cache_write_1h", "cache_read"]
    last = {t.name: t.y[-1] for t in kinds.data}
    assert last["input"] == 2 * want["input"] and last["output"] == 2 * want["output"]
    assert last["cache_write_5m"] + last["cache_write_1h"] == 2 * want["cache_write"]
    assert all(t.stackgroup == "tokens" for t in kinds.data)
    per = plots.tokens_over_time(rows, by="session")
    assert [t.y[-1] for t in per.data] == [want["total"], want["total"]]


def test_empty_frames_give_empty_figures() -> None:
    for fig in (plots.cost_over_time(frames.empty("usage_rows")),
                plots.tokens_over_time(frames.empty("usage_rows")),
                plots.tool_calls(frames.empty("events")),
                plots.events_heatmap(frames.empty("events")),
                plots.timeline(frames.empty("transitions"))):
        assert isinstance(fig, go.Figure) and len(fig.data) == 0
        assert any("yet" in a.text for a in fig.layout.annotations)
        fig.to_json()  # serialisable
    with pytest.raises(ValueError, match="by must be"):
        plots.cost_over_time(frames.empty("usage_rows"), by="day")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a client"):
        plots.timeline(frames.empty("transitions"), live=True)


# -- live figures -----------------------------------------------------------------------------
def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 60))


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_live_timeline_redraws_on_state_changes(server: HiveServer,
                                                client: RecordingClient) -> None:
    spawn(server, "pl-live", None, cwd=server.root, agent="hooked")

    async def scenario() -> None:
        fig = plots.timeline(client, session="pl-live", live=True)
        assert isinstance(fig, go.FigureWidget) and isinstance(fig, plots.LiveFigure)
        assert [t.name for t in fig.data] == ["starting"] and fig.running
        await until(lambda: any("events/stream" in u for u in client.urls), "stream opened")
        stream = next(u for u in client.urls if "events/stream" in u)
        assert "session=pl-live" in stream and "event=StateChanged" in stream
        await asyncio.to_thread(fire_hook, server, "pl-live",
                                {"hook_event_name": "SessionStart", "session_id": "l"})
        await asyncio.to_thread(fire_hook, server, "pl-live",
                                {"hook_event_name": "UserPromptSubmit", "session_id": "l"})
        await until(lambda: list(fig.frame["state"]) == ["starting", "idle", "working"],
                    "three transitions drawn")
        assert [t.name for t in fig.data] == ["starting", "working", "idle"]
        assert fig.updates >= 1
        # the earlier bars got their end: idle ends where working starts
        idle = next(t for t in fig.data if t.name == "idle")
        working = next(t for t in fig.data if t.name == "working")
        assert pd.Timestamp(idle.base[0]) + pd.Timedelta(milliseconds=idle.x[0]) == \
            pytest.approx(pd.Timestamp(working.base[0]), abs=pd.Timedelta(milliseconds=1))
        fig.stop()
        await asyncio.sleep(0.1)
        assert not fig.running
        seen = fig.updates
        await asyncio.to_thread(fire_hook, server, "pl-live",
                                {"hook_event_name": "Stop", "session_id": "l"})
        await asyncio.sleep(1.0)
        assert fig.updates == seen and len(fig.frame) == 3  # stopped means stopped

    run(scenario)
    server.request("DELETE", "sessions/pl-live")


def test_live_cost_follows_the_transcript(server: HiveServer, client: RecordingClient) -> None:
    lines = TRANSCRIPT.read_text().splitlines()
    half = len(lines) // 2
    transcript = server.root / "live-cost.jsonl"
    transcript.write_text("\n".join(lines[:half]) + "\n")
    spawn(server, "pl-spend", None, cwd=server.root, agent="hooked")

    async def scenario() -> None:
        fig = plots.cost_over_time(client, session="pl-spend", live=True)
        assert len(fig.data) == 0  # nothing spent yet
        await asyncio.to_thread(fire_hook, server, "pl-spend",
                                {"hook_event_name": "Stop", "session_id": "s",
                                 "transcript_path": str(transcript)})
        first = expected_usage(lines[:half])
        await until(lambda: len(fig.data) == 2 and fig.data[0].y[-1] == pytest.approx(
            first["cost"]), "cost of the first half")
        assert fig.data[1].y[-1] == first["total"] and fig.data[0].name == "pl-spend"
        with transcript.open("a") as fh:
            fh.write("\n".join(lines[half:]) + "\n")
        full = expected_usage(lines)
        await until(lambda: fig.data[0].y[-1] == pytest.approx(full["cost"]), "full cost")
        assert fig.data[1].y[-1] == full["total"] and len(fig.frame) == full["responses"]
        fig.stop()

    run(scenario)
    server.request("DELETE", "sessions/pl-spend")


def test_live_tool_calls_from_a_frame(server: HiveServer, replay: str,
                                      client: RecordingClient) -> None:
    start = frames.events(client, session=replay)

    async def scenario() -> None:
        fig = plots.tool_calls(start, client=client, session=replay, live=True)
        assert dict(zip(fig.data[0].x, fig.data[0].y)) == {"Bash": 2, "Write": 1}
        await asyncio.to_thread(fire_hook, server, replay,
                                {"hook_event_name": "PreToolUse", "tool_name": "Grep",
                                 "tool_input": {"pattern": "x"}, "session_id": "r"})
        await until(lambda: "Grep" in fig.data[0].x, "the new tool call")
        assert dict(zip(fig.data[0].x, fig.data[0].y)) == {"Bash": 2, "Write": 1, "Grep": 1}
        # only newer events were fetched: the redraw asked for ids after the frame's last one
        last = int(start["id"].max())
        assert any(f"after={last}" in u and "event=PreToolUse" in u for u in client.urls)
        assert fig.frame["id"].is_unique and str(fig.frame["session"].dtype) == "category"
        fig.stop()

    run(scenario)


# -- the notebook ---------------------------------------------------------------------------
def test_notebook_is_generated_by_its_script() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_analysis_notebook",
                                                  ROOT / "scripts" / "make_analysis_notebook.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    fresh = [(c.cell_type, c.source) for c in module.analysis().cells]
    stored = [(c.cell_type, c.source) for c in nbformat.read(NOTEBOOK, as_version=4).cells]
    assert fresh == stored, "run scripts/make_analysis_notebook.py"


def test_analysis_notebook_runs_against_the_server(server: HiveServer, replay: str,
                                                   kernel: RemoteKernel, claude_dir: Path) -> None:
    # its own agent session id: the server names rows by agent id (see the report)
    transcript = second_session_transcript(server.root / "nb-usage.jsonl", "nb-session")
    spawn(server, "pl-nb-spend", None, cwd=server.root, agent="hooked")
    fire_hook(server, "pl-nb-spend", {"hook_event_name": "Stop", "session_id": "n",
                                      "transcript_path": str(transcript)})
    wait_for(lambda: server.get("usage/rows?session=pl-nb-spend")["rows"], timeout=20,
             what="usage of pl-nb-spend")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    outputs = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        result = kernel.run(cell.source, timeout=120)
        assert not result.errors, (cell.source, result.errors)
        assert result.status == "ok"
        outputs.append(result)
    text = json.dumps([r.data for r in outputs]) + "".join(r.stdout for r in outputs)
    assert server.socket_name in text  # status of *this* server
    assert "pl-replay" in text and "PreToolUse" in text
    # the offline part found the transcript through CLAUDE_CONFIG_DIR, and the CLI agreed
    stdout = "".join(r.stdout for r in outputs)
    assert str(claude_dir / "projects") in stdout and "claude-opus-4-8" in stdout
    # the live timeline was displayed as a widget, then stopped
    assert any("application/vnd.jupyter.widget-view+json" in d for r in outputs for d in r.data)
    check = kernel.run("print(live.running, live.frame['session'].nunique() >= 2)")
    assert check.stdout.split() == ["False", "True"], check
    # frames inside the kernel hold this server's data with the documented dtypes
    probe = kernel.run("mine = rows[rows['session'] == 'pl-nb-spend']\n"
                       "print(str(transitions['since'].dtype), int(mine['total_tokens'].sum()),"
                       " round(float(history['cost'].sum()), 6))")
    want = expected_usage(TRANSCRIPT.read_text().splitlines())
    assert probe.stdout.split() == ["datetime64[ns,", "UTC]", str(want["total"]),
                                    str(round(want["cost"], 6))], probe


def test_live_timeline_updates_inside_a_kernel(server: HiveServer, kernel: RemoteKernel) -> None:
    setup = kernel.run("import hive_lab\nfrom hive_lab import plots\n"
                       "lt = plots.timeline(hive_lab.connect(), live=True)\n"
                       "import plotly.graph_objects as go\n"
                       "print(isinstance(lt, go.FigureWidget), lt.running, lt.updates)")
    assert not setup.errors, setup.errors
    assert setup.stdout.split() == ["True", "True", "0"]
    spawn(server, "pl-kernel", None, cwd=server.root, agent="hooked")
    fire_hook(server, "pl-kernel", {"hook_event_name": "SessionStart", "session_id": "k"})

    def drawn() -> bool:
        asyncio.get_event_loop().run_until_complete(asyncio.sleep(0.3))
        out = kernel.run("print(sorted(set(lt.frame.loc[lt.frame['session'] == 'pl-kernel',"
                         " 'state'])), lt.updates > 0)").stdout
        return out.strip() == "['idle', 'starting'] True"

    wait_for(drawn, timeout=30, what="the kernel's live timeline to draw pl-kernel")
    names = kernel.run("print(sorted({t.name for t in lt.data}))").stdout
    assert "'idle'" in names and "'starting'" in names
    stopped = kernel.run("lt.stop()\nimport asyncio\nawait asyncio.sleep(0.1)\nprint(lt.running)")
    assert stopped.stdout.strip() == "False", stopped
    server.request("DELETE", "sessions/pl-kernel")


def test_empty_cost_message_is_clear_of_the_subplot_titles() -> None:
    """'no usage yet' was drawn at y=0.5, over the 'Cumulative tokens' title (y=0.46)."""
    fig = plots.cost_over_time(frames.empty("usage_rows"))
    notes = {a.text: a.y for a in fig.layout.annotations}
    message = notes.pop("no usage yet")
    assert notes and all(abs(message - y) > 0.1 for y in notes.values()), (message, notes)
    top = fig.layout.yaxis.domain
    assert top[0] < message < top[1]  # inside the cost plot's own area


def test_live_timeline_sends_the_dates_a_static_figure_has(server: HiveServer) -> None:
    """A live timeline showed a 1970 axis: its bar bases reached plotly.js as '...Z' strings."""
    import json

    from jupyter_client.jsonutil import json_default
    from plotly.serializers import _py_to_js

    since = pd.to_datetime(["2026-12-01T10:00:00Z", "2026-12-01T10:00:05Z"], utc=True)
    trans = pd.DataFrame({
        "id": [1, 2], "session": ["a", "a"], "state": ["starting", "idle"], "since": since,
        "until": pd.Series([since[1], pd.NaT], dtype=since.dtype), "reason": [None, None],
        "tool": [None, None], "source": ["spawn", "hook:Stop"],
        "duration": [pd.Timedelta(seconds=5), pd.NaT]})
    static = json.loads(plots.timeline(trans, now="2026-12-01T10:00:09Z").to_json())
    expected = sorted(b for t in static["data"] for b in t["base"])
    assert expected[0].startswith("2026-12-01T10:00:00")

    def as_sent(widget: go.FigureWidget) -> list[str]:
        """The traces' bases exactly as the kernel's JSON packer writes them to the page."""
        sent = json.loads(json.dumps(_py_to_js(widget._data, None), default=json_default))
        return sorted(b for t in sent for b in t["base"])

    render = lambda t: plots._timeline_figure(t, pd.Timestamp("2026-12-01T10:00:09Z"))  # noqa: E731
    live = plots.LiveFigure(server.client(), lambda prev: trans, render, {"StateChanged"},
                            start=False)
    assert as_sent(live) == expected
    live.redraw(trans)
    assert as_sent(live) == expected
    assert live.layout.xaxis.type == "date"
