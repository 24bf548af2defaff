"""plotly figures of Hive Lab data: cost and tokens over time, tool calls, a state timeline,
an events heat map.

Each function takes the matching frame of :mod:`hive_lab.frames` (or a
:class:`~hive_lab.client.HiveClient`, then it fetches that frame itself, with the filters
given pushed to the server) and returns a ``plotly.graph_objects.Figure``. With ``live=True``
it returns a :class:`LiveFigure` instead: a ``go.FigureWidget`` that redraws itself whenever
a relevant event arrives on the server's stream. It follows the stream in an asyncio task on
the running loop (the kernel's, in a notebook), fetching in a worker thread and touching the
widget only from the loop; ``.stop()`` ends it.

Times are drawn in UTC. State colours are those of the HiveOS panel
(:data:`hive_lab.widgets.render.STATE_COLOURS`).
"""
from __future__ import annotations

import asyncio
import warnings
from datetime import datetime
from collections.abc import Callable, Iterable
from typing import TypeAlias, Any, Literal

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import frames
from .client import HiveAPIError, HiveClient
from .frames import STATES, TimeLike
from .widgets.render import STATE_COLOURS

__all__ = ["cost_over_time", "tokens_over_time", "tool_calls", "timeline", "events_heatmap",
           "LiveFigure", "STATE_COLOURS"]

PALETTE = px.colors.qualitative.Plotly
BUCKETS = ("1s", "10s", "1min", "5min", "15min", "1h", "6h", "1D")
MAX_BUCKETS = 500
TOKEN_KINDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
Data: TypeAlias = "pd.DataFrame | HiveClient"
Fetch = Callable[[pd.DataFrame | None], pd.DataFrame]
Render = Callable[[pd.DataFrame], go.Figure]


# -- live figures ------------------------------------------------------------------------------
class LiveFigure(go.FigureWidget):
    """A ``FigureWidget`` kept current from the event stream.

    ``fetch(previous_frame)`` returns the frame to draw (run in a worker thread, so a slow
    server never blocks the loop); ``render(frame)`` builds the figure. Events named in
    ``triggers`` (every event if ``None``) schedule a redraw, at most one per ``interval``
    seconds. Read ``.frame`` for the data drawn and ``.updates`` for the redraw count.
    """

    def __init__(self, client: HiveClient, fetch: Fetch, render: Render,
                 triggers: Iterable[str] | None, session: str | None = None,
                 interval: float = 0.5, start: bool = True) -> None:
        last_id = int(client.status().get("last_event_id", 0))  # before the fetch: no gap
        frame = fetch(None)
        super().__init__(_for_widget(_keep_ui(render(frame))))
        self._hive_client, self._hive_fetch, self._hive_render = client, fetch, render
        self._hive_triggers = frozenset(triggers) if triggers is not None else None
        self._hive_session, self._hive_interval = session, interval
        self._hive_frame, self._hive_last_id, self._hive_updates = frame, last_id, 0
        self._hive_tasks: list[asyncio.Task[Any]] = []
        self._hive_wake: asyncio.Event | None = None
        if start:
            self.start()

    @property
    def frame(self) -> pd.DataFrame:
        """The data currently drawn."""
        return self._hive_frame

    @property
    def updates(self) -> int:
        """How many times the figure was redrawn from the stream."""
        return self._hive_updates

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._hive_tasks)

    def start(self) -> None:
        """Follow the stream on the running loop (or the thread's loop, if none runs yet)."""
        if self.running:
            return
        loop = _loop()
        self._hive_wake = asyncio.Event()
        self._hive_tasks = [loop.create_task(self._follow()), loop.create_task(self._paint())]

    def stop(self) -> None:
        """Stop following the stream; the figure keeps what it shows."""
        for task in self._hive_tasks:
            task.cancel()

    def redraw(self, frame: pd.DataFrame) -> None:
        """Show ``frame`` (call on the loop's thread only)."""
        fig = _for_widget(_keep_ui(self._hive_render(frame)))
        with self.batch_update():
            self.data = []  # type: ignore[var-annotated]
            self.add_traces(list(fig.data))
            self.layout = fig.layout
        self._hive_frame = frame
        self._hive_updates += 1

    async def _follow(self) -> None:
        triggers = self._hive_triggers
        only = next(iter(triggers)) if triggers is not None and len(triggers) == 1 else None
        async for event in self._hive_client.stream(after=self._hive_last_id,
                                                    session=self._hive_session, event=only):
            self._hive_last_id = max(self._hive_last_id, event["id"])
            if triggers is None or event["event"] in triggers:
                assert self._hive_wake is not None
                self._hive_wake.set()

    async def _paint(self) -> None:
        assert self._hive_wake is not None
        while True:
            await self._hive_wake.wait()
            self._hive_wake.clear()
            try:
                frame = await asyncio.to_thread(self._hive_fetch, self._hive_frame)
            except HiveAPIError:
                frame = None  # server away: keep the picture, try again on the next event
            if frame is not None:
                self.redraw(frame)
            await asyncio.sleep(self._hive_interval)


def _loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return asyncio.get_event_loop()


def _for_widget(fig: go.Figure) -> go.Figure:
    """The figure with its times as plotly's own date strings, as a static figure has them.

    A ``FigureWidget`` hands datetime values to the kernel's JSON packer, which writes naive
    ones as local time with a ``Z`` suffix; plotly.js cannot read those as dates, so a
    timeline's bar bases fell to 0 and the axis showed 1970. Times become the naive strings
    ``fig.to_json()`` writes for a static figure.
    """
    for trace in fig.data:
        for key in ("x", "y", "base"):
            value = trace[key] if key in trace else None
            if isinstance(value, np.ndarray) and value.dtype.kind == "M":
                trace[key] = np.datetime_as_string(value, unit="us")
            elif isinstance(value, (np.ndarray, list, tuple)) and any(
                    isinstance(v, datetime) for v in value):
                trace[key] = [v.replace(tzinfo=None).isoformat() if isinstance(v, datetime) else v
                              for v in value]
    return fig


def _keep_ui(fig: go.Figure) -> go.Figure:
    """Redraws keep the user's zoom and legend toggles."""
    fig.update_layout(uirevision="hive-lab")
    return fig


def _client_of(data: Data, client: HiveClient | None) -> HiveClient | None:
    return data if isinstance(data, HiveClient) else client


def _live(data: Data, client: HiveClient | None, fetch: Fetch, render: Render,
          triggers: Iterable[str] | None, session: str | None, live: bool) -> go.Figure:
    """The static figure, or a :class:`LiveFigure` (which needs a client)."""
    source = _client_of(data, client)
    if not live:
        return render(data if isinstance(data, pd.DataFrame) else fetch(None))
    if source is None:
        raise ValueError("live=True needs a client: pass one as data or as client=")
    if isinstance(data, pd.DataFrame):  # start from the frame given, then fetch what is new
        return LiveFigure(source, lambda prev: fetch(data if prev is None else prev), render,
                          triggers, session=session)
    return LiveFigure(source, fetch, render, triggers, session=session)


# -- helpers -----------------------------------------------------------------------------------
def _utc(times: pd.Series) -> pd.Series:
    """Tz-aware times -> naive UTC (plotly draws those as given)."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None)


def _labels(values: pd.Series, missing: str = "(none)") -> pd.Series:
    return values.astype("string").fillna(missing).astype(object)


def _empty(fig: go.Figure, text: str) -> go.Figure:
    """Say ``text`` in the middle of the (first) plot area, clear of any subplot title."""
    domain = fig.layout.yaxis.domain or (0.0, 1.0)
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5,
                       y=(domain[0] + domain[1]) / 2, font={"size": 14, "color": "#6b7280"})
    return fig


def _check(by: str, allowed: tuple[str, ...]) -> None:
    if by not in allowed:
        raise ValueError(f"by must be one of {', '.join(allowed)}, not {by!r}")


# -- usage ---------------------------------------------------------------------------------------
def _usage_fetch(client: HiveClient | None, session: str | None, since: TimeLike,
                 until: TimeLike) -> Fetch:
    def fetch(previous: pd.DataFrame | None) -> pd.DataFrame:
        assert client is not None
        return frames.usage(client, "rows", session=session, since=since, until=until)
    return fetch


def _cost_figure(rows: pd.DataFrame, by: str) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Cumulative cost (USD)", "Cumulative tokens"))
    unpriced = int(rows["cost"].isna().sum())
    title = f"Cost and tokens by {by}" + (f" ({unpriced} responses not priced)" if unpriced else "")
    fig.update_layout(title=title, hovermode="x unified", legend_title_text=by)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    if rows.empty:
        return _empty(fig, "no usage yet")
    data = rows.sort_values("time", kind="stable").assign(_key=lambda d: _labels(d[by]))
    for i, (key, grp) in enumerate(data.groupby("_key", sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        x = _utc(grp["time"])
        cost = grp["cost"].fillna(0).cumsum().astype(float)
        tokens = grp["total_tokens"].fillna(0).cumsum().astype("int64")
        fig.add_trace(go.Scatter(x=x, y=cost, name=key, legendgroup=key, mode="lines+markers",
                                 line={"shape": "hv", "color": colour}), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=tokens, name=key, legendgroup=key, showlegend=False,
                                 mode="lines+markers", line={"shape": "hv", "color": colour}),
                      row=2, col=1)
    return fig


def cost_over_time(data: Data, by: Literal["session", "model"] = "session", *,
                   session: str | None = None, since: TimeLike = None, until: TimeLike = None,
                   live: bool = False, client: HiveClient | None = None) -> go.Figure:
    """Cumulative cost (top) and tokens (bottom) over time, one line per session or model.

    ``data``: a usage rows frame (``frames.usage(hive)``, ``frames.usage_from_files(...)``)
    or a client (rows fetched with ``session``/``since``/``until``). Traces come in pairs per
    group, named after it: cost on the first axis, total tokens on the second. Responses whose
    model is not priced add 0 to the cost (the title counts them). ``live=True`` redraws on
    every ``UsageUpdated`` event.
    """
    _check(by, ("session", "model"))
    fetch = _usage_fetch(_client_of(data, client), session, since, until)
    return _live(data, client, fetch, lambda rows: _cost_figure(rows, by), {"UsageUpdated"},
                 session, live)


def _tokens_figure(rows: pd.DataFrame, by: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=f"Cumulative tokens by {by}", xaxis_title="time (UTC)",
                      yaxis_title="tokens", hovermode="x unified")
    if rows.empty:
        return _empty(fig, "no usage yet")
    data = rows.sort_values("time", kind="stable")
    if by == "kind":
        x = _utc(data["time"])
        for kind in TOKEN_KINDS:
            fig.add_trace(go.Scatter(x=x, y=data[kind].fillna(0).cumsum().astype("int64"),
                                     name=kind, stackgroup="tokens", mode="lines",
                                     line={"shape": "hv"}))
        return fig
    data = data.assign(_key=lambda d: _labels(d[by]))
    for key, grp in data.groupby("_key", sort=True):
        fig.add_trace(go.Scatter(x=_utc(grp["time"]), y=grp["total_tokens"].cumsum().astype("int64"),
                                 name=key, mode="lines+markers", line={"shape": "hv"}))
    return fig


def tokens_over_time(data: Data, by: Literal["kind", "session", "model"] = "kind", *,
                     session: str | None = None, since: TimeLike = None,
                     until: TimeLike = None, live: bool = False,
                     client: HiveClient | None = None) -> go.Figure:
    """Cumulative tokens over time.

    ``by="kind"``: stacked areas of input, output, cache writes (5 m, 1 h) and cache reads
    over all rows, one trace per kind; ``by="session"``/``"model"``: one line of total tokens
    per group. ``data`` and ``live`` as in :func:`cost_over_time`.
    """
    _check(by, ("kind", "session", "model"))
    fetch = _usage_fetch(_client_of(data, client), session, since, until)
    return _live(data, client, fetch, lambda rows: _tokens_figure(rows, by), {"UsageUpdated"},
                 session, live)


# -- events ------------------------------------------------------------------------------------
def _events_fetch(client: HiveClient | None, **filters: Any) -> Fetch:
    """Fetch once, then only events newer than those already held."""
    def fetch(previous: pd.DataFrame | None) -> pd.DataFrame:
        assert client is not None
        after = int(previous["id"].max()) if previous is not None and len(previous) else 0
        newer = frames.events(client, after=after, **filters)
        return newer if previous is None else frames.concat([previous, newer], "events")
    return fetch


def _tools_figure(events: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title="Tool calls by tool and session", barmode="stack",
                      xaxis_title="tool", yaxis_title="calls", legend_title_text="session")
    calls = events[events["event"] == "PreToolUse"]
    if calls.empty:
        return _empty(fig, "no tool calls yet")
    table = pd.crosstab(_labels(calls["tool"]), _labels(calls["session"]))
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    for session in table.columns:
        fig.add_trace(go.Bar(x=list(table.index), y=table[session].astype(int).tolist(),
                             name=session))
    return fig


def tool_calls(data: Data, *, session: str | None = None, since: TimeLike = None,
               until: TimeLike = None, live: bool = False,
               client: HiveClient | None = None) -> go.Figure:
    """Stacked bars of ``PreToolUse`` events: x = tool (most used first), one trace per session.

    ``data``: an events frame (other events are ignored) or a client (only ``PreToolUse``
    events are fetched). ``live=True`` adds each new tool call as it happens.
    """
    fetch = _events_fetch(_client_of(data, client), session=session, event="PreToolUse",
                          since=since, until=until)
    return _live(data, client, fetch, _tools_figure, {"PreToolUse"}, session, live)


def _bucket_size(times: pd.Series, freq: str | None) -> str:
    """``freq``, or the finest of :data:`BUCKETS` that spans ``times`` in <= MAX_BUCKETS."""
    if freq is not None:
        return freq
    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    return next((f for f in BUCKETS if span / pd.Timedelta(f) < MAX_BUCKETS), BUCKETS[-1])


def _heatmap_figure(events: pd.DataFrame, freq: str | None, y: str) -> go.Figure:
    freq = _bucket_size(events["time"], freq)
    fig = go.Figure()
    fig.update_layout(title=f"Events per {y} and {freq}", xaxis_title="time (UTC)",
                      yaxis_title=y)
    if events.empty:
        return _empty(fig, "no events yet")
    bucket = _utc(events["time"]).dt.floor(freq)
    table = pd.crosstab(_labels(events[y]), bucket)
    span = pd.date_range(bucket.min(), bucket.max(), freq=freq)
    table = table.reindex(columns=span, fill_value=0)
    fig.add_trace(go.Heatmap(z=table.to_numpy().tolist(), x=list(table.columns),
                             y=list(table.index), colorscale="Blues", name="events",
                             hovertemplate="%{y}<br>%{x}<br>%{z} events<extra></extra>"))
    return fig


def events_heatmap(data: Data, freq: str | None = None,
                   y: Literal["session", "event", "agent"] = "session", *,
                   session: str | None = None, event: str | None = None,
                   since: TimeLike = None, until: TimeLike = None, live: bool = False,
                   client: HiveClient | None = None) -> go.Figure:
    """Event counts per ``y`` (session, event or agent) and time bucket of ``freq``.

    One ``Heatmap`` trace: ``z[i][j]`` counts the events of row ``y[i]`` in the bucket
    starting at ``x[j]`` (every bucket between the first and the last event, empty ones 0).
    ``freq`` is a pandas frequency (``"1min"``, ``"1h"``); by default the finest of 1 s,
    10 s, 1 min, 5 min, 15 min, 1 h, 6 h, 1 day that needs fewer than 500 buckets.
    ``data``: an events frame or a client (``session``/``event``/``since``/``until`` go to
    the server). ``live=True`` adds events as they arrive.
    """
    _check(y, ("session", "event", "agent"))
    fetch = _events_fetch(_client_of(data, client), session=session, event=event,
                          since=since, until=until)
    return _live(data, client, fetch, lambda ev: _heatmap_figure(ev, freq, y),
                 {event} if event else None, session, live)


# -- states ------------------------------------------------------------------------------------
def _timeline_figure(trans: pd.DataFrame, now: pd.Timestamp | None) -> go.Figure:
    if trans.empty:
        fig = go.Figure()
        fig.update_layout(title="Session states", xaxis={"type": "date", "title": "time (UTC)"})
        return _empty(fig, "no transitions yet")
    now = now or pd.Timestamp.now(tz="UTC")
    end = trans["until"].fillna(now)
    end = end.where(end >= trans["since"], trans["since"])
    sessions = list(dict.fromkeys(_labels(trans["session"])))
    plot = pd.DataFrame({
        "session": _labels(trans["session"]), "state": _labels(trans["state"]),
        "since": _utc(trans["since"]), "until": _utc(end),
        "reason": _labels(trans["reason"], ""), "tool": _labels(trans["tool"], ""),
        "source": _labels(trans["source"], ""),
        "duration": [str(d).split(".")[0] if pd.notna(d) else "ongoing"
                     for d in trans["duration"]],
    })
    fig = px.timeline(plot, x_start="since", x_end="until", y="session", color="state",
                      color_discrete_map=STATE_COLOURS,
                      category_orders={"state": list(STATES), "session": sessions},
                      hover_data=["reason", "tool", "source", "duration"],
                      title="Session states")
    fig.update_layout(xaxis_title="time (UTC)", legend_title_text="state")
    return fig


def timeline(data: Data, *, session: str | None = None, now: Any = None, live: bool = False,
             client: HiveClient | None = None) -> go.Figure:
    """Each session's states over time as a Gantt chart (``px.timeline``).

    ``data``: a transitions frame or a client (``session`` goes to the server). One bar per
    transition, from ``since`` to ``until``; the current state runs to ``now`` (default: the
    time of drawing). One trace per state present, coloured as in the HiveOS panel; rows are
    sessions, in order of first appearance. ``live=True`` redraws on every ``StateChanged``.
    """
    source = _client_of(data, client)

    def fetch(previous: pd.DataFrame | None) -> pd.DataFrame:
        assert source is not None
        if previous is None or previous.empty:
            return frames.transitions(source, session=session)
        newer = frames.transitions(source, session=session, after=int(previous["id"].max()))
        return frames.with_spans(frames.concat([previous, newer], "transitions"))

    stamp = pd.Timestamp(now) if now is not None else None
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return _live(data, client, fetch, lambda t: _timeline_figure(t, stamp), {"StateChanged"},
                 session, live)
