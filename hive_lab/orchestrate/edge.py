"""Parsing lists at the edge: one shape for every list a request body may hold."""
from __future__ import annotations

from typing import Any, Callable

from ..core.errors import BadRequest


def parse_list(value: Any, what: str, cap: int, parse_item: Callable[[Any, str], str],
               noun: str) -> tuple[str, ...]:
    """``value`` as a tuple of parsed items, in order, without repeats; None means empty."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list of {noun}")
    if len(value) > cap:
        raise BadRequest(f"{what} has {len(value)} entries; at most {cap}")
    out: list[str] = []
    for item in value:
        parsed = parse_item(item, what)
        if parsed not in out:
            out.append(parsed)
    return tuple(out)
