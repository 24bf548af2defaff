"""Token usage and cost from agent transcripts (Claude Code, Codex CLI, Aider, Gemini CLI).

Transcripts -> one :class:`UsageRow` per API response -> cost from the shipped pricing table
-> aggregates (per session, day, model, 5-hour billing block).

Stdlib only: the CLI (``hive-lab usage``) and the server both import this, and the CLI must
start fast and run anywhere. The hot loop never parses a line that cannot carry usage, and for
the lines that do it parses the small ``usage`` object and the top-level fields instead of the
(possibly huge) message content; a full ``json.loads`` reference parser backs it up whenever the
line is not shaped the way Claude Code writes it (see :func:`parse_claude_line`).
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Union

from . import aider as _aider
from . import gemini as _gemini

__all__ = [
    "Pricing",
    "ModelRates",
    "normalise_model",
    "UsageRow",
    "UsageLedger",
    "UsageTally",
    "TranscriptFollower",
    "parse_claude_line",
    "parse_claude_transcripts",
    "parse_codex_rollouts",
    "load_usage",
    "tally_usage",
    "iter_rows",
    "collect_files",
    "aggregate",
    "aggregate_with_totals",
    "billing_blocks",
    "totals",
]

PRICING_FILE = Path(__file__).with_name("pricing.json")
_CHUNK = 1 << 22  # 4 MiB reads for files too big to read at once: memory stays flat
_WHOLE_FILE = 1 << 26  # files (or unread tails) up to 64 MiB are read in one go
BLOCK_HOURS = 5

Agent = Literal["claude", "codex", "aider", "gemini"]
GroupBy = Literal["session", "day", "model", "block"]


# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRates:
    """USD per million tokens for one model, with its cache multipliers and optional tiers."""

    model: str
    input: float
    output: float
    write_5m: float
    write_1h: float
    read: float
    status: str = "reported"
    long_threshold: int | None = None
    long_input: float | None = None
    long_output: float | None = None
    fast_multiplier: float | None = None


_DATE_SUFFIX = re.compile(r"(?:-\d{8}|@\d{8}|-latest)$")
_BEDROCK_SUFFIX = re.compile(r"-v\d+(?::\d+)?$|:\d+$")
_PREFIXES = ("anthropic/", "openai/", "us.anthropic.", "eu.anthropic.", "apac.anthropic.",
             "global.anthropic.", "anthropic.")


def normalise_model(model: str) -> str:
    """Map a transcript's model id to a pricing key.

    Transcripts and provider ids carry decorations that do not change the price: a context
    marker (``claude-sonnet-4-5[1m]``; the long-context tier is decided by token counts), a
    date stamp (``-20250929``, ``@20251001``), provider prefixes and Bedrock version suffixes.
    """
    m = model.strip().lower()
    m = re.sub(r"\[[^\]]*\]$", "", m)
    for prefix in _PREFIXES:
        if m.startswith(prefix):
            m = m[len(prefix):]
            break
    m = _BEDROCK_SUFFIX.sub("", m)
    m = _DATE_SUFFIX.sub("", m)
    return m


class Pricing:
    """The pricing table: shipped data file plus user overrides; unknown models give ``None``."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.date: str = str(data.get("date", ""))
        self.source: str = str(data.get("source", ""))
        cache = data.get("cache", {})
        self._rates: dict[str, ModelRates] = {}
        for name, spec in data.get("models", {}).items():
            self._rates[name.lower()] = _rates_from_spec(name, spec, cache)
        self._aliases = {k.lower(): v.lower() for k, v in data.get("aliases", {}).items()}
        self._resolved: dict[str, ModelRates | None] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None,
             overrides: dict[str, Any] | None = None) -> "Pricing":
        """Read the table (default: the one shipped in the package) and merge ``overrides``.

        ``overrides`` is either shaped like the file (``{"models": {...}, "cache": {...},
        "aliases": {...}}``) or a bare ``{"model-id": {"input": .., "output": ..}}`` mapping.
        """
        with open(path or PRICING_FILE, encoding="utf-8") as f:
            data = json.load(f)
        if overrides:
            data = _merge_overrides(data, overrides)
        return cls(data)

    @classmethod
    def default(cls) -> "Pricing":
        """The shipped table, loaded once per process."""
        return _default_pricing()

    def rates(self, model: str | None) -> ModelRates | None:
        """Rates for ``model`` after normalisation, or ``None`` when the model is unknown."""
        if not model:
            return None
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = self._rates.get(model.lower())
        if found is None:
            key = normalise_model(model)
            key = self._aliases.get(key, key)
            found = self._rates.get(key)
        self._resolved[model] = found
        return found

    def is_known(self, model: str | None) -> bool:
        return self.rates(model) is not None

    def cost(self, model: str | None, input: int = 0, output: int = 0, cache_write_5m: int = 0,
             cache_write_1h: int = 0, cache_read: int = 0, speed: str = "standard") -> float | None:
        """USD for one request; ``None`` when the price is not known (never a silent 0).

        A request with no tokens at all costs 0 whatever the model.
        """
        if not (input or output or cache_write_5m or cache_write_1h or cache_read):
            return 0.0
        r = self.rates(model)
        if r is None:
            return None
        mult = 1.0
        if speed == "fast":
            if r.fast_multiplier is None:
                return None
            mult = r.fast_multiplier
        p, q = r.input, r.output
        if r.long_threshold is not None and \
                input + cache_write_5m + cache_write_1h + cache_read > r.long_threshold:
            p, q = r.long_input or p, r.long_output or q
        usd = (input * p + output * q + cache_write_5m * r.write_5m * p
               + cache_write_1h * r.write_1h * p + cache_read * r.read * p) / 1e6
        return usd * mult


def _rates_from_spec(name: str, spec: dict[str, Any], cache: dict[str, Any]) -> ModelRates:
    own_cache = {**cache, **spec.get("cache", {})}
    long = spec.get("long_context") or {}
    fast = spec.get("fast") or {}
    return ModelRates(
        model=name,
        input=float(spec["input"]),
        output=float(spec["output"]),
        write_5m=float(own_cache.get("write_5m", 1.25)),
        write_1h=float(own_cache.get("write_1h", 2.0)),
        read=float(own_cache.get("read", 0.1)),
        status=str(spec.get("status", "override")),
        long_threshold=int(long["threshold"]) if "threshold" in long else None,
        long_input=float(long["input"]) if "input" in long else None,
        long_output=float(long["output"]) if "output" in long else None,
        fast_multiplier=float(fast["multiplier"]) if "multiplier" in fast else None,
    )


def _merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    structured = {"models", "cache", "aliases", "date", "source"} & set(overrides)
    ov = overrides if structured else {"models": overrides}
    merged = dict(data)
    merged["models"] = {**data.get("models", {})}
    for name, spec in ov.get("models", {}).items():
        merged["models"][name] = {"status": "override", **spec}
    merged["cache"] = {**data.get("cache", {}), **ov.get("cache", {})}
    merged["aliases"] = {**data.get("aliases", {}), **ov.get("aliases", {})}
    for key in ("date", "source"):
        if key in ov:
            merged[key] = ov[key]
    return merged


@lru_cache(maxsize=1)
def _default_pricing() -> Pricing:
    return Pricing.load()


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class UsageRow:
    """One API response: who, when, which model, how many tokens of each kind, what it cost.

    ``cost`` is ``None`` when the model (or its fast mode) is not in the pricing table.
    ``input`` never includes cached tokens: those are ``cache_read`` (and, for Claude, the
    cache writes), so the five counts add up to everything the provider billed.
    """

    time: datetime
    session_id: str
    project: str
    model: str
    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    cost: float | None
    message_id: str | None
    request_id: str | None
    sidechain: bool
    source: str
    agent: Agent = "claude"
    speed: str = "standard"

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def total_tokens(self) -> int:
        return self.input + self.output + self.cache_write_5m + self.cache_write_1h + self.cache_read

    @property
    def key(self) -> tuple[str, str, str] | None:
        """Dedup key: one API response, however many lines or files repeat it."""
        if self.message_id is None or self.request_id is None:
            return None
        return (self.agent, self.message_id, self.request_id)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = _iso(self.time)
        return d


def _iso(t: datetime) -> str:
    """ccusage-style UTC timestamp (millisecond precision, ``Z``)."""
    if t.tzinfo is not timezone.utc:
        t = t.astimezone(timezone.utc)
    if t.year < 1000:  # strftime does not pad the year; keep its output for such odd times
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.isoformat(timespec="milliseconds")[:-6] + "Z"  # 3x faster than strftime


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


# --------------------------------------------------------------------------------------------
# Claude Code transcript lines
# --------------------------------------------------------------------------------------------

_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner without json.loads' per-call overhead
try:  # twice as fast on the cut lines, and reads bytes (no decode); optional
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - the stdlib scanner does the same work
    _orjson_loads = None  # type: ignore[assignment]
_USAGE = b'"usage":{'
_MESSAGE = b'"message":{'
_CONTENT = b',"content":'
_NEEDLE = b'"input_tokens"'  # every usage object has it; long needles search fastest


def _locate(buf: bytes, start: int, stop: int) -> tuple[int, int, int] | None:
    """Offsets of ``"message":{``, the first ``,"content":`` in it and the last ``"usage":{``."""
    u = buf.rfind(_USAGE, start, stop)
    m = buf.find(_MESSAGE, start, stop)
    if m <= start or u < m:
        return None
    c = buf.find(_CONTENT, m, u)
    if c < 0:
        return None
    return m, c, u


def _split_at(buf: bytes, start: int, stop: int, c: int, u: int) -> tuple[dict, dict, dict] | None:
    """(root, message, usage) of the assistant line ``buf[start:stop]``, content left unread.

    Claude Code writes compact JSON: ``{<root>,"message":{"id":..,"model":..,"content":[
    ...big...],..,"usage":{..},..},<root>}``. We cut out the span from the first
    ``,"content":`` after ``"message":{`` (offset ``c``) up to the last ``"usage":{`` (``u``)
    and parse the rest, small, in one C call. Cutting a span out of valid JSON leaves valid
    JSON only if the span closes as many brackets as it opens, and ``root["message"]`` then
    holds exactly the members around the span: the root members, the message's ``id``/
    ``model`` (written before ``content``) and its ``usage`` and later members. Anything else
    -- not parseable after the cut, not an assistant line, id or model elsewhere -- returns
    ``None`` and the caller uses the full parser. The one assumption: the span is a run of
    message members, i.e. in an assistant line no root member after ``message`` holds the
    last ``usage`` object (true of every line Claude Code writes).
    """
    try:
        cut = buf[start:c] + b"," + buf[u:stop]
        d = None
        if _orjson_loads is not None:
            try:
                d = _orjson_loads(cut)
            except ValueError:  # not JSON for orjson: let the stdlib scanner judge, as before
                pass
            else:
                if _inexact(d):
                    d = None
        if d is None:
            text = cut.decode()
            d, end = _scan(text, 0)
            if end != len(text) and text[end:].strip():
                return None
        msg = d["message"]
        usage = msg["usage"]
        if d.get("type") != "assistant" or "id" not in msg or "model" not in msg \
                or not isinstance(usage, dict):
            return None
    except (ValueError, StopIteration, KeyError, TypeError):
        return None
    return d, msg, usage


def _inexact(d: Any) -> bool:
    """Could orjson have read this line's token counts differently from the stdlib? It reads
    integers beyond 64 bits as floats; the stdlib keeps them exact. Only counts matter."""
    try:
        usage = d["message"]["usage"]
        get = usage.get
        if float in (type(get("input_tokens")), type(get("output_tokens")),
                     type(get("cache_read_input_tokens")),
                     type(get("cache_creation_input_tokens"))):
            return True
        cc = get("cache_creation")
        return type(cc) is dict and float in (type(cc.get("ephemeral_5m_input_tokens")),
                                              type(cc.get("ephemeral_1h_input_tokens")))
    except (KeyError, TypeError, AttributeError):
        return False  # not shaped like a usage line: the caller rejects it either way


def _split_fast(line: bytes) -> tuple[dict, dict, dict] | None:
    """The fast split of one line, or ``None`` when only the full parser can tell."""
    loc = _locate(line, 0, len(line))
    if loc is None:
        return None
    return _split_at(line, 0, len(line), loc[1], loc[2])


def _split_full(line: bytes) -> tuple[dict, dict, dict] | None:
    """Reference parser: the whole line through ``json.loads``.

    A stray invalid byte (say in a tool result) must not cost the line its usage, so bytes
    that are not UTF-8 are replaced rather than rejected; a BOM is ignored.
    """
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    try:
        d = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    msg = d.get("message")
    if not isinstance(msg, dict):
        return None
    usage = msg.get("usage")
    if not isinstance(usage, dict):
        return None
    return d, msg, usage


def _num(value: Any) -> int:
    """A token count, 0 when absent or not a number."""
    t = type(value)
    if t is int:
        return value
    if t is float:
        return int(value)
    return 0


def _cache_writes(usage: dict) -> tuple[int, int]:
    """(5-minute, 1-hour) cache writes.

    The breakdown object can be all zeros while ``cache_creation_input_tokens`` is not (seen in
    Claude Code 2.1.197): the unexplained remainder is billed as 5-minute writes, the default
    TTL. When the breakdown adds up to more than the total, the breakdown wins.
    """
    total = _num(usage.get("cache_creation_input_tokens"))
    breakdown = usage.get("cache_creation")
    if type(breakdown) is not dict:
        return total, 0
    w5 = _num(breakdown.get("ephemeral_5m_input_tokens"))
    w1h = _num(breakdown.get("ephemeral_1h_input_tokens"))
    return max(w5, total - w1h), w1h


Tokens = tuple[int, int, int, int, int]  # input, output, cache write 5m, 1h, cache read
_NUMBER = (int, float)


def _tokens(usage: dict) -> Tokens | None:
    get = usage.get
    inp, out = get("input_tokens"), get("output_tokens")
    if type(inp) not in _NUMBER or type(out) not in _NUMBER:
        return None  # same rule as ccusage: a usage without both counts is no usage
    read = get("cache_read_input_tokens")
    w5, w1h = _cache_writes(usage)
    return int(inp), int(out), w5, w1h, read if type(read) is int else _num(read)  # type: ignore[arg-type]


def _ids(root: dict, msg: dict) -> tuple[str | None, str | None]:
    mid, rid = msg.get("id"), root.get("requestId")
    return (mid if type(mid) is str and mid else None,
            rid if type(rid) is str and rid else None)


def _row_fields(root: dict, msg: dict, usage: dict,
                source: str) -> tuple[datetime, str, str, str, str] | None:
    """(time, session, cwd, model, speed) of a Claude usage line; ``None`` without a time."""
    when = _parse_time(root.get("timestamp"))
    if when is None:
        return None  # same rule as ccusage: no time, no row
    model = msg.get("model")
    if type(model) is not str or not model:
        model = "unknown"
    speed = usage.get("speed")
    if type(speed) is not str or not speed:
        speed = "standard"
    session = root.get("sessionId")
    if type(session) is not str or not session:
        session = Path(source).stem
    cwd = root.get("cwd")
    return when, session, cwd if type(cwd) is str else "", model, speed


def _make_row(root: dict, msg: dict, usage: dict, tokens: Tokens, ids: tuple[str | None, str | None],
              source: str, pricing: Pricing) -> UsageRow | None:
    fields = _row_fields(root, msg, usage, source)
    if fields is None:
        return None
    when, session, cwd, model, speed = fields
    return UsageRow(when, session, cwd, model, *tokens, pricing.cost(model, *tokens, speed), *ids,
                    root.get("isSidechain") is True, source, "claude", speed)


def _row_from_parts(root: dict, msg: dict, usage: dict, source: str,
                    pricing: Pricing) -> UsageRow | None:
    tokens = _tokens(usage)
    if tokens is None:
        return None
    return _make_row(root, msg, usage, tokens, _ids(root, msg), source, pricing)


def parse_claude_line(line: bytes, source: str = "", pricing: Pricing | None = None,
                      fast: bool = True) -> UsageRow | None:
    """One transcript line -> a row, or ``None`` for lines without usage (or not JSON at all).

    ``fast=False`` forces the full ``json.loads`` reference path; both give the same row.
    """
    pricing = pricing or Pricing.default()
    parts = _split_fast(line) if fast else None
    if parts is None:
        parts = _split_full(line)
        if parts is None:
            return None
    return _row_from_parts(*parts, source, pricing)


_UUID_KEY = b',"uuid":"'
_REQUEST_KEY = b'"requestId":'


def _claude_rows_in(buf: bytes, end: int, source: str, pricing: Pricing,
                    ledger: "UsageLedger | None" = None) -> Iterator[UsageRow]:
    """Rows from the complete lines in ``buf[:end]``, touching only lines that mention usage.

    The search for ``"input_tokens"`` runs over the whole buffer in C; lines without it (tool
    results, attachments, snapshots: most of the bytes) are never split out or decoded.

    With a ``ledger``, copies it would not keep are dropped early (half the usage lines are
    copies: one line per content block). A line whose message head (``"message":{`` up to
    ``,"content":``) and whose bytes from ``"usage":{`` up to the root ``"uuid"`` -- usage,
    the message's closing members, ``requestId`` -- equal those of the previous usage line is
    the same response with the same counts: if that line was a non-sidechain copy the ledger
    already saw, this one cannot be strictly better, so it is skipped unparsed. Otherwise the
    line is parsed and offered to the ledger before a row is built.
    """
    pos = 0
    find, rfind = buf.find, buf.rfind
    prev: tuple[bytes, bytes] | None = None
    while pos < end:
        k = find(_NEEDLE, pos, end)
        if k < 0:
            return
        start = rfind(b"\n", 0, k) + 1
        stop = find(b"\n", k, end)
        if stop < 0:
            stop = end
        pos = stop + 1
        parts = sig = None
        u = rfind(_USAGE, start, stop)  # _locate, inlined: this loop is the hot path
        m = find(_MESSAGE, start, stop)
        c = find(_CONTENT, m, u) if start < m < u else -1
        if c > 0:
            if ledger is not None:
                x = find(_UUID_KEY, u, stop)
                if x > 0:
                    sig = (buf[m:c], buf[u:x])
                    if sig == prev:
                        continue
            parts = _split_at(buf, start, stop, c, u)
        prev = None
        if parts is None:
            parts = _split_full(buf[start:stop])
            if parts is None:
                continue
            sig = None
        root, msg, usage = parts
        tokens = _tokens(usage)
        if tokens is None:
            continue
        ids = _ids(root, msg)
        sidechain = root.get("isSidechain") is True
        wanted = ledger is None or ledger.wants(("claude", *ids), sum(tokens), sidechain)
        row = _make_row(root, msg, usage, tokens, ids, source, pricing) if wanted else None
        # the ledger has (or, once the caller adds ``row``, will have) this copy or a better one
        if (row is not None or not wanted) and sig is not None and not sidechain \
                and _REQUEST_KEY in sig[1]:
            prev = sig
        if row is not None:
            yield row


def _tally_claude(tally: "UsageTally", buf: bytes, end: int, source: str, rank: int,
                  pricing: Pricing) -> None:
    """:func:`_claude_rows_in` fed straight into ``tally`` (as :meth:`UsageTally.add` with
    ``rank``) without a :class:`UsageRow` per line: the CLI's loop. Same lines skipped, same
    rule for which copy counts; the tests hold it to the rows of :func:`load_usage`."""
    by_key, unkeyed, sid = tally._by_key, tally._unkeyed, tally._sid
    src, agent = sid(source), sid("claude")
    pack, cost_of = _PACK.pack, pricing.cost
    pos = 0
    find, rfind = buf.find, buf.rfind
    prev: tuple[bytes, bytes] | None = None
    while pos < end:
        k = find(_NEEDLE, pos, end)
        if k < 0:
            return
        start = rfind(b"\n", 0, k) + 1
        stop = find(b"\n", k, end)
        if stop < 0:
            stop = end
        pos = stop + 1
        parts = sig = None
        u = rfind(_USAGE, start, stop)
        m = find(_MESSAGE, start, stop)
        c = find(_CONTENT, m, u) if start < m < u else -1
        if c > 0:
            x = find(_UUID_KEY, u, stop)
            if x > 0:
                sig = (buf[m:c], buf[u:x])
                if sig == prev:
                    continue
            parts = _split_at(buf, start, stop, c, u)
        prev = None
        if parts is None:
            parts = _split_full(buf[start:stop])
            if parts is None:
                continue
            sig = None
        root, msg, usage = parts
        tokens = _tokens(usage)
        if tokens is None:
            continue
        mid, rid = _ids(root, msg)
        sidechain = root.get("isSidechain") is True
        key = None if mid is None or rid is None else f"claude\0{mid}\0{rid}"
        old = None if key is None else by_key.get(key)
        if old is not None and not _rank(sum(tokens), sidechain) > _packed_rank(old):
            if sig is not None and not sidechain and _REQUEST_KEY in sig[1]:
                prev = sig
            continue
        fields = _row_fields(root, msg, usage, source)
        if fields is None:
            continue
        when, session, cwd, model, speed = fields
        cost = cost_of(model, *tokens, speed)
        packed = pack((when - _EPOCH) // _MICROSECOND, *tokens, _NAN if cost is None else cost,
                      1 if sidechain else 0, rank, sid(session), sid(cwd), sid(model), src, agent,
                      sid(speed))
        if key is None:
            unkeyed.append((mid, rid, packed))
        else:
            by_key[key] = packed
        if sig is not None and not sidechain and _REQUEST_KEY in sig[1]:
            prev = sig


# --------------------------------------------------------------------------------------------
# Codex CLI rollout files
# --------------------------------------------------------------------------------------------

_UUID_TAIL = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.I)
_CODEX_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens",
                 "reasoning_output_tokens", "total_tokens")


class _CodexState:
    """Turns a rollout's cumulative ``token_count`` events into per-request rows.

    Format (openai/codex ``codex-rs/protocol``): every line is ``{"timestamp", "type",
    "payload"}``; ``session_meta`` carries the session id and cwd, ``turn_context`` the model,
    and ``event_msg`` with ``payload.type == "token_count"`` carries ``info.total_token_usage``
    (cumulative) and ``info.last_token_usage``. Deltas of the cumulative totals are robust to
    repeated events (delta 0 is skipped); a total that goes down means a new count started.
    OpenAI's ``input_tokens`` include the cached ones and ``output_tokens`` include reasoning.
    """

    def __init__(self, source: str, pricing: Pricing):
        self.source = source
        self.pricing = pricing
        stem = Path(source).stem
        found = _UUID_TAIL.search(stem)
        self.session_id = found.group(1) if found else stem
        self.project = ""
        self.model = ""
        self.prev: dict[str, int] | None = None

    def feed(self, line: bytes) -> UsageRow | None:
        if b"token_count" not in line and b"turn_context" not in line and b"session_meta" not in line:
            return None
        try:
            d = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(d, dict) or not isinstance(d.get("payload"), dict):
            return None
        kind, payload = d.get("type"), d["payload"]
        if kind == "session_meta":
            self._meta(payload)
        elif kind == "turn_context":
            self._context(payload)
        elif kind == "event_msg" and payload.get("type") == "token_count":
            return self._token_count(d.get("timestamp"), payload)
        return None

    def _meta(self, payload: dict) -> None:
        meta: dict = payload["meta"] if isinstance(payload.get("meta"), dict) else payload
        if isinstance(meta.get("id"), str) and meta["id"]:
            self.session_id = meta["id"]
        if isinstance(meta.get("cwd"), str):
            self.project = meta["cwd"]

    def _context(self, payload: dict) -> None:
        if isinstance(payload.get("model"), str) and payload["model"]:
            self.model = payload["model"]
        if isinstance(payload.get("cwd"), str) and not self.project:
            self.project = payload["cwd"]

    def _token_count(self, stamp: Any, payload: dict) -> UsageRow | None:
        info = payload.get("info")
        when = _parse_time(stamp)
        if not isinstance(info, dict) or when is None:
            return None
        total = _codex_usage(info.get("total_token_usage"))
        delta: dict[str, int] | None
        if total is not None:
            delta = _codex_delta(total, self.prev)
            self.prev = total
        else:
            delta = _codex_usage(info.get("last_token_usage"))
        if delta is None or not any(delta[f] for f in _CODEX_FIELDS[:4]):
            return None
        model = info.get("model") if isinstance(info.get("model"), str) else None
        model = model or self.model or "unknown"
        cached = min(delta["cached_input_tokens"], delta["input_tokens"])
        inp, out = delta["input_tokens"] - cached, delta["output_tokens"]
        cum = total["total_tokens"] if total is not None else None
        return UsageRow(
            time=when, session_id=self.session_id, project=self.project, model=model,
            input=inp, output=out, cache_write_5m=0, cache_write_1h=0, cache_read=cached,
            cost=self.pricing.cost(model, inp, out, 0, 0, cached),
            # Codex has no response ids: the session plus its cumulative count names one
            # response stably, so re-reading a file (or a copy of it) dedups.
            message_id=f"{self.session_id}:{cum}" if cum is not None else None,
            request_id=str(stamp) if cum is not None else None,
            sidechain=False, source=self.source, agent="codex",
        )


def _codex_usage(value: Any) -> dict[str, int] | None:
    if not isinstance(value, dict):
        return None
    out = {f: _num(value.get(f)) for f in _CODEX_FIELDS}
    if not out["total_tokens"]:
        out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
    return out


def _codex_delta(total: dict[str, int], prev: dict[str, int] | None) -> dict[str, int]:
    if prev is None or any(total[f] < prev[f] for f in _CODEX_FIELDS):
        return dict(total)
    return {f: total[f] - prev[f] for f in _CODEX_FIELDS}


def _is_codex_file(path: str | os.PathLike[str]) -> bool:
    return os.path.basename(path).startswith("rollout-")


class _AiderState:
    """Rows from Aider's analytics log: one per ``message_send`` (usage/aider.py).

    Aider's own cost is kept (it priced the reply with the model metadata it ran with); when
    it had none (an unknown model logs cost 0) the pricing table is asked. Aider logs no
    response ids: the log (one per spawn) and the reply's ordinal name it stably, so reading
    a file again dedups.
    """

    def __init__(self, source: str, pricing: Pricing):
        self.source = source
        self.pricing = pricing
        self.session_id = _aider.log_session_id(source)
        self.n = 0

    def feed(self, line: bytes) -> UsageRow | None:
        msg = _aider.parse_line(line)
        if msg is None:
            return None
        self.n += 1
        inp, out = msg.prompt_tokens, msg.completion_tokens
        cost = msg.cost if msg.cost is not None else self.pricing.cost(msg.model, inp, out)
        return UsageRow(
            time=datetime.fromtimestamp(msg.time, timezone.utc), session_id=self.session_id,
            project="", model=msg.model, input=inp, output=out, cache_write_5m=0,
            cache_write_1h=0, cache_read=0, cost=cost,
            message_id=f"{self.session_id}:{self.n}", request_id=str(int(msg.time)),
            sidechain=False, source=self.source, agent="aider")


class _GeminiState:
    """Rows from a Gemini CLI chat file: one per ``gemini`` message with ``tokens``
    (usage/gemini.py). The message id is a UUID the CLI keeps when it re-appends the message,
    and the message's timestamp never changes, so re-reads and copies dedup on them. Prompt
    tokens include the cached ones (``cache_read``); thoughts are billed as output.
    """

    def __init__(self, source: str, pricing: Pricing):
        self.source = source
        self.pricing = pricing
        stem = Path(source).stem
        self.session_id = stem.rsplit("-", 1)[-1] if stem.startswith("session-") else stem
        self.project = _gemini.chat_project(source)

    def feed(self, line: bytes) -> UsageRow | None:
        rows = self.feed_all(line)
        return rows[-1] if rows else None

    def feed_all(self, line: bytes) -> list[UsageRow]:
        sid, found = _gemini.parse_line(line)
        if sid:
            self.session_id = sid
        out: list[UsageRow] = []
        for r in found:
            when = _parse_time(r.timestamp)
            if when is None:
                continue
            inp, out_n, cached = r.uncached_input, r.output, r.cached
            out.append(UsageRow(
                time=when, session_id=self.session_id, project=self.project, model=r.model,
                input=inp, output=out_n, cache_write_5m=0, cache_write_1h=0, cache_read=cached,
                cost=self.pricing.cost(r.model, inp, out_n, 0, 0, cached),
                message_id=r.message_id, request_id=r.timestamp,
                sidechain=False, source=self.source, agent="gemini"))
        return out


_LineState = Union[_CodexState, _AiderState, _GeminiState]


def _kind(path: str | os.PathLike[str], agent: str | None) -> str:
    if agent:
        return agent
    if _is_codex_file(path):
        return "codex"
    if _aider.is_aider_log(path):
        return "aider"
    return "gemini" if _gemini.is_gemini_chat(path) else "claude"


def _line_state(kind: str, source: str, pricing: Pricing) -> _LineState | None:
    """The line-by-line reader of a non-Claude file (Claude's have a fast path of their own)."""
    if kind == "codex":
        return _CodexState(source, pricing)
    if kind == "aider":
        return _AiderState(source, pricing)
    if kind == "gemini":
        return _GeminiState(source, pricing)
    return None


# --------------------------------------------------------------------------------------------
# Dedup
# --------------------------------------------------------------------------------------------


class UsageLedger:
    """Deduplicated rows: one per API response across lines, files and polls.

    Claude Code writes one line per content block, all with the same ``message.id`` +
    ``requestId``; resumed sessions copy history into new files. A copy replaces the kept row
    only if it is strictly better: more tokens (earlier lines of a response can carry partial
    output counts, so the fullest line wins), or as many tokens but not a sidechain while the
    kept one is. Among equal copies the first seen stays -- as in ccusage, so the same rows
    fall in the same billing blocks -- and with files read oldest first the original session
    keeps the credit for history a resumed session copied. Rows without both ids cannot be
    matched and are all kept (as ccusage does).
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], UsageRow] = {}
        self._unkeyed: list[UsageRow] = []

    def wants(self, key: tuple[str, str | None, str | None], total: int, sidechain: bool) -> bool:
        """Would a row with this key, token total and sidechain flag be kept?"""
        old = self._by_key.get(key)  # type: ignore[arg-type]
        if old is None:
            return True
        return _better(total, sidechain, old)

    def add(self, row: UsageRow) -> tuple[UsageRow | None, UsageRow | None]:
        """Offer a row; returns ``(kept, replaced)``: ``kept`` is ``row`` if it now counts."""
        key = row.key
        if key is None:
            self._unkeyed.append(row)
            return row, None
        old = self._by_key.get(key)
        if old is None:
            self._by_key[key] = row
            return row, None
        if _better(row.total_tokens, row.sidechain, old):
            self._by_key[key] = row
            return row, old
        return None, None

    def rows(self) -> list[UsageRow]:
        return [*self._by_key.values(), *self._unkeyed]

    def __len__(self) -> int:
        return len(self._by_key) + len(self._unkeyed)


def _better(total: int, sidechain: bool, old: UsageRow) -> bool:
    have = old.total_tokens
    if total != have:
        return total > have
    return old.sidechain and not sidechain


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def collect_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every transcript under ``paths`` (files as given, directories searched for ``*.jsonl``),
    oldest first (mtime, then path) so the original of a copied message is seen first.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    return [Path(f) for f, _ in _collect(paths)]


def _collect(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[str, int]]:
    """:func:`collect_files` as ``(path, size)`` pairs: one ``stat`` per file, no ``Path``
    objects (on 15,000 short sessions the old walk + two stats per file were 0.3 s)."""
    seen: dict[tuple[int, int], tuple[float, str, int]] = {}
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = _walk_jsonl(str(path))
        elif path.exists():
            found = [str(path)]
        else:
            raise FileNotFoundError(str(path))
        for f in found:
            try:
                st = os.stat(f)
            except OSError:
                continue
            seen.setdefault((st.st_dev, st.st_ino), (st.st_mtime, f, st.st_size))
    return [(f, size) for _, f, size in sorted(seen.values())]


def _walk_jsonl(root: str) -> list[str]:
    """``*.jsonl`` files under ``root``, as ``os.walk(root)`` finds them (symlinked
    directories are not entered; symlinks to files count)."""
    out: list[str] = []
    stack = [root]
    while stack:
        top = stack.pop()
        try:
            entries = os.scandir(top)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    if not entry.is_symlink():
                        stack.append(entry.path)
                elif entry.name.endswith(".jsonl"):
                    out.append(entry.path)
    return out


def _read_pieces(f: Any, final: bool) -> Iterator[tuple[bytes, int]]:
    """``(buf, end)`` pieces from the current position: ``buf[:end]`` is whole lines.

    Up to 64 MiB is read in one go (no copies); bigger files in 4 MiB chunks. A last line
    without its newline is included only when ``final`` (a whole-file read); a follower leaves
    it for the next poll, since the writer may be half-way through it.
    """
    here = f.tell()
    size = os.fstat(f.fileno()).st_size
    if size - here <= _WHOLE_FILE:
        data = f.read()
        end = len(data) if final else data.rfind(b"\n") + 1
        if end:
            yield data, end
        return
    carry = b""
    while True:
        data = f.read(_CHUNK)
        if not data:
            break
        buf = carry + data if carry else data
        end = buf.rfind(b"\n") + 1
        carry = buf[end:]
        if end:
            yield buf, end
    if final and carry:
        yield carry, len(carry)


def _rows_from_file(path: str | Path, pricing: Pricing, agent: str | None = None,
                    ledger: UsageLedger | None = None, fast: bool = True) -> Iterator[UsageRow]:
    source = str(path)
    state = _line_state(_kind(path, agent), source, pricing)
    with open(path, "rb") as f:
        for buf, end in _read_pieces(f, final=True):
            yield from _rows_in(buf, end, source, pricing, state, ledger, fast)


def _rows_in(buf: bytes, end: int, source: str, pricing: Pricing, state: _LineState | None,
             ledger: UsageLedger | None = None, fast: bool = True) -> Iterator[UsageRow]:
    if state is None and fast:
        yield from _claude_rows_in(buf, end, source, pricing, ledger)
        return
    if state is None:  # the reference: every line through json.loads, no shortcuts
        for line in buf[:end].split(b"\n"):
            row = parse_claude_line(line, source, pricing, fast=False)
            if row is not None:
                yield row
        return
    if isinstance(state, _GeminiState):  # a line can hold many (``$set.messages``)
        for line in buf[:end].split(b"\n"):
            yield from state.feed_all(line)
        return
    for line in buf[:end].split(b"\n"):
        row = state.feed(line)
        if row is not None:
            yield row


def iter_rows(paths: Iterable[str | os.PathLike[str]], pricing: Pricing | None = None,
              agent: str | None = None, on_error: Any = None, fast: bool = True) -> Iterator[UsageRow]:
    """Every line's row, copies included (not deduplicated), oldest file first.

    Unreadable files are skipped; ``on_error(path, exc)`` is told about them. ``fast=False``
    is the slow reference: every line through ``json.loads``, no pre-filter.
    """
    pricing = pricing or Pricing.default()
    for path in collect_files(paths):
        yield from _file_rows_safely(path, pricing, agent, on_error, None, fast)


def load_usage(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
               pricing: Pricing | None = None, agent: str | None = None,
               on_error: Any = None, fast: bool = True) -> list[UsageRow]:
    """Deduplicated rows from transcripts: a file, a list of files, or directory trees.

    Codex rollouts (``rollout-*.jsonl``) are recognised by name unless ``agent`` is given.
    ``fast=False`` gives the same rows the slow way: every line through ``json.loads``, no
    pre-filter, no skipping (the reference the fast path is tested against). For reports over
    a large history, :func:`tally_usage` needs far less memory.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    pricing = pricing or Pricing.default()
    ledger = UsageLedger()
    for path in collect_files(paths):
        for row in _file_rows_safely(path, pricing, agent, on_error, ledger if fast else None, fast):
            ledger.add(row)
    return ledger.rows()


def _file_rows_safely(path: str | Path, pricing: Pricing, agent: str | None, on_error: Any,
                      ledger: Any, fast: bool = True) -> Iterator[UsageRow]:
    try:
        yield from _rows_from_file(path, pricing, agent, ledger, fast)
    except OSError as exc:
        if on_error is not None:
            on_error(Path(path), exc)


# -- compact tally (the CLI) ---------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PACK = struct.Struct("<q5qdBI6I")  # time (µs), 5 token counts, cost, flags, file rank, strings
_NAN = float("nan")


class UsageTally:
    """Deduplicated usage in ~270 bytes per API response instead of a row object (~880).

    Same rule as :class:`UsageLedger`, but each response is one packed struct in a dict keyed
    by its ids, with strings (session, cwd, model, file, ...) kept once in a table; rows are
    rebuilt one at a time by :meth:`rows`. Every entry remembers the rank of its file, and an
    equal copy from an earlier file wins, so tallies of different files can be merged in any
    order (the CLI parses half the files in a forked process) with the result of one pass.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, bytes] = {}
        self._unkeyed: list[tuple[str | None, str | None, bytes]] = []  # ids kept as they are
        self._strings: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_key) + len(self._unkeyed)

    def _sid(self, text: str) -> int:
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self._strings)
            self._strings.append(text)
        return i

    def wants(self, key: tuple[str, str | None, str | None], total: int, sidechain: bool) -> bool:
        """Would a copy from the file being read now (files go in rank order) be kept?"""
        if key[1] is None or key[2] is None:
            return True
        old = self._by_key.get("\0".join(key))  # type: ignore[arg-type]
        return old is None or _rank(total, sidechain) > _packed_rank(old)

    def add(self, row: UsageRow, rank: int) -> None:
        """Count ``row``, read from the file of rank ``rank`` (lines of a file in order)."""
        cost = _NAN if row.cost is None else row.cost
        packed = _PACK.pack(
            (row.time - _EPOCH) // _MICROSECOND, row.input, row.output, row.cache_write_5m,
            row.cache_write_1h, row.cache_read, cost, 1 if row.sidechain else 0, rank,
            self._sid(row.session_id), self._sid(row.project), self._sid(row.model),
            self._sid(row.source), self._sid(row.agent), self._sid(row.speed))
        key = row.key
        if key is None:
            self._unkeyed.append((row.message_id, row.request_id, packed))
        else:
            self._offer("\0".join(key), packed)

    def _offer(self, key: str, packed: bytes) -> None:
        old = self._by_key.get(key)
        if old is None or _packed_wins(packed, old):
            self._by_key[key] = packed

    def state(self) -> tuple[list[str], dict[str, bytes], list[tuple[str | None, str | None, bytes]]]:
        return self._strings, self._by_key, self._unkeyed

    def merge(self, state: tuple[list[str], dict[str, bytes],
                                 list[tuple[str | None, str | None, bytes]]]) -> None:
        """Fold in another tally's :meth:`state` (of other files)."""
        strings, by_key, unkeyed = state
        remap = [self._sid(t) for t in strings]

        def move(packed: bytes) -> bytes:
            f = list(_PACK.unpack(packed))
            f[9:] = [remap[i] for i in f[9:]]
            return _PACK.pack(*f)

        for key, packed in by_key.items():
            self._offer(key, move(packed))
        self._unkeyed.extend((mid, rid, move(p)) for mid, rid, p in unkeyed)

    def rows(self) -> Iterator[UsageRow]:
        """The counted rows, rebuilt one at a time."""
        strings = self._strings
        for key, packed in self._by_key.items():
            _, key_mid, key_rid = key.split("\0")
            yield _unpacked_row(packed, strings, key_mid, key_rid)
        for mid, rid, packed in self._unkeyed:
            yield _unpacked_row(packed, strings, mid, rid)


_MICROSECOND = timedelta(microseconds=1)


def _rank(total: int, sidechain: bool) -> tuple[int, bool]:
    return total, not sidechain


def _packed_rank(packed: bytes) -> tuple[int, bool]:
    f = _PACK.unpack(packed)
    return f[1] + f[2] + f[3] + f[4] + f[5], not f[7] & 1


def _packed_wins(new: bytes, old: bytes) -> bool:
    a, b = _packed_rank(new), _packed_rank(old)
    if a != b:
        return a > b
    return _PACK.unpack(new)[8] < _PACK.unpack(old)[8]  # equal: the earlier file's copy


def _unpacked_row(packed: bytes, strings: list[str], mid: str | None, rid: str | None) -> UsageRow:
    t, i, o, w5, w1h, r, cost, flags, _, s, p, m, src, agent, speed = _PACK.unpack(packed)
    return UsageRow(_EPOCH + t * _MICROSECOND, strings[s], strings[p], strings[m], i, o, w5, w1h,
                    r, None if cost != cost else cost, mid, rid, bool(flags & 1), strings[src],
                    strings[agent], strings[speed])


_PARALLEL_MIN = 32 << 20  # below this a fork costs more than it saves


def tally_usage(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
                pricing: Pricing | None = None, agent: str | None = None, on_error: Any = None,
                workers: int = 1) -> UsageTally:
    """Like :func:`load_usage`, as a compact :class:`UsageTally` for reports.

    ``workers`` > 1 parses part of the files in a forked child when there is enough work
    (32 MiB, counting each file as 16 KiB more than its size): only for single-threaded
    callers such as the CLI, since it forks.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    pricing = pricing or Pricing.default()
    found = _collect(paths)
    files = [f for f, _ in found]
    groups = _split_by_size([size for _, size in found], 2) if workers > 1 \
        else [list(range(len(files)))]
    if len(groups) > 1:
        return _tally_forked(files, groups, pricing, agent, on_error)
    tally = UsageTally()
    _tally_files(tally, files, groups[0], pricing, agent, on_error)
    return tally


def _tally_files(tally: UsageTally, files: list[str], indexes: list[int], pricing: Pricing,
                 agent: str | None, on_error: Any) -> None:
    for i in indexes:
        path = files[i]
        if _kind(path, agent) != "claude":
            for row in _file_rows_safely(path, pricing, agent, on_error, tally):
                tally.add(row, i)
            continue
        try:
            with open(path, "rb") as f:
                for buf, end in _read_pieces(f, final=True):
                    _tally_claude(tally, buf, end, path, i, pricing)
        except OSError as exc:
            if on_error is not None:
                on_error(Path(path), exc)


_FILE_COST = 16 << 10  # opening and setting up a file costs about as much as 16 KiB of lines


def _split_by_size(sizes: list[int], workers: int) -> list[list[int]]:
    """File indexes in ``workers`` groups of about equal work (largest first, greedy); the
    first group, ours, gets less, since we also merge at the end."""
    work = sorted(((size + _FILE_COST, i) for i, size in enumerate(sizes)), reverse=True)
    if sum(w for w, _ in work) < _PARALLEL_MIN or len(sizes) < 2:
        return [list(range(len(sizes)))]
    groups: list[list[int]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    weight = [1.15] + [1.0] * (workers - 1)
    for w, i in work:
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += w * weight[g]
    return [sorted(g) for g in groups if g]


def _tally_forked(files: list[str], groups: list[list[int]], pricing: Pricing,
                  agent: str | None, on_error: Any) -> UsageTally:
    """Tally ``groups[1]`` in a forked child while this process tallies ``groups[0]``.

    A bare fork and a pipe (``multiprocessing`` alone costs ~45 ms to import); the child
    sends its tally pickled and exits. If anything goes wrong there, we do its share here.
    """
    import pickle

    errors: list[tuple[int, int | None, str | None]] = []

    rank = {f: i for i, f in enumerate(files)}

    def note(path: Path, exc: OSError) -> None:
        errors.append((rank[str(path)], exc.errno, exc.strerror))

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 1
        try:
            os.close(read_fd)
            theirs = UsageTally()
            _tally_files(theirs, files, groups[1], pricing, agent, note)
            with os.fdopen(write_fd, "wb") as out:
                out.write(pickle.dumps((theirs.state(), errors), 5))
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    tally = UsageTally()
    _tally_files(tally, files, groups[0], pricing, agent, note)
    with os.fdopen(read_fd, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status == 0 and payload:
        state, their_errors = pickle.loads(payload)
        tally.merge(state)
        errors.extend(their_errors)
    else:
        _tally_files(tally, files, groups[1], pricing, agent, note)
    if on_error is not None:
        for i, errno, strerror in sorted(errors):
            on_error(Path(files[i]), OSError(errno, strerror))
    return tally


def parse_claude_transcripts(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
                             pricing: Pricing | None = None) -> list[UsageRow]:
    """Deduplicated rows from Claude Code transcripts (``~/.claude/projects`` or any files)."""
    return load_usage(paths, pricing, agent="claude")


def parse_codex_rollouts(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
                         pricing: Pricing | None = None) -> list[UsageRow]:
    """Rows from Codex CLI rollouts (``~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl``)."""
    return load_usage(paths, pricing, agent="codex")


# --------------------------------------------------------------------------------------------
# Live following
# --------------------------------------------------------------------------------------------


@dataclass
class _FileMark:
    inode: int
    device: int
    offset: int
    tail: bytes  # the last bytes before ``offset``: tells an in-place rewrite from growth


class TranscriptFollower:
    """Follows one live transcript: each :meth:`poll` reads only what was appended since.

    Only complete lines are consumed (a partial last line waits for its newline). A file that
    shrank (truncation) or was replaced (another inode, e.g. a rewrite on compaction) or whose
    bytes before our offset changed is read again from the start; the ledger's dedup makes
    the re-read harmless, and usage already seen is kept, since it was spent.
    """

    TAIL = 64

    def __init__(self, path: str | os.PathLike[str], pricing: Pricing | None = None,
                 agent: str | None = None, ledger: UsageLedger | None = None):
        self.path = Path(path)
        self.pricing = pricing or Pricing.default()
        self.agent = _kind(self.path, agent)
        self.ledger = ledger if ledger is not None else UsageLedger()
        self._mark: _FileMark | None = None
        self._codex: _LineState | None = None  # the line reader of a Codex or Aider file
        self.restarts = 0

    @property
    def offset(self) -> int:
        return self._mark.offset if self._mark else 0

    def rows(self) -> list[UsageRow]:
        return self.ledger.rows()

    def poll(self) -> list[UsageRow]:
        """New or updated rows since the last call (a missing file gives none).

        A returned row supersedes any earlier one with the same :attr:`UsageRow.key`.
        """
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with f:
            st = os.fstat(f.fileno())
            if self._must_restart(f, st):
                self._restart(st)
            assert self._mark is not None
            f.seek(self._mark.offset)
            changed: dict[int, UsageRow] = {}
            for buf, end in _read_pieces(f, final=False):
                for row in _rows_in(buf, end, str(self.path), self.pricing, self._codex,
                                    self.ledger):
                    kept, replaced = self.ledger.add(row)
                    if replaced is not None:
                        changed.pop(id(replaced), None)
                    if kept is not None:
                        changed[id(kept)] = kept
                self._mark.offset += end
                self._mark.tail = (self._mark.tail + buf[max(0, end - self.TAIL):end])[-self.TAIL:]
            return list(changed.values())

    def _must_restart(self, f: Any, st: os.stat_result) -> bool:
        mark = self._mark
        if mark is None:
            return True
        if (st.st_ino, st.st_dev) != (mark.inode, mark.device) or st.st_size < mark.offset:
            return True
        if mark.tail:
            f.seek(mark.offset - len(mark.tail))
            if f.read(len(mark.tail)) != mark.tail:
                return True
        return False

    def _restart(self, st: os.stat_result) -> None:
        if self._mark is not None:
            self.restarts += 1
        self._mark = _FileMark(st.st_ino, st.st_dev, 0, b"")
        self._codex = _line_state(self.agent, str(self.path), self.pricing)


# --------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------

_TOKEN_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass(slots=True)
class _Sum:
    """Running sums for one group; ``unknown`` holds models that could not be priced.

    Costs are kept and added with ``math.fsum`` at the end: the exactly rounded sum does not
    depend on the order rows come in, which differs with how the CLI splits files between its
    two processes (a running ``+=`` gave last-digit differences between splits).
    """

    requests: int = 0
    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    costs: list[float] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None

    @property
    def cost(self) -> float:
        return math.fsum(self.costs)

    def add(self, row: UsageRow, label: str | None = None) -> None:
        label = label or _model_label(row)
        self.requests += 1
        self.input += row.input
        self.output += row.output
        self.cache_write_5m += row.cache_write_5m
        self.cache_write_1h += row.cache_write_1h
        self.cache_read += row.cache_read
        cost = row.cost
        if cost is None:
            self.unknown.add(label)
        else:
            self.costs.append(cost)
        self.models.add(label)
        t = row.time
        first = self.first
        if first is None:
            self.first = self.last = t
        elif t < first:
            self.first = t
        elif t > self.last:  # type: ignore[operator]
            self.last = t

    def merge(self, other: "_Sum") -> None:
        self.requests += other.requests
        self.input += other.input
        self.output += other.output
        self.cache_write_5m += other.cache_write_5m
        self.cache_write_1h += other.cache_write_1h
        self.cache_read += other.cache_read
        self.costs.extend(other.costs)
        self.unknown |= other.unknown
        self.models |= other.models
        for t in (other.first, other.last):
            if t is not None:
                self.first = t if self.first is None or t < self.first else self.first
                self.last = t if self.last is None or t > self.last else self.last

    def to_json(self) -> dict[str, Any]:
        w5, w1h = self.cache_write_5m, self.cache_write_1h
        return {
            "requests": self.requests,
            "input": self.input,
            "output": self.output,
            "cache_write_5m": w5,
            "cache_write_1h": w1h,
            "cache_read": self.cache_read,
            "cache_write": w5 + w1h,
            "total_tokens": self.input + self.output + w5 + w1h + self.cache_read,
            "cost": math.fsum(self.costs),
            "cost_complete": not self.unknown,
            "unknown_models": sorted(self.unknown),
            "models": sorted(self.models),
            "first": _iso(self.first) if self.first else None,
            "last": _iso(self.last) if self.last else None,
        }


def _model_label(row: UsageRow) -> str:
    """ccusage's display name: fast-mode requests are their own line item."""
    return f"{row.model}-fast" if row.speed == "fast" else row.model


def totals(rows: Iterable[UsageRow]) -> dict[str, Any]:
    """Token sums and cost over ``rows``; ``cost_complete`` is false if any model is unknown."""
    s = _Sum()
    for row in rows:
        s.add(row)
    return s.to_json()


def aggregate_with_totals(rows: Iterable[UsageRow], by: GroupBy = "session", *,
                          now: datetime | None = None, tz: tzinfo | None = None,
                          breakdown: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`aggregate` and :func:`totals` (plus a ``sessions`` count) in one pass."""
    if by == "block":
        rows = list(rows)
        grand = totals(rows)
        grand["sessions"] = len({r.session_id for r in rows})
        return billing_blocks(rows, now=now), grand
    total = _Sum()
    sessions: set[str] = set()
    groups = _aggregate(rows, by, tz, breakdown, total, sessions)
    grand = total.to_json()
    grand["sessions"] = len(sessions)
    return groups, grand


def aggregate(rows: Iterable[UsageRow], by: GroupBy = "session", *, now: datetime | None = None,
              tz: tzinfo | None = None, breakdown: bool = False) -> list[dict[str, Any]]:
    """Plain-dict aggregates of ``rows`` by session, day (``tz``, default UTC), model or
    5-hour billing block (see :func:`billing_blocks`), in one pass.

    Each group has token sums, ``cost`` (of the priced rows), ``cost_complete`` and
    ``unknown_models``; ``breakdown=True`` adds ``by_model``, the same per model.
    """
    if by == "block":
        return billing_blocks(rows, now=now)
    return _aggregate(rows, by, tz, breakdown, None, None)


def _aggregate(rows: Iterable[UsageRow], by: str, tz: tzinfo | None, breakdown: bool,
               grand: _Sum | None, sessions: set[str] | None) -> list[dict[str, Any]]:
    if by not in ("session", "day", "model"):
        raise ValueError(f"unknown grouping {by!r}: use session, day, model or block")
    groups: dict[str, _Sum] = {}
    parts: dict[str, dict[str, _Sum]] = {}
    info: dict[str, list[Any]] = {}  # session -> [agent, project, time of that project]
    for row in rows:
        label = _model_label(row)
        key = row.session_id if by == "session" else label if by == "model" else \
            row.time.astimezone(tz or timezone.utc).date().isoformat()
        s = groups.get(key)
        if s is None:
            s = groups[key] = _Sum()
            parts[key] = {}
            info[key] = [row.agent, "", None]
        s.add(row, label)
        if sessions is not None:
            sessions.add(row.session_id)
        if breakdown:
            ms = parts[key].get(label)
            if ms is None:
                ms = parts[key][label] = _Sum()
            ms.add(row, label)
        if by == "session" and row.project:
            meta = info[key]
            if meta[2] is None or row.time >= meta[2]:
                meta[1], meta[2] = row.project, row.time
    out = []
    for key, s in groups.items():
        if grand is not None:
            grand.merge(s)
        if by == "session":
            d: dict[str, Any] = {"session_id": key, "agent": info[key][0], "project": info[key][1]}
        else:
            d = {by: key}
        d.update(s.to_json())
        if breakdown:
            d["by_model"] = [{"model": m, **ms.to_json()} for m, ms in sorted(parts[key].items())]
        out.append(d)
    sort_key = "last" if by == "session" else ("day" if by == "day" else "model")
    out.sort(key=lambda d: (d[sort_key] or "", d.get("session_id", "")))
    return out


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def billing_blocks(rows: Iterable[UsageRow], *, now: datetime | None = None,
                   hours: float = BLOCK_HOURS) -> list[dict[str, Any]]:
    """5-hour billing blocks as ``ccusage blocks`` computes them.

    Rows are sorted by time; a block starts at the first row's time floored to the UTC hour
    and takes rows until one comes more than ``hours`` after the block start or more than
    ``hours`` after the previous row. Such a long pause also yields a gap block from
    ``previous + hours`` to the next row. A block is active if its last row is less than
    ``hours`` before ``now`` and ``now`` is before the block end.
    """
    now = now or datetime.now(timezone.utc)
    span = timedelta(hours=hours)
    blocks: list[dict[str, Any]] = []
    start: datetime | None = None
    current: list[UsageRow] = []
    for row in sorted(rows, key=lambda r: r.time):
        if start is None:
            start, current = _floor_hour(row.time), [row]
            continue
        last = current[-1].time
        if row.time - start > span or row.time - last > span:
            blocks.append(_block(start, current, now, span))
            if row.time - last > span:
                blocks.append(_gap_block(last + span, row.time))
            start, current = _floor_hour(row.time), [row]
        else:
            current.append(row)
    if start is not None and current:
        blocks.append(_block(start, current, now, span))
    return blocks


def _block(start: datetime, rows: list[UsageRow], now: datetime, span: timedelta) -> dict[str, Any]:
    s = _Sum()
    for row in rows:
        s.add(row)
    end = start + span
    actual_end = rows[-1].time
    return {
        "block": _iso(start),
        "id": _iso(start),
        "start": _iso(start),
        "end": _iso(end),
        "actual_end": _iso(actual_end),
        "is_active": (now - actual_end) < span and now < end,
        "is_gap": False,
        **s.to_json(),
    }


def _gap_block(gap_start: datetime, gap_end: datetime) -> dict[str, Any]:
    return {
        "block": f"gap-{_iso(gap_start)}",
        "id": f"gap-{_iso(gap_start)}",
        "start": _iso(gap_start),
        "end": _iso(gap_end),
        "actual_end": None,
        "is_active": False,
        "is_gap": True,
        **_Sum().to_json(),
    }
