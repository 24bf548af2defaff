"""Fetches land in the order they started, part by part.

A live view fetches in a worker thread while a button's blocking refresh (after a start, say)
may fetch the same part on the loop: the worker's answer, begun earlier, can arrive later and
would put back a world without the session just started (its row gone, the talk target lost).
"""
from __future__ import annotations

from typing import Any


class FetchOrder:
    """Numbers fetches as they start; keeps only parts no later-started fetch has applied."""

    def __init__(self) -> None:
        self._started = 0
        self._applied: dict[str, int] = {}

    def start(self) -> int:
        """Call on the loop's thread, just before the fetch begins."""
        self._started += 1
        return self._started

    def newer(self, ticket: int, fresh: dict[str, Any]) -> dict[str, Any]:
        """The parts of ``fresh`` (fetched under ``ticket``) that are not older than applied."""
        kept = {k: v for k, v in fresh.items() if ticket >= self._applied.get(k, 0)}
        self._applied.update(dict.fromkeys(kept, ticket))
        return kept
