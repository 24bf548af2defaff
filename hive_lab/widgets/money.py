"""Money and time: fleet cost and tokens over time, budgets as gauges with their forecast, and
a state timeline of every agent, all live from the control room's :class:`LiveState`.

Why these shapes: the cost chart only ever grows, so a new point is appended to the traces'
arrays in place (one restyle of ``x``/``y``; the figure, its zoom and legend are never rebuilt);
gauges are rebuilt only when the set of budgets changes, otherwise their value and text are set;
the timeline is redrawn when a session's state changed (its bars change shape), from
transitions fetched incrementally in a worker thread. Times are UTC, as in :mod:`hive_lab.plots`.
"""
from __future__ import annotations

import asyncio
import time
import html
import math
from copy import deepcopy
from datetime import datetime, timezone
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import frames, plots
from ..client import HiveAPIError
from .board import Live

PARTS = frozenset({"usage", "budgets", "sessions"})
MAX_POINTS = 5000  # oldest points drop off the cost chart beyond this
GAUGES_PER_ROW = 3
LEVEL_COLOURS = {"ok": "#059669", "warn": "#d97706", "paused": "#dc2626", "ceiling": "#7f1d1d"}


# -- pure helpers (tested alone) ------------------------------------------------------------
def fleet_totals(usage: dict[str, Any]) -> tuple[float, int]:
    """(dollars, tokens) of the whole fleet from ``live.data.usage`` (rows by session)."""
    dollars, tokens = 0.0, 0
    for row in (usage or {}).values():
        cost = row.get("knownCost", row.get("totalCost"))
        if isinstance(cost, (int, float)) and math.isfinite(cost):
            dollars += float(cost)
        total = row.get("totalTokens")
        if isinstance(total, int):
            tokens += total
    return dollars, tokens


def amount_text(budget: dict[str, Any]) -> str:
    """The limit of the dimension nearest its end: ``$50``, ``200,000 tokens``, ``30 min``."""
    by = budget.get("by")
    for dim in ([by] if by else []) + ["dollars", "tokens", "minutes"]:
        value = budget.get(dim)
        if value is None:
            continue
        if dim == "dollars":
            return f"${value:,.2f}".replace(".00", "")
        if dim == "tokens":
            return f"{int(value):,} tokens"
        return f"{value:g} min"
    return "its limit"


def forecast_text(budget: dict[str, Any], now: datetime | None = None) -> str:
    """What the gauge says under its number: ``reaches $50 at 15:40 UTC`` and the like."""
    level = budget.get("level")
    amount = amount_text(budget)
    if level == "ceiling":
        return f"past its ceiling ({amount}): agent stopped"
    if level == "paused":
        return f"reached {amount}: paused until raised"
    forecast = budget.get("forecast")
    if not forecast:
        return f"{amount}: not reached at the current rate"
    try:
        when = datetime.fromisoformat(forecast).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return f"{amount}: forecast unknown"
    now = now or datetime.now(timezone.utc)
    fmt = "%H:%M" if when.date() == now.date() else "%b %d %H:%M"
    return f"reaches {amount} at {when.strftime(fmt)} UTC"


def budget_title(budget: dict[str, Any]) -> str:
    scope, key, window = budget.get("scope"), budget.get("key"), budget.get("window")
    who = "fleet" if scope == "fleet" else f"{scope} {key}"
    who += {"day": " / day", "5h": " / 5h"}.get(str(window), "")
    return html.escape(who)


def cumulative(rows: pd.DataFrame) -> tuple[list[str], list[float], list[int]]:
    """Usage rows -> (times, running dollars, running tokens) for the cost chart's seed."""
    if rows.empty:
        return [], [], []
    rows = rows.sort_values("time", kind="stable")
    times = rows["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    dollars = rows["cost"].astype("Float64").fillna(0.0).cumsum()
    tokens = rows["total_tokens"].astype("Int64").fillna(0).cumsum()
    return ([t.isoformat() for t in times], [float(v) for v in dollars],
            [int(v) for v in tokens])


RESYNC_SECONDS = 3.0
# The state timeline is redrawn whole (one trace per state): at most this often. Redrawn on
# every round, 50 agents at 20 events/s took the room's event latency from 165 ms to 2.3 s
# p95 and a 1+1 cell from 58 to 214 ms p95 (benchmarks/bench_room.py, same quiet machine).
TIMELINE_SECONDS = 5.0


def resync(fig: go.FigureWidget) -> None:
    """Make the widget's synced state the figure as it is now.

    A FigureWidget syncs its data only when it is displayed on its own (``_repr_mimebundle_``
    does this); inside a VBox, changes reach the page only as messages to views that exist.
    A view made later (Voila's page, which connects once the notebook has run) would start
    from the state at construction: empty charts. Only until a view has drawn the figure:
    after that, Python -> JS messages keep it current, and replacing the synced state under a
    live view made plotly's JS drop later trace updates (seen in the control room)."""
    fig._widget_layout = deepcopy(fig._layout_obj._props)  # type: ignore[attr-defined]
    fig._widget_data = deepcopy(fig._data)  # type: ignore[attr-defined]


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()


# -- the view ---------------------------------------------------------------------------------
class MoneyView(W.VBox):
    """Fleet spend over time, budget gauges with forecasts, and the agents' state timeline."""

    def __init__(self, live: Live, seed: bool = True, **kwargs: Any) -> None:
        self.live = live
        self.client = live.client
        self.points = 0  # points appended live (tests read it)
        self.timeline_redraws = 0
        self.gauge_rebuilds = 0
        self._totals: tuple[float, int] | None = None
        self._budget_ids: tuple[str, ...] | None = None
        self._budgets_drawn: dict[str, Any] | None = None
        self._states: tuple[tuple[str, str], ...] | None = None
        self._transitions: pd.DataFrame | None = None
        self._timeline_busy = False
        self._timeline_again = False
        self._timeline_at = 0.0  # monotonic time of the last redraw
        self._unsynced: dict[int, go.FigureWidget] = {}
        self._resync_handle: asyncio.TimerHandle | None = None
        self._viewed: set[int] = set()  # figures a page has drawn: messages keep them current

        spend = make_subplots(specs=[[{"secondary_y": True}]])
        spend.add_trace(go.Scatter(x=[], y=[], name="cost ($)", mode="lines+markers",
                                   line={"shape": "hv", "color": "#2563eb"}), secondary_y=False)
        spend.add_trace(go.Scatter(x=[], y=[], name="tokens", mode="lines",
                                   line={"shape": "hv", "color": "#d97706", "dash": "dot"}),
                        secondary_y=True)
        spend.update_layout(title="Fleet cost and tokens", height=300, uirevision="hive-money",
                            margin={"l": 50, "r": 50, "t": 40, "b": 40},
                            legend={"orientation": "h", "y": -0.25},
                            xaxis={"type": "date", "title": "time (UTC)"})
        spend.update_yaxes(title_text="dollars", secondary_y=False, rangemode="tozero")
        spend.update_yaxes(title_text="tokens", secondary_y=True, rangemode="tozero")
        self.spend = go.FigureWidget(spend)
        self.gauges = go.FigureWidget(go.Figure(layout={"height": 220, "title": "Budgets",
                                                        "margin": {"l": 30, "r": 30, "t": 50,
                                                                   "b": 10}}))
        self.timeline = go.FigureWidget(go.Figure(layout={
            "title": "Session states", "height": 320, "xaxis": {"type": "date",
                                                                "title": "time (UTC)"}}))
        self.budget_text = W.HTML()
        super().__init__([W.HTML("<h4 style='margin:6px 0'>Money and time</h4>"), self.spend,
                          self.gauges, self.budget_text, self.timeline], **kwargs)
        self.add_class("hive-money")
        if seed:
            self._seed()
        self.update(set(PARTS), initial=True)
        for fig in (self.spend, self.gauges, self.timeline):
            resync(fig)
            self._watch(fig)
        live.on_change(self.update)

    def _watch(self, fig: go.FigureWidget) -> None:
        """Note when a view has drawn ``fig`` (it reports its trace/layout deltas then)."""
        def drawn(change: dict[str, Any]) -> None:
            if change.get("new"):
                self._viewed.add(id(fig))
        fig.observe(drawn, names=["_js2py_traceDeltas", "_js2py_layoutDelta"])

    def _dirty(self, fig: go.FigureWidget) -> None:
        """Resync ``fig``'s full state soon (at most every RESYNC_SECONDS), until viewed."""
        if id(fig) in self._viewed:
            return
        self._unsynced[id(fig)] = fig
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        if self._resync_handle is None:
            self._resync_handle = loop.call_later(RESYNC_SECONDS, self._flush)

    def _flush(self) -> None:
        self._resync_handle = None
        for fig in list(self._unsynced.values()):
            if id(fig) not in self._viewed:
                resync(fig)
        self._unsynced.clear()

    # -- seed -----------------------------------------------------------------------------
    def _seed(self) -> None:
        """The history before the view existed (one fetch, at construction)."""
        try:
            rows = frames.usage_rows_frame(self.client.usage_rows())
        except HiveAPIError:
            return
        x, dollars, tokens = cumulative(rows)
        with self.spend.batch_update():
            self.spend.data[0].x, self.spend.data[0].y = x, dollars
            self.spend.data[1].x, self.spend.data[1].y = x, tokens
        if dollars:
            self._totals = (dollars[-1], tokens[-1])

    # -- drawing ---------------------------------------------------------------------------
    def update(self, parts: set[str], initial: bool = False) -> None:
        """Redraw only what the changed parts touch."""
        data = self.live.data
        if "usage" in parts:
            self.add_point(*fleet_totals(getattr(data, "usage", None) or {}))
        if "budgets" in parts:
            self.draw_budgets(getattr(data, "budgets", None) or {})
        if "sessions" in parts:
            states = tuple(sorted((str(s.get("name")), str((s.get("state") or {}).get("name")))
                                  for s in getattr(data, "sessions", None) or []))
            if states != self._states:
                self._states = states
                self.refresh_timeline(wait=initial)

    def add_point(self, dollars: float, tokens: int, at: str | None = None) -> bool:
        """Append the fleet's totals now, if they changed (the traces grow in place)."""
        if self._totals is not None and (round(dollars, 9), tokens) == (
                round(self._totals[0], 9), self._totals[1]):
            return False
        self._totals = (dollars, tokens)
        at = at or _now_iso()
        cost, toks = self.spend.data[0], self.spend.data[1]
        # numpy arrays: plotly validates a list element by element on every assignment
        # (33 ms at 2000 points), an array in one go
        x = np.append(np.asarray(cost.x if cost.x is not None else (), dtype=str),
                      at)[-MAX_POINTS:]
        y = np.append(np.asarray(cost.y if cost.y is not None else (), dtype=float),
                      dollars)[-MAX_POINTS:]
        t = np.append(np.asarray(toks.y if toks.y is not None else (), dtype=float),
                      tokens)[-MAX_POINTS:]
        with self.spend.batch_update():
            cost.x, cost.y = x, y
            toks.x, toks.y = x, t
        self.points += 1
        self._dirty(self.spend)
        return True

    def draw_budgets(self, report: dict[str, Any]) -> None:
        if report == self._budgets_drawn:
            return  # the same report (a refetch, or a second subscriber): nothing to send
        self._budgets_drawn = report
        budgets = [b for b in report.get("budgets") or [] if isinstance(b, dict)]
        ids = tuple(str(b.get("id")) for b in budgets)
        lines = []
        for b in budgets:
            colour = LEVEL_COLOURS.get(str(b.get("level")), "#6b7280")
            lines.append(f"<li class='hive-budget' data-level='{html.escape(str(b.get('level')))}'>"
                         f"<b style='color:{colour}'>{budget_title(b)}</b>: "
                         f"{html.escape(str(b.get('summary', '')))}; "
                         f"<span class='hive-forecast'>{html.escape(forecast_text(b))}</span>"
                         "</li>")
        self.budget_text.value = ("<ul class='hive-list'>" + "".join(lines) + "</ul>" if lines
                                  else "<div class='hive-muted'>no budgets set</div>")
        if ids != self._budget_ids:
            self._budget_ids = ids
            self.gauge_rebuilds += 1
            rows = max(1, math.ceil(len(budgets) / GAUGES_PER_ROW))
            traces = []
            for i in range(len(budgets)):
                row, col = divmod(i, GAUGES_PER_ROW)
                width = 1.0 / GAUGES_PER_ROW
                traces.append(go.Indicator(
                    mode="gauge+number", domain={
                        "x": [col * width + 0.02, (col + 1) * width - 0.02],
                        "y": [1 - (row + 1) / rows + 0.08, 1 - row / rows - 0.12]},
                    number={"suffix": "%", "valueformat": ".0f"}))
            with self.gauges.batch_update():
                self.gauges.data = []
                if traces:
                    self.gauges.add_traces(traces)
                self.gauges.layout.height = 60 + 200 * rows if budgets else 80
                self.gauges.layout.annotations = [] if budgets else [
                    {"text": "no budgets set", "showarrow": False, "xref": "paper",
                     "yref": "paper", "x": 0.5, "y": 0.5}]
        with self.gauges.batch_update():
            for trace, b in zip(self.gauges.data, budgets):
                fraction = float(b.get("fraction") or 0.0)
                ceiling = float(b.get("ceiling") or 1.5)
                trace.value = round(fraction * 100, 1)
                trace.title = {"text": f"{budget_title(b)}<br><span style='font-size:11px'>"
                                       f"{html.escape(forecast_text(b))}</span>",
                               "font": {"size": 13}}
                trace.gauge = {
                    "axis": {"range": [0, max(100.0, ceiling * 100)]},
                    "bar": {"color": LEVEL_COLOURS.get(str(b.get("level")), "#2563eb")},
                    "steps": [{"range": [float(b.get("warn_at") or 0.8) * 100, 100],
                               "color": "#fef3c7"},
                              {"range": [100, max(100.0, ceiling * 100)], "color": "#fee2e2"}],
                    "threshold": {"line": {"color": "#dc2626", "width": 3}, "value": 100}}
        self._dirty(self.gauges)

    # -- the timeline ------------------------------------------------------------------------
    def _fetch_transitions(self) -> pd.DataFrame:
        previous = self._transitions
        if previous is None or previous.empty:
            return frames.transitions(self.client)
        newer = frames.transitions(self.client, after=int(previous["id"].max()))
        return frames.with_spans(frames.concat([previous, newer], "transitions"))

    def refresh_timeline(self, wait: bool = False) -> None:
        """Refetch transitions (off the loop when one runs, unless ``wait``: the first
        drawing, at construction) and redraw the timeline."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or wait:
            try:
                self.draw_timeline(self._fetch_transitions())
            except HiveAPIError:
                pass
            return
        if self._timeline_busy:
            self._timeline_again = True
            return
        self._timeline_busy = True

        async def go_fetch() -> None:
            try:
                while True:
                    wait = self._timeline_at + TIMELINE_SECONDS - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)  # changes meanwhile join this redraw
                    self._timeline_again = False
                    try:
                        frame = await asyncio.to_thread(self._fetch_transitions)
                    except HiveAPIError:
                        return
                    self.draw_timeline(frame)
                    if not self._timeline_again:
                        return
            finally:
                self._timeline_busy = False

        task = loop.create_task(go_fetch())
        _keep.add(task)
        task.add_done_callback(_keep.discard)

    def draw_timeline(self, frame: pd.DataFrame) -> None:
        self._transitions = frame
        self._timeline_at = time.monotonic()
        fig = plots._for_widget(plots._keep_ui(plots.timeline(frame)))
        fig.update_layout(height=max(260, 140 + 26 * max(1, frame["session"].nunique()
                                                           if len(frame) else 1)))
        with self.timeline.batch_update():
            self.timeline.data = []
            self.timeline.add_traces(list(fig.data))
            self.timeline.layout = fig.layout
        self.timeline_redraws += 1
        self._dirty(self.timeline)


_keep: set["asyncio.Task[Any]"] = set()
