"""pandas DataFrames of a Hive Lab server's data: sessions, events, transitions, git, usage.

Every function takes a :class:`~hive_lab.client.HiveClient` (``hive_lab.connect()`` returns
one) and asks the server only for what it needs: filters (session, event type, time range)
travel as query parameters, so nothing is downloaded to be thrown away here. The
:class:`Frames` accessor binds the same functions to one client (``Frames(hive).events()``).

Frames have a fixed, documented column order and exact dtypes, empty or not:

- times are tz-aware UTC (``datetime64[ns, UTC]``), spans ``timedelta64[ns]``;
- states, agents, models, event names, tools and state sources are ``category``
  (``state`` always has the categories of :data:`hive_lab.wire.STATES`, in that order; a
  task's ``state`` those of :data:`hive_lab.wire.TASK_STATES`);
- counts, ids and exit statuses are nullable ``Int64``, costs nullable ``Float64``, flags
  nullable ``boolean``, text ``string`` (``pd.NA`` when absent); lists and payloads ``object``.

``usage_from_files`` reads transcripts straight from disk, with no server at all.
"""
from __future__ import annotations

import math
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pandas as pd

if TYPE_CHECKING:  # the client builds frames lazily (client.frames): no import circle
    from .client import HiveClient
from .wire import MERGE_STATES, STATES, TASK_STATES

__all__ = [
    "Frames", "sessions", "events", "transitions", "git", "git_files", "overlaps",
    "conflicts", "usage", "usage_from_files", "tasks", "attempts", "merges", "SCHEMAS", "empty", "concat",
    "with_spans", "STATES", "TASK_STATES",
]

UsageBy = Literal["rows", "session", "day", "model", "block"]
TimeLike: TypeAlias = "str | float | int | datetime | timedelta | pd.Timestamp | None"

TIME = "datetime64[ns, UTC]"
SPAN = "timedelta64[ns]"
PAGE = 10000  # the server's largest page of events or transitions

# -- schemas: column -> kind, in display order ---------------------------------------------
# kinds: "time", "span", "state", "task_state", "category", "string", "Int64", "Float64", "boolean", "object"
_TOKENS = [("input", "Int64"), ("output", "Int64"), ("cache_write_5m", "Int64"),
           ("cache_write_1h", "Int64"), ("cache_read", "Int64"), ("total_tokens", "Int64")]
_AGG = [("requests", "Int64"), ("input", "Int64"), ("output", "Int64"),
        ("cache_write", "Int64"), ("cache_write_5m", "Int64"), ("cache_write_1h", "Int64"),
        ("cache_read", "Int64"), ("total_tokens", "Int64"), ("cost", "Float64"),
        ("known_cost", "Float64"), ("cost_complete", "boolean"), ("unknown_models", "object")]

SCHEMAS: dict[str, list[tuple[str, str]]] = {
    "sessions": [
        ("name", "string"), ("agent", "category"), ("state", "state"), ("reason", "string"),
        ("tool", "category"), ("source", "category"), ("since", "time"),
        ("exit_status", "Int64"), ("detail", "string"), ("created", "time"), ("pid", "Int64"),
        ("pane_id", "string"), ("cwd", "string"), ("command", "string"),
        ("worktree", "string"), ("branch", "string"), ("external", "boolean"),
        ("agent_session_id", "string"), ("transcript_path", "string"),
    ],
    "events": [
        ("id", "Int64"), ("time", "time"), ("received", "time"), ("session", "category"),
        ("agent", "category"), ("event", "category"), ("tool", "category"),
        ("tool_use_id", "string"), ("agent_session_id", "string"), ("summary", "string"),
        ("payload", "object"),
    ],
    "transitions": [
        ("id", "Int64"), ("event_id", "Int64"), ("session", "category"), ("state", "state"),
        ("reason", "string"), ("tool", "category"), ("source", "category"),
        ("since", "time"), ("until", "time"), ("duration", "span"), ("exit_status", "Int64"),
    ],
    "git": [
        ("session", "string"), ("branch", "string"), ("head", "string"),
        ("ahead", "Int64"), ("behind", "Int64"), ("dirty", "boolean"),
        ("staged", "Int64"), ("unstaged", "Int64"), ("untracked", "Int64"),
        ("committed", "Int64"), ("merges_cleanly", "boolean"), ("merge_conflicts", "object"),
        ("last_commit_sha", "string"), ("last_commit_subject", "string"),
        ("last_commit_author", "string"), ("last_commit_time", "time"),
        ("base_ref", "string"), ("base_sha", "string"), ("base_tip", "string"),
        ("base_missing", "boolean"), ("merge_base", "string"), ("worktree", "string"),
        ("repo", "string"),
    ],
    "git_files": [
        ("session", "string"), ("kind", "category"), ("path", "string"),
        ("status", "category"), ("added", "Int64"), ("removed", "Int64"),
    ],
    "overlaps": [
        ("path", "string"), ("session", "string"), ("committed", "boolean"), ("repo", "string"),
        ("sessions", "object"),
    ],
    "conflicts": [
        ("session_a", "string"), ("session_b", "string"), ("path", "string"),
        ("head_a", "string"), ("head_b", "string"), ("repo", "string"),
    ],
    "usage_rows": [
        ("time", "time"), ("session", "category"), ("agent_session_id", "string"),
        ("agent", "category"), ("model", "category"), ("speed", "category"),
        ("project", "string"), *_TOKENS, ("cost", "Float64"), ("sidechain", "boolean"),
        ("message_id", "string"), ("request_id", "string"), ("source", "string"),
    ],
    "usage_session": [
        ("session", "category"), ("agent", "category"), ("project", "string"),
        ("first", "time"), ("last", "time"), *_AGG, ("models", "object"),
    ],
    "usage_day": [("day", "time"), *_AGG, ("models", "object")],
    "tasks": [
        ("id", "string"), ("title", "string"), ("state", "task_state"), ("reason", "string"),
        ("why", "string"), ("since", "time"), ("created", "time"), ("priority", "Int64"),
        ("agent", "category"), ("requires", "object"), ("scope", "object"),
        ("shared", "object"), ("depends_on", "object"), ("check", "string"),
        ("max_attempts", "Int64"), ("attempts", "Int64"), ("round", "Int64"),
        ("violations", "Int64"), ("guard_degraded", "Int64"), ("cost", "Float64"),
        ("session", "string"), ("branch", "string"), ("base", "string"),
        ("worktree", "string"), ("repo", "string"), ("prompt", "string"),
    ],
    "attempts": [
        ("task", "string"), ("n", "Int64"), ("id", "Int64"), ("session", "string"),
        ("profile", "category"), ("started", "time"), ("ended", "time"),
        ("duration", "span"), ("outcome", "category"), ("reason", "string"),
        ("rounds", "Int64"), ("cost", "Float64"), ("check_tail", "string"),
    ],
    "notifications": [
        ("id", "Int64"), ("kind", "category"), ("session", "string"), ("task", "string"),
        ("title", "string"), ("body", "string"), ("created", "time"), ("read", "time"),
        ("escalated", "time"), ("resolved", "time"), ("delivered", "object"),
        ("attempts", "Int64"), ("pending", "object"), ("last_error", "string"),
    ],
    "merges": [
        ("id", "Int64"), ("position", "Int64"), ("state", "merge_state"), ("reason", "string"),
        ("order_reason", "string"), ("branch", "string"), ("base", "string"),
        ("repo", "string"), ("source", "string"), ("approved", "boolean"),
        ("checks", "Int64"), ("checks_passed", "Int64"), ("conflicts", "object"),
        ("predicted", "object"), ("created", "time"), ("updated", "time"),
        ("merged_sha", "string"), ("resolver", "string"), ("cleanup", "string"),
    ],
    "usage_model": [("model", "category"), *_AGG],
    "usage_block": [
        ("start", "time"), ("end", "time"), ("actual_end", "time"), ("is_active", "boolean"),
        ("is_gap", "boolean"), *_AGG, ("models", "object"),
    ],
}


# -- building frames with exact dtypes ----------------------------------------------------------
def _times(values: Sequence[Any]) -> pd.Series:
    """ISO strings (any offset, ``Z``), datetimes or epoch seconds -> UTC ``datetime64[ns]``."""
    if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        values = [None if v is None else
                  datetime.fromtimestamp(v, timezone.utc) if isinstance(v, (int, float)) else v
                  for v in values]
    series = pd.Series(list(values), dtype=object)
    return pd.to_datetime(series, utc=True, format="ISO8601").astype(TIME)


def _categorical(values: Sequence[Any], first: Sequence[str] = ()) -> pd.Categorical:
    """A categorical whose categories are ``first`` (in order) then the other values, sorted."""
    seen = {v for v in values if v is not None and not _missing(v)}
    cats = list(first) + sorted(str(v) for v in seen if v not in first)
    return pd.Categorical([None if v is None or _missing(v) else str(v) for v in values],
                          categories=pd.Index(cats, dtype=str))


def _missing(value: Any) -> bool:
    return value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text(values: Sequence[Any]) -> pd.arrays.StringArray:
    return pd.array([None if v is None or _missing(v) else str(v) for v in values],
                    dtype="string")


def _column(values: Sequence[Any], kind: str) -> Any:
    if kind == "time":
        return _times(values)
    if kind == "span":
        return pd.Series(pd.to_timedelta(list(values))).astype(SPAN)
    if kind == "state":
        return _categorical(values, STATES)
    if kind == "task_state":
        return _categorical(values, TASK_STATES)
    if kind == "merge_state":
        return _categorical(values, MERGE_STATES)
    if kind == "category":
        return _categorical(values)
    if kind == "string":
        return _text(values)
    if kind == "object":
        return pd.Series(list(values), dtype=object)
    return pd.array([None if v is None or _missing(v) else v for v in values], dtype=kind)


def _build(records: Iterable[Mapping[str, Any]], schema: str) -> pd.DataFrame:
    """Records -> a frame with exactly the columns and dtypes of ``SCHEMAS[schema]``."""
    cols = SCHEMAS[schema]
    rows = list(records)
    data = {name: _column([r.get(name) for r in rows], kind) for name, kind in cols}
    return pd.DataFrame(data, columns=[c for c, _ in cols])


def empty(schema: str) -> pd.DataFrame:
    """An empty frame of ``schema`` (a key of :data:`SCHEMAS`): right columns, right dtypes."""
    return _build([], schema)


# -- parameters -----------------------------------------------------------------------------
def _epoch(value: TimeLike) -> float | None:
    """A time bound as epoch seconds for the server (naive times are taken as UTC).

    Accepts epoch seconds, ISO text, ``datetime``/``Timestamp``, or a ``timedelta`` meaning
    "that long ago".
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time bound cannot be a bool")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (timedelta, pd.Timedelta)):
        return (datetime.now(timezone.utc) - pd.Timedelta(value).to_pytimedelta()).timestamp()
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.timestamp()


# -- sessions -------------------------------------------------------------------------------
def _session_record(s: Mapping[str, Any]) -> dict[str, Any]:
    state = s.get("state") or {}
    worktree = s.get("worktree") or {}
    command = s.get("command")
    return {
        **{k: s.get(k) for k in ("name", "agent", "created", "pid", "pane_id", "cwd",
                                 "external", "agent_session_id", "transcript_path")},
        "state": state.get("name"), "reason": state.get("reason"), "tool": state.get("tool"),
        "source": state.get("source"), "since": state.get("since"),
        "detail": state.get("detail"),
        "exit_status": state.get("exit_status", s.get("exit_status")),
        "command": shlex.join(command) if isinstance(command, list) else command,
        "worktree": worktree.get("path"), "branch": worktree.get("branch"),
    }


def sessions(client: HiveClient) -> pd.DataFrame:
    """The server's sessions, one row each, oldest first.

    Columns:

    - ``name`` (string): the Hive Lab session name.
    - ``agent`` (category): its agent profile (``claude``, ``codex``, ``shell``...).
    - ``state`` (category of :data:`STATES`): current status; ``reason`` (string: permission,
      question, input, an exit reason...), ``tool`` (category: the tool waiting for permission),
      ``source`` (category: where the status came from, e.g. ``hook:Stop``, ``screen``,
      ``pane``), ``since`` (time it began), ``exit_status`` (Int64, once exited), ``detail``.
    - ``created`` (time), ``pid`` (Int64), ``pane_id`` (string, tmux ``%N``), ``cwd``,
      ``command`` (string, shell-quoted argv).
    - ``worktree``/``branch`` (string): the session's git worktree path and branch, if any.
    - ``external`` (boolean): started outside Hive Lab, seen through its hooks.
    - ``agent_session_id``/``transcript_path`` (string): the agent's own id and transcript.
    """
    return _build((_session_record(s) for s in client.sessions()), "sessions")


# -- events ---------------------------------------------------------------------------------
def _event_pages(client: HiveClient, after: int, limit: int | None,
                 filters: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        want = PAGE if limit is None else min(PAGE, limit - len(out))
        if want <= 0:
            return out
        page = client.events(after=after, limit=want, **filters)
        out.extend(page)
        if len(page) < want:
            return out
        after = page[-1]["id"]


def events(client: HiveClient, session: str | None = None, event: str | None = None,
           since: TimeLike = None, until: TimeLike = None, after: int = 0,
           limit: int | None = None, agent: str | None = None) -> pd.DataFrame:
    """Stored events in id order; every filter is applied by the server.

    ``session``, ``event`` (e.g. ``"PreToolUse"``, ``"StateChanged"``) and ``agent`` match
    exactly; ``since``/``until`` bound the time the event was fired (``since <= time < until``;
    epoch seconds, ISO text, datetimes (naive = UTC) or a ``timedelta`` ago); ``after`` is an
    event id; ``limit`` caps the rows (default: all, fetched page by page).

    Columns: ``id`` (Int64), ``time`` (fired, UTC), ``received`` (UTC), ``session``,
    ``agent``, ``event``, ``tool`` (category), ``tool_use_id``, ``agent_session_id``,
    ``summary`` (string), ``payload`` (object: the hook's JSON, whole).
    """
    filters = {"session": session, "event": event, "agent": agent,
               "since": _epoch(since), "until": _epoch(until)}
    return events_frame(_event_pages(client, after, limit, filters))


def events_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Event JSON (from the API or the stream) -> the :func:`events` frame."""
    return _build(records, "events")


# -- transitions ----------------------------------------------------------------------------
def transitions(client: HiveClient, session: str | None = None, after: int = 0) -> pd.DataFrame:
    """State transitions in id order (the session filter is applied by the server).

    Columns: ``id`` (Int64, transition id), ``event_id`` (Int64, its ``StateChanged`` event),
    ``session`` (category), ``state`` (category of :data:`STATES`), ``reason`` (string),
    ``tool`` and ``source`` (category), ``since`` (time), ``until`` (time: the next
    transition of the same session; NaT while the state lasts), ``duration``
    (``until - since``; NaT while it lasts), ``exit_status`` (Int64).

    ``after`` (a transition id) fetches only newer rows; ``until``/``duration`` then only see
    the rows fetched.
    """
    rows: list[dict[str, Any]] = []
    while True:
        page = client.transitions(session=session, after=after)
        rows.extend(page)
        if len(page) < PAGE:
            break
        after = page[-1]["id"]
    return transitions_frame(rows)


def transitions_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Transition JSON (``GET transitions``) -> the :func:`transitions` frame, with spans."""
    rows = [{**r, "state": r.get("name", r.get("state"))} for r in records]
    return with_spans(_build(rows, "transitions"))


def with_spans(frame: pd.DataFrame) -> pd.DataFrame:
    """(Re)compute ``until`` and ``duration`` of a transitions frame, per session."""
    frame = frame.copy()
    if len(frame):
        order = frame.sort_values(["since", "id"], kind="stable")
        nxt = order.groupby("session", observed=True)["since"].shift(-1)
        frame["until"] = nxt.reindex(frame.index).astype(TIME)
        frame["duration"] = (frame["until"] - frame["since"]).astype(SPAN)
    return frame


def concat(parts: Iterable[pd.DataFrame], schema: str) -> pd.DataFrame:
    """Stack frames of one ``schema``, keeping its dtypes (categories are merged)."""
    kept = [p for p in parts if len(p)]
    if len(kept) <= 1:
        return kept[0].reset_index(drop=True) if kept else empty(schema)
    data = {name: _column([v for p in kept for v in p[name].astype(object)], kind)
            if kind in ("category", "state") else
            pd.concat([p[name] for p in kept], ignore_index=True)
            for name, kind in SCHEMAS[schema]}
    return pd.DataFrame(data, columns=[c for c, _ in SCHEMAS[schema]])


# -- git ------------------------------------------------------------------------------------
def _git_record(name: str, state: Mapping[str, Any] | None) -> dict[str, Any]:
    if not state:
        return {"session": name}
    last = state.get("last_commit") or {}
    record = {k: state.get(k) for k in ("branch", "head", "ahead", "behind", "dirty",
                                        "merges_cleanly", "base_ref", "base_sha", "base_tip",
                                        "base_missing", "merge_base", "worktree", "repo")}
    record.update(
        session=name,
        merge_conflicts=list(state.get("merge_conflicts") or []),
        last_commit_sha=last.get("sha"), last_commit_subject=last.get("subject"),
        last_commit_author=last.get("author"), last_commit_time=last.get("time"),
        **{k: len(state.get(k) or []) for k in ("staged", "unstaged", "untracked", "committed")},
    )
    return record


def git_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """``GET git`` JSON (``{"sessions": {name: state or null}}``) -> the :func:`git` frame."""
    states = doc.get("sessions", {})
    return _build((_git_record(n, s) for n, s in sorted(states.items())), "git")


def git(client: HiveClient) -> pd.DataFrame:
    """Git state of every session, one row each (sorted by session).

    Sessions without a worktree have a row of NA. Columns: ``session``, ``branch``, ``head``
    (string); ``ahead``/``behind`` (Int64, commits vs the base); ``dirty`` (boolean,
    uncommitted changes); ``staged``/``unstaged``/``untracked`` (Int64, file counts);
    ``committed`` (Int64, files changed by commits since the merge base); ``merges_cleanly``
    (boolean, NA if unknown); ``merge_conflicts`` (object, list of paths); ``last_commit_sha``,
    ``last_commit_subject``, ``last_commit_author`` (string), ``last_commit_time`` (time);
    ``base_ref``, ``base_sha``, ``base_tip`` (string), ``base_missing`` (boolean),
    ``merge_base``, ``worktree``, ``repo`` (string). :func:`git_files` lists the files.
    """
    return git_frame(client.git())


def git_files_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """``GET git`` JSON -> the :func:`git_files` frame."""
    rows = []
    for name, state in sorted(doc.get("sessions", {}).items()):
        for kind in ("staged", "unstaged", "untracked"):
            rows += [{"session": name, "kind": kind, **c} for c in (state or {}).get(kind, [])]
        rows += [{"session": name, "kind": "committed", "path": p}
                 for p in (state or {}).get("committed", [])]
    return _build(rows, "git_files")


def git_files(client: HiveClient) -> pd.DataFrame:
    """Every changed file of every session, one row per (session, kind, path).

    Columns: ``session``, ``kind`` (category: staged, unstaged, untracked, committed),
    ``path`` (string), ``status`` (category: git's letter M A D T U, ``?`` untracked; NA for
    committed), ``added``/``removed`` (Int64 line counts; NA for binary or committed files).
    """
    return git_files_frame(client.git())


def overlaps_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """``GET git/conflicts`` JSON -> the :func:`overlaps` frame."""
    rows = [{"path": o["path"], "session": s, "committed": s in o.get("committed", []),
             "repo": o.get("repo"), "sessions": list(o.get("sessions", []))}
            for o in doc.get("overlaps", []) for s in o.get("sessions", [])]
    return _build(rows, "overlaps")


def overlaps(client: HiveClient) -> pd.DataFrame:
    """Files changed by more than one session of the same repository.

    One row per (path, session). Columns: ``path``, ``session`` (string), ``committed``
    (boolean: that session's change is committed), ``repo`` (string), ``sessions`` (object:
    every session that changed the path).
    """
    return overlaps_frame(client.conflicts())


def conflicts_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """``GET git/conflicts`` JSON -> the :func:`conflicts` frame."""
    rows = []
    for c in doc.get("conflicts", []):
        (a, b), (ha, hb) = c["sessions"], c.get("heads") or (None, None)
        rows += [{"session_a": a, "session_b": b, "path": p, "head_a": ha, "head_b": hb,
                  "repo": c.get("repo")} for p in c.get("paths", [])]
    return _build(rows, "conflicts")


def conflicts(client: HiveClient) -> pd.DataFrame:
    """Predicted merge conflicts between pairs of sessions (``git merge-tree`` on their heads).

    One row per (pair, conflicting path). Columns: ``session_a``, ``session_b``, ``path``,
    ``head_a``, ``head_b``, ``repo`` (string).
    """
    return conflicts_frame(client.conflicts())


# -- usage ----------------------------------------------------------------------------------
_CAMEL = {"inputTokens": "input", "outputTokens": "output", "cacheCreationTokens": "cache_write",
          "cacheCreation5mTokens": "cache_write_5m", "cacheCreation1hTokens": "cache_write_1h",
          "cacheReadTokens": "cache_read", "totalTokens": "total_tokens", "totalCost": "cost",
          "knownCost": "known_cost", "costComplete": "cost_complete",
          "unknownModels": "unknown_models", "requests": "requests", "sessionId": "session",
          "projectPath": "project", "agent": "agent", "firstTimestamp": "first",
          "lastTimestamp": "last", "modelsUsed": "models", "models": "models",
          "date": "day", "modelName": "model", "startTime": "start", "endTime": "end",
          "actualEndTime": "actual_end", "isActive": "is_active", "isGap": "is_gap"}
_REPORT_KEYS = {"session": "sessions", "day": "daily", "model": "models", "block": "blocks"}


def usage_report_frame(doc: Mapping[str, Any], by: str) -> pd.DataFrame:
    """A ``hive-lab usage --json --by <by>`` document -> the :func:`usage` frame for ``by``.

    The document's ``totals`` and ``pricing`` go to ``frame.attrs``.
    """
    items = [{_CAMEL[k]: v for k, v in item.items() if k in _CAMEL}
             for item in doc.get(_REPORT_KEYS[by], [])]
    frame = _build(items, f"usage_{by}")
    frame.attrs["totals"] = dict(doc.get("totals", {}))
    frame.attrs["pricing"] = dict(doc.get("pricing", {}))
    return frame


def usage_rows_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Usage row JSON (``GET usage/rows``, or ``UsageRow.to_json``) -> the rows frame."""
    rows = []
    for r in records:
        tokens = [r.get(k) or 0 for k in ("input", "output", "cache_write_5m", "cache_write_1h",
                                          "cache_read")]
        rows.append({**r, "session": r.get("session", r.get("session_id")),
                     "agent_session_id": r.get("agent_session_id", r.get("session_id")),
                     "total_tokens": sum(tokens)})
    return _build(rows, "usage_rows").sort_values("time", kind="stable", ignore_index=True)


def usage(client: HiveClient, by: UsageBy = "rows", session: str | None = None,
          since: TimeLike = None, until: TimeLike = None) -> pd.DataFrame:
    """Token usage and cost of the server's sessions, filtered on the server.

    ``by="rows"``: one row per API response (deduplicated), oldest first. Columns: ``time``
    (UTC), ``session`` (category, Hive Lab session; the agent's id for transcripts read with
    :func:`usage_from_files`), ``agent_session_id`` (string), ``agent``, ``model``, ``speed``
    (category), ``project`` (string, the agent's cwd), ``input``, ``output``,
    ``cache_write_5m``, ``cache_write_1h``, ``cache_read``, ``total_tokens`` (Int64; ``input``
    excludes cached tokens), ``cost`` (Float64 USD, NA when the model is not priced),
    ``sidechain`` (boolean), ``message_id``, ``request_id``, ``source`` (string, transcript).

    ``by="session" | "day" | "model" | "block"`` (5-hour billing blocks): one row per group,
    keyed by ``session`` (+ ``agent``, ``project``, ``first``, ``last``), ``day`` (UTC
    midnight), ``model``, or ``start``/``end``/``actual_end``/``is_active``/``is_gap``; then
    ``requests``, ``input``, ``output``, ``cache_write`` (= 5m + 1h), ``cache_write_5m``,
    ``cache_write_1h``, ``cache_read``, ``total_tokens`` (Int64), ``cost`` (Float64, NA if
    some model is not priced), ``known_cost`` (Float64, the priced part), ``cost_complete``
    (boolean), ``unknown_models`` (object list), and ``models`` (object list; not by model).
    ``frame.attrs["totals"]`` holds the grand totals, ``frame.attrs["pricing"]`` the table date.
    """
    since_s, until_s = _epoch(since), _epoch(until)
    if by == "rows":
        return usage_rows_frame(client.usage_rows(session=session, since=since_s, until=until_s))
    _check_by(by)
    return usage_report_frame(client.usage(by=by, session=session, since=since_s,
                                           until=until_s), by)


def _check_by(by: str) -> None:
    if by not in ("rows", *_REPORT_KEYS):
        raise ValueError(f"by must be rows, session, day, model or block, not {by!r}")


def usage_from_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                     by: UsageBy = "rows", pricing: Any = None) -> pd.DataFrame:
    """The :func:`usage` frame straight from transcript files or directories; no server.

    Claude Code transcripts and Codex CLI rollouts, deduplicated as ``hive-lab usage`` does
    (same ``message.id`` + ``requestId`` once, keeping the fullest line, across files).
    ``session`` is the agent's own session id here. ``pricing``: a
    :class:`hive_lab.usage.Pricing` (default: the shipped table).
    """
    from .usage.parse import load_usage, tally_usage
    from .usage.report import usage_report

    _check_by(by)
    if by == "rows":
        return usage_rows_frame(row.to_json() for row in load_usage(paths, pricing=pricing))
    rows = tally_usage(paths, pricing=pricing).rows()
    return usage_report_frame(usage_report(rows, by, pricing), by)  # type: ignore[arg-type]


# -- tasks ----------------------------------------------------------------------------------
def _task_record(t: Mapping[str, Any]) -> dict[str, Any]:
    state = t.get("state") or {}
    flags = t.get("flags") or {}
    check = t.get("check")
    costs = [a.get("cost") for a in t.get("attempts") or [] if a.get("cost") is not None]
    return {
        **{k: t.get(k) for k in ("id", "title", "why", "created", "priority", "agent",
                                 "max_attempts", "session", "branch", "base", "worktree",
                                 "repo", "prompt")},
        **{k: list(t.get(k) or []) for k in ("requires", "scope", "shared", "depends_on")},
        "state": state.get("name"), "reason": state.get("reason"), "since": state.get("since"),
        "check": shlex.join(check) if isinstance(check, list) else check,
        "attempts": len(t.get("attempts") or []), "round": flags.get("round"),
        "violations": len(flags.get("violations") or []),
        "guard_degraded": sum(int(s.get("events", 1)) for s in flags.get("guard_degraded") or []),
        "cost": sum(costs) if costs else None,
    }


def tasks_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Task JSON (``GET tasks``) -> the :func:`tasks` frame."""
    return _build((_task_record(t) for t in records), "tasks")


def tasks(client: HiveClient, state: str | None = None, repo: str | None = None,
          session: str | None = None) -> pd.DataFrame:
    """The server's tasks, one row each (filters applied by the server).

    Columns: ``id``, ``title`` (string); ``state`` (category of :data:`TASK_STATES`, in the
    order of the state machine: pending, ready, running, waiting, checking, blocked, done,
    failed, canceled), ``reason`` (string: why it moved there), ``why`` (string: why a
    pending/ready/blocked task is not running; NA otherwise), ``since``/``created`` (time);
    ``priority`` (Int64), ``agent`` (category: the profile asked for, NA = any),
    ``requires``, ``scope``, ``shared``, ``depends_on`` (object: lists), ``check`` (string,
    shell-quoted argv; NA = none), ``max_attempts``, ``attempts`` (Int64: started so far),
    ``round`` (Int64: check round of the current attempt), ``violations`` (Int64:
    out-of-scope changes open), ``guard_degraded`` (Int64: tool calls the guard missed while
    the server was away), ``cost`` (Float64 USD over its attempts, NA if unknown),
    ``session``, ``branch``, ``base``, ``worktree``, ``repo``, ``prompt`` (string).
    """
    return tasks_frame(client.tasks(state=state, repo=repo, session=session))


def notifications(client: HiveClient, unread: bool = False, limit: int = 1000) -> pd.DataFrame:
    """Hive Lab's calls to the user, unread first (as the server orders them).

    Columns: ``id`` (Int64), ``kind`` (category: permission, question, task_failed, ...),
    ``session``, ``task``, ``title``, ``body`` (string, cleaned of control characters);
    ``created``, ``read``, ``escalated``, ``resolved`` (time, NaT = not yet); ``delivered``
    and ``pending`` (object: channel labels, URLs redacted), ``attempts`` (Int64),
    ``last_error`` (string).
    """
    return _build(client.notifications(unread=unread, limit=limit), "notifications")


def _merge_record(m: Mapping[str, Any]) -> dict[str, Any]:
    runs = m.get("check_runs") or []
    return {
        **{k: m.get(k) for k in ("id", "position", "state", "reason", "order_reason", "branch",
                                 "base", "repo", "source", "approved", "created", "updated",
                                 "merged_sha", "resolver", "cleanup")},
        "checks": len(m.get("checks") or []),
        "checks_passed": sum(1 for r in runs if r.get("passed")),
        "conflicts": list(m.get("conflicts") or []),
        "predicted": list(m.get("predicted") or []),
    }


def merges_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Merge queue JSON (``GET merges``) -> the :func:`merges` frame."""
    return _build((_merge_record(m) for m in records), "merges")


def merges(client: HiveClient, state: str | None = None, repo: str | None = None) -> pd.DataFrame:
    """The merge queue, one row per offered branch (oldest first).

    Columns: ``id``, ``position`` (Int64: 1 = next in its (repo, base) queue, NA = out of
    line), ``state`` (category of :data:`hive_lab.wire.MERGE_STATES`), ``reason`` (why it is
    in that state), ``order_reason`` (why it is at that place), ``branch``, ``base``,
    ``repo``, ``source`` (string), ``approved`` (boolean), ``checks`` / ``checks_passed``
    (Int64: given / passed in the latest runs), ``conflicts`` (object: paths of a real
    conflict), ``predicted`` (object: predicted conflicts, ``{"with", "paths"}``),
    ``created``/``updated`` (time), ``merged_sha``, ``resolver``, ``cleanup`` (string).
    """
    return merges_frame(client.merges(state=state, repo=repo))


def _attempt_record(task_id: str, a: Mapping[str, Any]) -> dict[str, Any]:
    return {**a, "task": a.get("task_id", task_id), "check_tail": a.get("check_tail") or None}


def attempts_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Task JSON (``GET tasks``) -> the :func:`attempts` frame (oldest attempt first)."""
    rows = [_attempt_record(t["id"], a) for t in records for a in t.get("attempts") or []]
    frame = _build(rows, "attempts")
    frame["duration"] = (frame["ended"] - frame["started"]).astype(SPAN)  # NaT while it runs
    return frame.sort_values(["started", "task", "n"], kind="stable", ignore_index=True)


def attempts(client: HiveClient, state: str | None = None, repo: str | None = None,
             session: str | None = None) -> pd.DataFrame:
    """Every attempt of every task (the tasks filtered as in :func:`tasks`), oldest first.

    Columns: ``task`` (string), ``n`` (Int64: 1 for the first attempt), ``id`` (Int64),
    ``session`` (string), ``profile`` (category: the agent profile that ran it), ``started``,
    ``ended`` (time; NA while it runs), ``duration`` (timedelta; NA while it runs),
    ``outcome`` (category: done, check_failed, died, lost, canceled, ...; NA while it runs),
    ``reason`` (string), ``rounds`` (Int64: check rounds), ``cost`` (Float64, NA if unknown),
    ``check_tail`` (string: the end of the last check's output).
    """
    return attempts_frame(client.tasks(state=state, repo=repo, session=session))


# -- accessor -------------------------------------------------------------------------------
class Frames:
    """The frame functions bound to one client: ``Frames(hive).events(session="a")``."""

    def __init__(self, client: HiveClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"Frames({self.client!r})"

    def sessions(self) -> pd.DataFrame:
        """See :func:`hive_lab.frames.sessions`."""
        return sessions(self.client)

    def events(self, session: str | None = None, event: str | None = None,
               since: TimeLike = None, until: TimeLike = None, after: int = 0,
               limit: int | None = None, agent: str | None = None) -> pd.DataFrame:
        """See :func:`hive_lab.frames.events`."""
        return events(self.client, session, event, since, until, after, limit, agent)

    def transitions(self, session: str | None = None, after: int = 0) -> pd.DataFrame:
        """See :func:`hive_lab.frames.transitions`."""
        return transitions(self.client, session, after)

    def git(self) -> pd.DataFrame:
        """See :func:`hive_lab.frames.git`."""
        return git(self.client)

    def git_files(self) -> pd.DataFrame:
        """See :func:`hive_lab.frames.git_files`."""
        return git_files(self.client)

    def overlaps(self) -> pd.DataFrame:
        """See :func:`hive_lab.frames.overlaps`."""
        return overlaps(self.client)

    def conflicts(self) -> pd.DataFrame:
        """See :func:`hive_lab.frames.conflicts`."""
        return conflicts(self.client)

    def usage(self, by: UsageBy = "rows", session: str | None = None, since: TimeLike = None,
              until: TimeLike = None) -> pd.DataFrame:
        """See :func:`hive_lab.frames.usage`."""
        return usage(self.client, by, session, since, until)

    def tasks(self, state: str | None = None, repo: str | None = None,
              session: str | None = None) -> pd.DataFrame:
        """See :func:`hive_lab.frames.tasks`."""
        return tasks(self.client, state, repo, session)

    def attempts(self, state: str | None = None, repo: str | None = None,
                 session: str | None = None) -> pd.DataFrame:
        """See :func:`hive_lab.frames.attempts`."""
        return attempts(self.client, state, repo, session)

    def notifications(self, unread: bool = False, limit: int = 1000) -> pd.DataFrame:
        """See :func:`hive_lab.frames.notifications`."""
        return notifications(self.client, unread, limit)

    def merges(self, state: str | None = None, repo: str | None = None) -> pd.DataFrame:
        """See :func:`hive_lab.frames.merges`."""
        return merges(self.client, state, repo)

