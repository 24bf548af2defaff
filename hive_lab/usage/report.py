"""``hive-lab usage``: token usage and cost straight from transcript files, no server needed.

``--json --by session`` is shaped like ``ccusage session --json`` (``sessions`` + ``totals``,
camelCase token fields, ``modelBreakdowns``) so totals can be compared key for key; our
extras say what ccusage cannot: 5m/1h cache writes, and which models could not be priced
(then ``totalCost`` is ``null`` and ``knownCost`` holds the priced part).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .jsonout import dumps_indented
from .parse import GroupBy, Pricing, UsageRow, UsageTally, aggregate_with_totals, tally_usage
from .tallyagg import aggregate_tally

PROG = "hive-lab usage"
GROUPINGS = ("session", "day", "model", "block")


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print usage + exit itself
        raise CliError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Token usage and cost from Claude Code transcripts, "
                "Codex CLI rollouts, Aider analytics logs and Gemini CLI chat files "
                "(default: $CLAUDE_CONFIG_DIR/projects or ~/.claude/projects).")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="transcript files or directories (searched for *.jsonl)")
    p.add_argument("--by", choices=GROUPINGS, default="session",
                   help="group per session (default), UTC day, model or 5-hour billing block")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--pricing", metavar="FILE",
                   help="JSON file of pricing overrides, merged over the shipped table")
    return p


def default_paths(env: dict[str, str] | None = None) -> list[Path]:
    """Claude Code's transcript roots, as Claude Code (and ccusage) resolve them.

    ``CLAUDE_CONFIG_DIR`` (comma-separated) wins; otherwise ``~/.config/claude`` and
    ``~/.claude``. Only roots that have a ``projects`` directory count.
    """
    env = dict(os.environ) if env is None else env
    configured = env.get("CLAUDE_CONFIG_DIR", "").strip()
    if configured:
        roots = [Path(p.strip()).expanduser() for p in configured.split(",") if p.strip()]
    else:
        home = Path(env.get("HOME") or Path.home())
        roots = [home / ".config" / "claude", home / ".claude"]
    return [r / "projects" for r in roots if (r / "projects").is_dir()]


# --------------------------------------------------------------------------------------------
# JSON documents
# --------------------------------------------------------------------------------------------


def _camel_tokens(agg: dict[str, Any]) -> dict[str, Any]:
    """Our aggregate dict -> ccusage's token/cost keys plus our extras."""
    complete = agg["cost_complete"]
    return {
        "inputTokens": agg["input"],
        "outputTokens": agg["output"],
        "cacheCreationTokens": agg["cache_write"],
        "cacheReadTokens": agg["cache_read"],
        "totalTokens": agg["total_tokens"],
        "totalCost": agg["cost"] if complete else None,
        "knownCost": agg["cost"],
        "costComplete": complete,
        "unknownModels": agg["unknown_models"],
        "cacheCreation5mTokens": agg["cache_write_5m"],
        "cacheCreation1hTokens": agg["cache_write_1h"],
        "requests": agg["requests"],
    }


def _model_breakdowns(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{
        "modelName": m["model"],
        "inputTokens": m["input"],
        "outputTokens": m["output"],
        "cacheCreationTokens": m["cache_write"],
        "cacheReadTokens": m["cache_read"],
        "cost": m["cost"] if m["cost_complete"] else None,
    } for m in models]


def _session_item(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "sessionId": s["session_id"],
        "projectPath": s["project"],
        "agent": s["agent"],
        **_camel_tokens(s),
        "firstTimestamp": s["first"],
        "lastTimestamp": s["last"],
        "lastActivity": (s["last"] or "")[:10],
        "modelsUsed": s["models"],
        "modelBreakdowns": _model_breakdowns(s["by_model"]),
    }


def _block_item(b: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": b["id"],
        "startTime": b["start"],
        "endTime": b["end"],
        "actualEndTime": b["actual_end"],
        "isActive": b["is_active"],
        "isGap": b["is_gap"],
        "entries": b["requests"],
        "tokenCounts": {
            "inputTokens": b["input"],
            "outputTokens": b["output"],
            "cacheCreationInputTokens": b["cache_write"],
            "cacheReadInputTokens": b["cache_read"],
        },
        **_camel_tokens(b),
        "costUSD": b["cost"] if b["cost_complete"] else None,
        "models": b["models"],
    }


def _day_item(d: dict[str, Any]) -> dict[str, Any]:
    return {"date": d["day"], **_camel_tokens(d), "modelsUsed": d["models"]}


def _model_item(m: dict[str, Any]) -> dict[str, Any]:
    return {"modelName": m["model"], **_camel_tokens(m)}


_ITEMS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "session": ("sessions", _session_item), "block": ("blocks", _block_item),
    "day": ("daily", _day_item), "model": ("models", _model_item)}


@dataclass
class ReportParts:
    """A report before it is a document: ``items`` is lazy (one pass), the rest is ready."""

    key: str
    items: Iterator[dict[str, Any]]
    totals: dict[str, Any]
    pricing: dict[str, str]


def report_parts(rows: Iterable[UsageRow] | UsageTally, by: GroupBy = "session",
                 pricing: Pricing | None = None) -> ReportParts:
    """:func:`usage_report` with its items made one at a time, as they are read.

    A :class:`UsageTally` is aggregated without rebuilding its rows (:mod:`.tallyagg`)."""
    if by not in GROUPINGS:
        raise CliError(f"unknown grouping {by!r}")
    breakdown = by == "session"
    if isinstance(rows, UsageTally) and by != "block":
        groups, grand, _ = aggregate_tally(rows, by, breakdown, brief=True)
    else:
        if isinstance(rows, UsageTally):
            rows = rows.rows()
        found, grand = aggregate_with_totals(rows, by, breakdown=breakdown)
        groups = iter(found)
    key, item = _ITEMS[by]
    pricing = pricing or Pricing.default()
    doc_totals = _camel_tokens(grand)
    doc_totals["sessions"] = grand["sessions"]
    return ReportParts(key, map(item, groups), doc_totals,
                       {"date": pricing.date, "source": pricing.source})


def usage_report(rows: Iterable[UsageRow] | UsageTally, by: GroupBy = "session",
                 pricing: Pricing | None = None) -> dict[str, Any]:
    """The JSON document of ``hive-lab usage --json --by <by>`` (also fit for the REST API).

    One pass over ``rows`` (any iterable of rows, or a :class:`UsageTally`)."""
    parts = report_parts(rows, by, pricing)
    return {parts.key: list(parts.items), "totals": parts.totals, "pricing": parts.pricing}


def write_json_report(parts: ReportParts, write: Callable[[bytes], Any], batch: int = 256) -> None:
    """Write ``dumps_indented(usage_report(...)) + b"\\n"``, byte for byte, item by item: the
    document is never whole in memory (nor are the items: they are made as written)."""
    write(b'{\n  "' + parts.key.encode() + b'": [')
    chunks: list[bytes] = []
    sep = b"\n    "
    for item in parts.items:
        chunks.append(sep + dumps_indented(item).replace(b"\n", b"\n    "))
        sep = b",\n    "
        if len(chunks) >= batch:
            write(b"".join(chunks))
            chunks.clear()
    if sep != b"\n    ":
        chunks.append(b"\n  ]")
    else:
        chunks.append(b"]")
    for name, value in (("totals", parts.totals), ("pricing", parts.pricing)):
        chunks.append(b',\n  "' + name.encode() + b'": '
                      + dumps_indented(value).replace(b"\n", b"\n  "))
    chunks.append(b"\n}\n")
    write(b"".join(chunks))


# --------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------


def _money(cost: float, complete: bool) -> str:
    """Dollars (4 decimals below $1, where cents hide most of a short session); ``+?`` marks
    a sum that leaves out unpriced models."""
    text = f"${cost:,.2f}" if cost >= 1 else f"${cost:.4f}"
    if complete:
        return text
    return f"{text}+?" if cost else "?"


def _table_rows(doc: dict[str, Any], by: str) -> tuple[list[str], list[list[str]]]:
    key = {"session": "sessions", "day": "daily", "model": "models", "block": "blocks"}[by]
    first = {"session": "Session", "day": "Date", "model": "Model", "block": "Block start"}[by]
    head = [first] + (["Project"] if by == "session" else []) + \
        ["Input", "Output", "Cache write", "Cache read", "Total", "Cost"]
    body = []
    for item in doc[key]:
        if by == "block" and item["isGap"]:
            continue
        name = {"session": item.get("sessionId"), "day": item.get("date"),
                "model": item.get("modelName"), "block": item.get("startTime")}[by]
        if by == "block" and item["isActive"]:
            name += " (active)"
        body.append(_token_cells(str(name), item, [item["projectPath"]] if by == "session" else []))
    body.append(_token_cells("Total", doc["totals"], [""] if by == "session" else []))
    return head, body


def _token_cells(name: str, item: dict[str, Any], extra: list[str]) -> list[str]:
    return [name, *extra, f"{item['inputTokens']:,}", f"{item['outputTokens']:,}",
            f"{item['cacheCreationTokens']:,}", f"{item['cacheReadTokens']:,}",
            f"{item['totalTokens']:,}", _money(item["knownCost"], item["costComplete"])]


def render_table(doc: dict[str, Any], by: str) -> str:
    """A small aligned text table: names left, numbers right, a totals line last."""
    head, body = _table_rows(doc, by)
    if len(body) == 1:
        return "No usage found."
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    text_cols = 2 if by == "session" else 1

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < text_cols else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body[:-1]),
             "  ".join("-" * w for w in widths), fmt(body[-1])]
    unknown = doc["totals"]["unknownModels"]
    if unknown:
        lines.append(f"? not priced (model not in the pricing table of {doc['pricing']['date']}): "
                     + ", ".join(unknown))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _load_pricing(path: str | None) -> Pricing:
    if not path:
        return Pricing.default()
    try:
        with open(path, encoding="utf-8") as f:
            overrides = json.load(f)
    except OSError as exc:
        raise CliError(f"cannot read pricing file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"pricing file {path} is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise CliError(f"pricing file {path} must hold a JSON object")
    try:
        return Pricing.load(overrides=overrides)
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(f"pricing file {path} has a bad entry: {exc!r}") from None


def _resolve_paths(given: list[str]) -> list[Path]:
    if given:
        missing = [p for p in given if not Path(p).expanduser().exists()]
        if missing:
            raise CliError(f"no such file or directory: {missing[0]}")
        return [Path(p).expanduser() for p in given]
    found = default_paths()
    if not found:
        where = os.environ.get("CLAUDE_CONFIG_DIR", "").strip() or "~/.claude"
        raise CliError(f"no Claude Code transcripts found ({where}/projects does not exist); "
                       "give a PATH or set CLAUDE_CONFIG_DIR")
    return found


def run(argv: list[str], out: Callable[[str], Any] | None = None,
        warn: Callable[[str], Any] | None = None) -> int:
    """Parse ``argv``, read the transcripts, print the report (or hand it to ``out``).
    Raises :class:`CliError`."""
    args = _parser().parse_args(argv)
    pricing = _load_pricing(args.pricing)
    paths = _resolve_paths(args.paths)
    warn = warn or (lambda msg: print(msg, file=sys.stderr))

    def skipped(path: Path, exc: OSError) -> None:
        warn(f"{PROG}: warning: skipped {path}: {exc.strerror or exc}")

    workers = min(2, os.cpu_count() or 1)  # a CLI process has no threads: forking is safe
    # Nothing here makes reference cycles, but the cyclic GC would walk the growing heap
    # again and again (~0.4 s of 1.7 s on 15,000 sessions): off while we work.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        tally = tally_usage(paths, pricing=pricing, on_error=skipped, workers=workers)
        if not args.json:
            (out or print)(render_table(usage_report(tally, args.by, pricing), args.by))
        elif out is not None:
            out(dumps_indented(usage_report(tally, args.by, pricing)).decode())
        else:
            _write_stdout(lambda write: write_json_report(report_parts(tally, args.by, pricing),
                                                          write))
    finally:
        if gc_was_on:
            gc.enable()
    return 0


def _write_stdout(produce: Callable[[Callable[[bytes], Any]], None]) -> None:
    """Let ``produce`` write bytes straight to stdout's buffer (no str copy, no re-encoding)."""
    stream = sys.stdout
    raw = getattr(stream, "buffer", None)
    if raw is None:
        produce(lambda data: stream.write(data.decode()))
        return
    stream.flush()
    produce(raw.write)
    raw.flush()


def main(argv: list[str] | None = None) -> int:
    """``hive-lab usage [--by session|day|model|block] [--json] [--pricing FILE] [PATH ...]``.

    Returns the exit status: 0, or 2 with a one-line message on stderr for anything the user
    can fix (bad option, missing path, bad pricing file).
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # `... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0
    except OSError as exc:
        print(f"{PROG}: error: {exc.strerror or exc}"
              + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 2


def finish(status: int) -> NoReturn:
    """End the process with ``status`` and without the interpreter's teardown, which frees
    the tally's objects one by one (30-50 ms of a 0.35 s report). Only for the process's own
    entry point: output is flushed first, and the CLI leaves nothing else pending."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`... | head`): nothing more to say
            pass
    os._exit(status)


if __name__ == "__main__":
    finish(main(sys.argv[1:]))
