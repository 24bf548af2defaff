"""Aggregates straight from a :class:`~hive_lab.usage.parse.UsageTally`, for the CLI.

:func:`~hive_lab.usage.parse.aggregate_with_totals` rebuilds a :class:`UsageRow` (with its
``datetime``) per API response and keeps a ``_Sum`` object per group and per model: on
15,000 short sessions that was 0.3 s and ~36 MB. Here each response is unpacked once into
plain numbers (times stay integer microseconds), each group is a short list, and the group
dicts are built one at a time, in report order, as the caller asks for them: the CLI writes
each one out and forgets it.

The result is exactly that of ``aggregate_with_totals(tally.rows(), by, breakdown=...)``
(same rows in the same order, same dict keys, ``fsum`` costs); the tests compare the two.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from .parse import _EPOCH, _PACK, UsageTally, _iso

_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000

# accumulator slots: one list per group (lists index faster than attributes)
_REQ, _IN, _OUT, _W5, _W1H, _READ, _COSTS, _UNKNOWN, _MODELS, _FIRST, _LAST = range(11)


def _new(t: int) -> list[Any]:
    return [0, 0, 0, 0, 0, 0, [], set(), set(), t, t]


def _add(acc: list[Any], t: int, i: int, o: int, w5: int, w1h: int, r: int, cost: float,
         label: str) -> None:
    acc[_REQ] += 1
    acc[_IN] += i
    acc[_OUT] += o
    acc[_W5] += w5
    acc[_W1H] += w1h
    acc[_READ] += r
    if cost != cost:  # NaN: not priced
        acc[_UNKNOWN].add(label)
    else:
        acc[_COSTS].append(cost)
    acc[_MODELS].add(label)
    if t < acc[_FIRST]:
        acc[_FIRST] = t
    elif t > acc[_LAST]:
        acc[_LAST] = t


def _new_merged() -> list[Any]:
    return [0, 0, 0, 0, 0, 0, [], set(), set(), None, None]


def _merge(into: list[Any], acc: list[Any]) -> None:
    for k in (_REQ, _IN, _OUT, _W5, _W1H, _READ):
        into[k] += acc[k]
    into[_COSTS].extend(acc[_COSTS])
    into[_UNKNOWN] |= acc[_UNKNOWN]
    into[_MODELS] |= acc[_MODELS]
    if into[_FIRST] is None or acc[_FIRST] < into[_FIRST]:
        into[_FIRST] = acc[_FIRST]
    if into[_LAST] is None or acc[_LAST] > into[_LAST]:
        into[_LAST] = acc[_LAST]


_DAYS: dict[int, str] = {}  # days since the epoch -> "YYYY-MM-DD" (a report spans few days)
_FOUR_DIGIT_YEARS = (-354_285 * _DAY_US, 2_932_897 * _DAY_US)  # 1000-01-01 .. 9999-12-31


def _time(t: int | None) -> str | None:
    """``_iso`` of ``t`` µs after the epoch, from integers: a report formats two times per
    group, and ``datetime.isoformat`` was a third of the report's time on 13,000 sessions."""
    if t is None:
        return None
    if not _FOUR_DIGIT_YEARS[0] <= t < _FOUR_DIGIT_YEARS[1]:
        return _iso(_EPOCH + t * _US)  # odd years keep _iso's own spelling
    seconds, micro = divmod(t, 1_000_000)
    days, seconds = divmod(seconds, 86_400)
    day = _DAYS.get(days)
    if day is None:
        if len(_DAYS) > 4096:  # bounded whatever the input
            _DAYS.clear()
        day = _DAYS[days] = (_EPOCH + timedelta(days=days)).date().isoformat()
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{day}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micro // 1000:03d}Z"


def _session_order(groups: dict[Any, list[Any]], strings: list[str]
                   ) -> Callable[[Any], tuple[Any, str]]:
    """Sort key of sessions: last activity as :func:`_time` spells it, then the id. Whole
    milliseconds order alike for four-digit years (every real one), with no string made."""
    lasts = [acc[_LAST] for acc in groups.values()]
    if all(_FOUR_DIGIT_YEARS[0] <= t < _FOUR_DIGIT_YEARS[1] for t in lasts):
        return lambda k: (groups[k][_LAST] // 1000, strings[k])
    return lambda k: (_time(groups[k][_LAST]) or "", strings[k])


def _brief_json(acc: list[Any]) -> dict[str, Any]:
    """The members of :func:`_to_json` a report's per-model breakdown shows."""
    w5, w1h = acc[_W5], acc[_W1H]
    return {"input": acc[_IN], "output": acc[_OUT], "cache_write": w5 + w1h,
            "cache_read": acc[_READ], "cost": math.fsum(acc[_COSTS]),
            "cost_complete": not acc[_UNKNOWN]}


def _to_json(acc: list[Any]) -> dict[str, Any]:
    """Same keys, order and values as ``_Sum.to_json``."""
    i, o, w5, w1h, r = acc[_IN], acc[_OUT], acc[_W5], acc[_W1H], acc[_READ]
    return {
        "requests": acc[_REQ],
        "input": i,
        "output": o,
        "cache_write_5m": w5,
        "cache_write_1h": w1h,
        "cache_read": r,
        "cache_write": w5 + w1h,
        "total_tokens": i + o + w5 + w1h + r,
        "cost": math.fsum(acc[_COSTS]),
        "cost_complete": not acc[_UNKNOWN],
        "unknown_models": sorted(acc[_UNKNOWN]),
        "models": sorted(acc[_MODELS]),
        "first": _time(acc[_FIRST]),
        "last": _time(acc[_LAST]),
    }


def aggregate_tally(tally: UsageTally, by: str = "session", breakdown: bool = False,
                    brief: bool = False) -> tuple[Iterator[dict[str, Any]], dict[str, Any], int]:
    """``(groups, totals, count)``: ``groups`` yields the group dicts of
    ``aggregate_with_totals(tally.rows(), by, breakdown=breakdown)`` lazily, in its order;
    ``totals`` is its totals dict (with ``sessions``). Groupings: session, day (UTC), model.
    ``brief`` gives each ``by_model`` entry only what a report shows (:func:`_brief_json`)."""
    if by not in ("session", "day", "model"):
        raise ValueError(f"unknown grouping {by!r}: use session, day or model")
    strings, by_key, unkeyed = tally.state()
    unpack = _PACK.unpack
    labels: dict[tuple[int, int], str] = {}
    days: dict[int, str] = {}
    groups: dict[Any, list[Any]] = {}
    parts: dict[Any, dict[str | None, list[Any]]] = {}
    info: dict[Any, list[Any]] = {}  # session -> [agent, project, time of that project]
    sessions: set[int] = set()
    entries = [*by_key.values(), *(p for _, _, p in unkeyed)]  # the order of tally.rows()
    for packed in entries:
        t, i, o, w5, w1h, r, cost, _flags, _rank, s, p, m, _src, agent, speed = unpack(packed)
        label = labels.get((m, speed))
        if label is None:
            model = strings[m]
            label = labels[(m, speed)] = f"{model}-fast" if strings[speed] == "fast" else model
        if by == "session":
            key: Any = s
        elif by == "model":
            key = label
        else:
            d = t // _DAY_US
            key = days.get(d)
            if key is None:
                key = days[d] = (_EPOCH + t * _US).date().isoformat()
        # with a breakdown, only the per-model sums are added up here; a group's own sum is
        # their merge below (one addition per response instead of two)
        mp = parts.get(key)
        if mp is None:
            mp = parts[key] = {}
            info[key] = [agent, "", None]
        sub = label if breakdown else None
        acc = mp.get(sub)
        if acc is None:
            acc = mp[sub] = _new(t)
        _add(acc, t, i, o, w5, w1h, r, cost, label)
        sessions.add(s)
        if by == "session" and strings[p]:
            meta = info[key]
            if meta[2] is None or t >= meta[2]:
                meta[1], meta[2] = p, t
    grand = _new_merged()
    for key, mp in parts.items():
        if breakdown:
            acc = groups[key] = _new_merged()
            for ms in mp.values():
                _merge(acc, ms)
        else:
            acc = groups[key] = mp.pop(None)
        _merge(grand, acc)
    totals = _to_json(grand)
    totals["sessions"] = len(sessions)
    if by == "session":
        order = sorted(groups, key=_session_order(groups, strings))
    else:
        order = sorted(groups, key=lambda k: (k or "", ""))
    model_json = _brief_json if brief else _to_json

    def build() -> Iterator[dict[str, Any]]:
        for key in order:
            acc = groups.pop(key)
            if by == "session":
                agent, project = info[key][0], info[key][1]
                d = {"session_id": strings[key], "agent": strings[agent],
                     "project": strings[project] if info[key][2] is not None else ""}
            else:
                d = {by: key}
            d.update(_to_json(acc))
            if breakdown:
                d["by_model"] = [{"model": m, **model_json(ms)}
                                 for m, ms in sorted(parts.pop(key).items())]
            yield d

    return build(), totals, len(order)
