"""The control room as a page of its own: the notebook Voilà renders, and what its cell builds.

``hive-lab dashboard`` points a browser at ``<server>/voila/render/<notebook>``: Voilà runs as
an extension of the same Jupyter server, so the page sits behind the server's own token or
password (no second login, nothing exposed without it). The notebook is made here, in one
place, for both ``scripts/make_notebooks.py`` (``notebooks/Dashboard.ipynb``) and the CLI (which
writes it into the server's root when that has none).
"""
from __future__ import annotations

import html
import importlib
import inspect
import json
from typing import Any

NOTEBOOK_NAME = "Dashboard.ipynb"
TITLE = "Hive Lab control room"
CELL = "from hive_lab.widgets.dashboard import control_room\ncontrol_room()"


def notebook_json() -> dict[str, Any]:
    """The dashboard notebook (nbformat 4), as plain JSON."""
    def cell(kind: str, text: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cell_type": kind, "id": f"dashboard-{kind}", "metadata": {},
                               "source": text}
        if kind == "code":
            out.update(execution_count=None, outputs=[])
        return out

    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}},
        "cells": [cell("markdown", f"# {TITLE}\n\nEverything below is live from the Hive Lab "
                                   "server's event stream. Opened by `hive-lab dashboard` as a "
                                   "page of its own (Voilà), or run here in JupyterLab."),
                  cell("code", CELL)]}


def notebook_text() -> str:
    return json.dumps(notebook_json(), indent=1) + "\n"


def _contains(widget: Any, kind: type) -> bool:
    if isinstance(widget, kind):
        return True
    return any(_contains(child, kind) for child in getattr(widget, "children", ()) or ())


def control_room(client: Any = None, live: Any = None) -> Any:
    """The whole control room on one shared :class:`LiveState`.

    Part A's ``ControlRoom`` (Needs you, fleet, detail) comes first when it exists; the task
    board, money and time, and the start form are added as tabs unless it already has them.
    """
    import ipywidgets as W

    from .board import TaskBoard
    from .live import LiveState
    from .money import MoneyView
    from .pipes import PipelineView
    from .start import StartForm

    live = live or LiveState(client)
    room: Any = None
    try:  # part A's room (another branch until merged)
        room_module: Any = importlib.import_module(".room", __package__)
    except ImportError:
        room_module = None
    control_room_cls: Any = getattr(room_module, "ControlRoom", None)
    if control_room_cls is not None:
        params = inspect.signature(control_room_cls).parameters
        room = (control_room_cls(live=live) if "live" in params
                else control_room_cls(live.client))
    mine: list[tuple[str, Any]] = []
    for title, kind in (("Tasks", TaskBoard), ("Pipelines & merges", PipelineView),
                        ("Money and time", MoneyView), ("Start an agent", StartForm)):
        if room is None or not _contains(room, kind):
            try:
                mine.append((title, kind(live)))
            except Exception as exc:  # one broken view must not take the page down
                mine.append((title, W.HTML(f"<div style='color:#dc2626'>{title}: "
                                           f"{html.escape(repr(exc))}</div>")))
    if not mine:
        return room
    tabs = W.Tab(children=[view for _, view in mine])
    for i, (title, _) in enumerate(mine):
        tabs.set_title(i, title)
    tabs.add_class("hive-dashboard-tabs")
    box = W.VBox([room, tabs] if room is not None else [tabs])
    box.add_class("hive-control-room")
    box.live = live  # type: ignore[attr-defined]
    return box
