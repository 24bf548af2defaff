"""Reading the Gemini CLI's own ``/stats model`` table off its screen (0.61.0).

The table has one column per model; rows ``Requests``, ``Total``, ``↳ Input`` (prompt minus
cached), ``↳ Cache Reads``, ``↳ Thoughts``, ``↳ Output``, then ``Roles`` with per-role
(``main``, ``utility_router``) ``↳ Requests/Input/Output/Cache Reads`` ("-" where a model had
no call in that role). Wide terminals keep the columns on one line each.
"""
from __future__ import annotations

import re

_COLS = re.compile(r"\s{2,}")
_FIELDS = {"Requests": "requests", "Total": "total", "Input": "input",
           "Cache Reads": "cache_reads", "Thoughts": "thoughts", "Output": "output"}


def _number(cell: str) -> int | None:
    m = re.match(r"[\d,]+", cell)
    return int(m.group(0).replace(",", "")) if m else None


def parse_model_stats(screen: str) -> dict[str, dict]:
    """``{model: {requests, total, input, cache_reads, thoughts, output,
    roles: {role: {requests, input, output, cache_reads}}}}``; {} if no table is on screen."""
    lines = [ln.strip().strip("│").strip() for ln in screen.splitlines()]
    try:
        head = next(i for i, ln in enumerate(lines) if ln.startswith("Metric "))
    except StopIteration:
        return {}
    models = _COLS.split(lines[head])[1:]
    out: dict[str, dict] = {m: {"roles": {}} for m in models}
    role: str | None = None
    for ln in lines[head + 1:]:
        if not ln or ln.startswith("─"):
            if not ln and role is not None:
                break
            continue
        cells = _COLS.split(ln)
        label = cells[0].lstrip("↳").strip()
        if len(cells) == 1:
            if label not in ("API", "Tokens", "Roles"):
                role = label
            continue
        if label not in _FIELDS or len(cells) != len(models) + 1:
            continue
        for model, cell in zip(models, cells[1:]):
            n = _number(cell)
            if n is None:
                continue
            target = out[model]["roles"].setdefault(role, {}) if role else out[model]
            target[_FIELDS[label]] = n
    return out
