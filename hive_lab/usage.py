"""Token usage and cost from agent transcripts (Claude Code, Codex CLI).

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
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Pricing",
    "ModelRates",
    "UsageRow",
    "UsageLedger",
    "TranscriptFollower",
    "parse_claude_line",
    "parse_claude_transcripts",
    "parse_codex_rollouts",
    "load_usage",
    "collect_files",
    "aggregate",
    "billing_blocks",
    "totals",
]

PRICING_FILE = Path(__file__).with_name("pricing.json")
_CHUNK = 1 << 22  # 4 MiB reads: big enough to amortise syscalls, small enough to stay flat
BLOCK_HOURS = 5

Agent = Literal["claude", "codex"]
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
    agent: str = "claude"
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
    t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


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


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


# --------------------------------------------------------------------------------------------
# Claude Code transcript lines
# --------------------------------------------------------------------------------------------

_scan = json.JSONDecoder().scan_once  # the C scanner without json.loads' per-call overhead
_USAGE = b'"usage":'
_MESSAGE = b'"message":{'
_CONTENT = b',"content":'
_TAIL_OPEN = '{"m":{"usage":'


def _scan_whole(text: str) -> Any:
    """Parse ``text`` as exactly one JSON value (trailing whitespace allowed), else raise."""
    obj, end = _scan(text, 0)
    if end != len(text) and text[end:].strip():
        raise ValueError("trailing data")
    return obj


def _split_fast(line: bytes) -> tuple[dict, dict, dict] | None:
    """(root members, message members, usage) without parsing the message content.

    Claude Code writes compact JSON: ``{<root members>,"message":{"id":..,"model":..,
    "content":[...big...],..,"usage":{..},..},<root members>}``. We parse three small pieces:
    the root members before ``"message"`` (closing them with ``}`` proves they are root
    members), the message members before ``"content"`` (same proof, one level down), and
    everything from the last ``"usage":`` to the end wrapped as ``{"m":{"usage":...`` (which
    parses only if that usage object's parent is a root member, so exactly two objects close
    after it). The content between is never decoded. Returns ``None`` -- use the full parser
    -- whenever a piece does not parse, the line is not an assistant line, or the message id
    or model is not where Claude Code puts them. The one assumption: in an assistant line the
    only root member holding a ``usage`` object is ``message`` (true of every Claude Code line).
    """
    u = line.rfind(_USAGE)
    m = line.find(_MESSAGE)
    if m < 1 or u < m or line[u + 8:u + 9] != b"{":
        return None
    try:
        if m == 1:
            root: dict = {}
        elif line[m - 1:m] == b",":
            root = _scan_whole(line[:m - 1].decode() + "}")
        else:
            return None
        c = line.find(_CONTENT, m, u)
        msg: dict = _scan_whole(line[m + 10:c].decode() + "}") if c > 0 else {}
        tail = _scan_whole(_TAIL_OPEN + line[u + 8:].decode())
    except (ValueError, StopIteration, IndexError):
        return None
    if not isinstance(root, dict) or not isinstance(msg, dict) or not isinstance(tail, dict):
        return None
    inner = tail.pop("m")
    root.update(tail)
    msg.update(inner)
    if root.get("type") != "assistant" or "id" not in msg or "model" not in msg:
        return None
    return root, msg, msg["usage"]


def _split_full(line: bytes) -> tuple[dict, dict, dict] | None:
    """Reference parser: the whole line through ``json.loads``."""
    try:
        d = json.loads(line)
    except (ValueError, UnicodeDecodeError):
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


def _cache_writes(usage: dict) -> tuple[int, int]:
    """(5-minute, 1-hour) cache writes.

    The breakdown object can be all zeros while ``cache_creation_input_tokens`` is not (seen in
    Claude Code 2.1.197): the unexplained remainder is billed as 5-minute writes, the default
    TTL. When the breakdown adds up to more than the total, the breakdown wins.
    """
    total = _count(usage.get("cache_creation_input_tokens")) or 0
    breakdown = usage.get("cache_creation")
    w5 = w1h = 0
    if isinstance(breakdown, dict):
        w5 = _count(breakdown.get("ephemeral_5m_input_tokens")) or 0
        w1h = _count(breakdown.get("ephemeral_1h_input_tokens")) or 0
    return max(w5, total - w1h), w1h


def _row_from_parts(root: dict, msg: dict, usage: dict, source: str,
                    pricing: Pricing) -> UsageRow | None:
    inp = _count(usage.get("input_tokens"))
    out = _count(usage.get("output_tokens"))
    when = _parse_time(root.get("timestamp"))
    if inp is None or out is None or when is None:
        return None  # same rule as ccusage: no counts or no time, no row
    w5, w1h = _cache_writes(usage)
    read = _count(usage.get("cache_read_input_tokens")) or 0
    model = msg.get("model")
    model = model if isinstance(model, str) and model else "unknown"
    speed = usage.get("speed")
    speed = speed if isinstance(speed, str) and speed else "standard"
    session = root.get("sessionId")
    cwd = root.get("cwd")
    mid, rid = msg.get("id"), root.get("requestId")
    return UsageRow(
        time=when,
        session_id=session if isinstance(session, str) and session else Path(source).stem,
        project=cwd if isinstance(cwd, str) else "",
        model=model,
        input=inp,
        output=out,
        cache_write_5m=w5,
        cache_write_1h=w1h,
        cache_read=read,
        cost=pricing.cost(model, inp, out, w5, w1h, read, speed),
        message_id=mid if isinstance(mid, str) and mid else None,
        request_id=rid if isinstance(rid, str) and rid else None,
        sidechain=root.get("isSidechain") is True,
        source=source,
        agent="claude",
        speed=speed,
    )


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


def _claude_rows_in(buf: bytes, source: str, pricing: Pricing) -> Iterator[UsageRow]:
    """Rows from a buffer of complete lines, touching only lines that mention usage.

    The search for ``"usage"`` runs over the whole buffer in C; lines without it (tool
    results, attachments, snapshots: most of the bytes) are never split out or decoded.
    """
    pos, n = 0, len(buf)
    find, rfind = buf.find, buf.rfind
    while pos < n:
        k = find(b'"usage"', pos)
        if k < 0:
            return
        start = rfind(b"\n", 0, k) + 1
        end = find(b"\n", k)
        if end < 0:
            end = n
        row = parse_claude_line(buf[start:end], source, pricing)
        if row is not None:
            yield row
        pos = end + 1


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
        meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else payload
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
    out = {f: (_count(value.get(f)) or 0) for f in _CODEX_FIELDS}
    if not out["total_tokens"]:
        out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
    return out


def _codex_delta(total: dict[str, int], prev: dict[str, int] | None) -> dict[str, int]:
    if prev is None or any(total[f] < prev[f] for f in _CODEX_FIELDS):
        return dict(total)
    return {f: total[f] - prev[f] for f in _CODEX_FIELDS}


def _is_codex_file(path: Path) -> bool:
    return path.name.startswith("rollout-")


# --------------------------------------------------------------------------------------------
# Dedup
# --------------------------------------------------------------------------------------------


class UsageLedger:
    """Deduplicated rows: one per API response across lines, files and polls.

    Claude Code writes one line per content block, all with the same ``message.id`` +
    ``requestId``; resumed sessions copy history into new files. We keep the fullest copy
    (most tokens; within one file the later line wins a tie, since earlier lines can carry
    partial output counts), and a non-sidechain copy beats a sidechain one. Across files a
    tie keeps the first copy seen, so with files read oldest first the original session keeps
    the credit. Rows without both ids cannot be matched and are all kept (as ccusage does).
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], UsageRow] = {}
        self._unkeyed: list[UsageRow] = []

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
        if _better(row, old):
            self._by_key[key] = row
            return row, old
        return None, None

    def rows(self) -> list[UsageRow]:
        return [*self._by_key.values(), *self._unkeyed]

    def __len__(self) -> int:
        return len(self._by_key) + len(self._unkeyed)


def _better(new: UsageRow, old: UsageRow) -> bool:
    if new.sidechain != old.sidechain:
        return old.sidechain
    a, b = new.total_tokens, old.total_tokens
    if a != b:
        return a > b
    return new.source == old.source


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def collect_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every transcript under ``paths`` (files as given, directories searched for ``*.jsonl``),
    oldest first (mtime, then path) so the original of a copied message is seen first.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    seen: dict[str, tuple[float, Path]] = {}
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = _walk_jsonl(path)
        elif path.exists():
            found = [path]
        else:
            raise FileNotFoundError(str(path))
        for f in found:
            real = os.path.realpath(f)
            if real not in seen:
                try:
                    seen[real] = (f.stat().st_mtime, f)
                except OSError:
                    continue
    return [f for _, f in sorted(seen.values(), key=lambda mf: (mf[0], str(mf[1])))]


def _walk_jsonl(root: Path) -> list[Path]:
    out = []
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        out.extend(Path(dirpath, name) for name in files if name.endswith(".jsonl"))
    return out


def _read_lines(f: Any, final: bool, chunk: int = _CHUNK) -> Iterator[tuple[bytes, int]]:
    """(buffer of whole lines, bytes consumed) pieces, read ``chunk`` bytes at a time.

    A last line without its newline is yielded only when ``final`` (a whole-file read); a
    follower leaves it for the next poll, since the writer may be half-way through it.
    """
    carry = b""
    while True:
        data = f.read(chunk)
        if not data:
            break
        buf = carry + data if carry else data
        cut = buf.rfind(b"\n") + 1
        carry = buf[cut:]
        if cut:
            yield buf[:cut], cut
    if final and carry:
        yield carry, len(carry)


def _rows_from_file(path: Path, pricing: Pricing, agent: str | None = None) -> Iterator[UsageRow]:
    source = str(path)
    codex = agent == "codex" or (agent is None and _is_codex_file(path))
    state = _CodexState(source, pricing) if codex else None
    with open(path, "rb") as f:
        for buf, _ in _read_lines(f, final=True):
            yield from _rows_in(buf, source, pricing, state)


def _rows_in(buf: bytes, source: str, pricing: Pricing,
             state: _CodexState | None) -> Iterator[UsageRow]:
    if state is None:
        yield from _claude_rows_in(buf, source, pricing)
        return
    for line in buf.split(b"\n"):
        row = state.feed(line)
        if row is not None:
            yield row


def iter_rows(paths: Iterable[str | os.PathLike[str]], pricing: Pricing | None = None,
              agent: str | None = None, on_error: Any = None) -> Iterator[UsageRow]:
    """Every row of every file under ``paths``, not deduplicated, oldest file first.

    Unreadable files are skipped; ``on_error(path, exc)`` is told about them.
    """
    pricing = pricing or Pricing.default()
    for path in collect_files(paths):
        try:
            yield from _rows_from_file(path, pricing, agent)
        except OSError as exc:
            if on_error is not None:
                on_error(path, exc)


def load_usage(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
               pricing: Pricing | None = None, agent: str | None = None,
               on_error: Any = None) -> list[UsageRow]:
    """Deduplicated rows from transcripts: a file, a list of files, or directory trees.

    Codex rollouts (``rollout-*.jsonl``) are recognised by name unless ``agent`` is given.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    ledger = UsageLedger()
    for row in iter_rows(paths, pricing, agent, on_error):
        ledger.add(row)
    return ledger.rows()


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
        self.agent = agent or ("codex" if _is_codex_file(self.path) else "claude")
        self.ledger = ledger if ledger is not None else UsageLedger()
        self._mark: _FileMark | None = None
        self._codex: _CodexState | None = None
        self.restarts = 0

    @property
    def offset(self) -> int:
        return self._mark.offset if self._mark else 0

    def rows(self) -> list[UsageRow]:
        return self.ledger.rows()

    def poll(self) -> list[UsageRow]:
        """New or updated rows since the last call (a missing file gives none)."""
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
            for buf, used in _read_lines(f, final=False):
                for row in _rows_in(buf, str(self.path), self.pricing, self._codex):
                    kept, _ = self.ledger.add(row)
                    if kept is not None:
                        changed[id(kept)] = kept
                self._mark.offset += used
                self._mark.tail = (self._mark.tail + buf[-self.TAIL:])[-self.TAIL:]
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
        self._codex = _CodexState(str(self.path), self.pricing) if self.agent == "codex" else None


# --------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------

_TOKEN_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass
class _Sum:
    """Running sums for one group; ``unknown`` holds models that could not be priced."""

    requests: int = 0
    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    cost: float = 0.0
    unknown: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None

    def add(self, row: UsageRow) -> None:
        self.requests += 1
        self.input += row.input
        self.output += row.output
        self.cache_write_5m += row.cache_write_5m
        self.cache_write_1h += row.cache_write_1h
        self.cache_read += row.cache_read
        if row.cost is None:
            self.unknown.add(_model_label(row))
        else:
            self.cost += row.cost
        self.models.add(_model_label(row))
        if self.first is None or row.time < self.first:
            self.first = row.time
        if self.last is None or row.time > self.last:
            self.last = row.time

    def to_json(self) -> dict[str, Any]:
        tokens = {f: getattr(self, f) for f in _TOKEN_FIELDS}
        return {
            "requests": self.requests,
            **tokens,
            "cache_write": self.cache_write_5m + self.cache_write_1h,
            "total_tokens": sum(tokens.values()),
            "cost": self.cost,
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


def aggregate(rows: Iterable[UsageRow], by: GroupBy = "session", *, now: datetime | None = None,
              tz: tzinfo | None = None) -> list[dict[str, Any]]:
    """Plain-dict aggregates of ``rows`` by session, day (``tz``, default UTC), model or
    5-hour billing block (see :func:`billing_blocks`)."""
    if by == "block":
        return billing_blocks(rows, now=now)
    if by not in ("session", "day", "model"):
        raise ValueError(f"unknown grouping {by!r}: use session, day, model or block")
    groups: dict[str, _Sum] = {}
    extra: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = _group_key(row, by, tz)
        s = groups.get(key)
        if s is None:
            s = groups[key] = _Sum()
            extra[key] = {}
        s.add(row)
        if by == "session":
            info = extra[key]
            info["agent"] = row.agent
            if row.project and row.time >= info.get("project_time", row.time):
                info["project"], info["project_time"] = row.project, row.time
    out = []
    for key, s in groups.items():
        d = {by: key} if by != "session" else {"session_id": key}
        if by == "session":
            d["agent"] = extra[key]["agent"]
            d["project"] = extra[key].get("project", "")
        d.update(s.to_json())
        out.append(d)
    sort_key = "last" if by == "session" else ("day" if by == "day" else "model")
    out.sort(key=lambda d: (d[sort_key] or "", d.get("session_id", "")))
    return out


def _group_key(row: UsageRow, by: str, tz: tzinfo | None) -> str:
    if by == "session":
        return row.session_id
    if by == "model":
        return _model_label(row)
    return row.time.astimezone(tz or timezone.utc).date().isoformat()


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
