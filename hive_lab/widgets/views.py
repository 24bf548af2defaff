"""The control room's custom views (anywidget): Needs you, the fleet, a terminal, a diff.

One ESM file and one stylesheet, shipped inside the package (``static/``), nothing from a CDN,
so the room works offline. Each view is chosen by its ``kind``; the data is plain JSON in
synced traits and the page sets every agent string with ``textContent`` (never as markup).
Messages from the page (a button, a key) arrive in :meth:`_on_msg` on the kernel's loop.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import anywidget
import traitlets as T

STATIC = Path(__file__).parent / "static"

Handler = Callable[[dict[str, Any]], None]


class _View(anywidget.AnyWidget):  # type: ignore[misc]
    _esm = STATIC / "room.js"
    _css = STATIC / "room.css"
    kind = T.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers: list[Handler] = []
        self.on_msg(self._on_msg)

    def on_action(self, handler: Handler) -> None:
        """Call ``handler(message)`` for each message the page sends (button, key)."""
        self._handlers.append(handler)

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict):
            for handler in self._handlers:
                handler(content)


class NeedsView(_View):
    """The cards of :mod:`hive_lab.widgets.needs`, their answers, notifications and keys."""

    kind = T.Unicode("needs").tag(sync=True)
    cards = T.List(T.Dict()).tag(sync=True)
    status = T.Dict().tag(sync=True)  # card key -> {"ok", "message"} after an answer
    notify = T.Bool(True).tag(sync=True)  # browser Notification when a new card arrives
    sound = T.Bool(False).tag(sync=True)


class FleetView(_View):
    kind = T.Unicode("fleet").tag(sync=True)
    rows = T.List(T.Dict()).tag(sync=True)
    selected = T.Unicode("").tag(sync=True)


class TerminalView(_View):
    kind = T.Unicode("terminal").tag(sync=True)
    name = T.Unicode("").tag(sync=True)
    text = T.Unicode("").tag(sync=True)  # the pane with SGR escapes (rendered as spans)
    version = T.Int(0).tag(sync=True)
    visible = T.Bool(False).tag(sync=True)  # set by the page: the terminal is on screen


class DiffView(_View):
    kind = T.Unicode("diff").tag(sync=True)
    files = T.List(T.Dict()).tag(sync=True)
    note = T.Unicode("").tag(sync=True)
    empty = T.Unicode("No changes against the base.").tag(sync=True)


MAX_DIFF_LINES = 4000


def split_diff(text: str, max_lines: int = MAX_DIFF_LINES) -> list[dict[str, Any]]:
    """A unified diff as one entry per file: path, lines, counts (at most ``max_lines``)."""
    files: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    total = 0
    for line in text.splitlines():
        if line.startswith("diff --git "):
            parts = line.split(" b/", 1)
            current = {"path": parts[1] if len(parts) == 2 else line[11:], "lines": [],
                       "added": 0, "removed": 0}
            files.append(current)
            continue
        if current is None or line.startswith(("index ", "--- ", "+++ ", "new file mode",
                                                "deleted file mode", "similarity ", "rename ")):
            continue
        if total >= max_lines:
            continue
        total += 1
        current["lines"].append(line)
        if line.startswith("+"):
            current["added"] += 1
        elif line.startswith("-"):
            current["removed"] += 1
    return files
