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
    patches = 0  # updates sent as a patch (tests and benchmarks read it)

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        """Send only the rows that changed when the agents are the same ones.

        At 20 events/s the whole list (50 rows, ~30 kB) went to the page ~7 times a second,
        and that traffic shares the kernel's iopub channel with cell replies. The trait is
        still updated (a page opened later gets the current rows) but not sent; the page
        merges the patch into its copy."""
        old = {r.get("name"): r for r in self.rows}
        changed = [r for r in rows if old.get(r.get("name")) != r]
        if not changed and len(old) == len(rows):
            return
        same = [r.get("name") for r in rows] == [r.get("name") for r in self.rows]
        if self.comm is None or not same or len(changed) > len(rows) // 2:
            self.rows = rows
            return
        with self._lock_property(rows=rows):  # the page gets the patch below instead
            self.rows = rows
        self.send({"rows_patch": changed})
        self.patches += 1


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
