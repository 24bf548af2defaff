"""Token usage and cost: transcripts -> rows -> cost -> aggregates, and the `usage` CLI.

Ground truth is the real Claude Code 2.1.197 transcript in ../shared/samples: its totals are
recomputed here by hand from the raw JSON, and the cost with the formula of FACTS.md written
out independently of hive_lab.usage. Variants (partial lines, sidechains, resumed copies,
unknown models) are made from its real lines by changing one field at a time.
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hive_lab.usage import report as usage_cli
from hive_lab.usage.parse import (
    Pricing,
    TranscriptFollower,
    UsageLedger,
    UsageRow,
    _split_fast,
    aggregate,
    billing_blocks,
    load_usage,
    normalise_model,
    parse_claude_line,
    parse_codex_rollouts,
    totals,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples"
if not SAMPLES.exists():
    SAMPLES = Path(os.environ.get("HIVE_LAB_SAMPLES", "/work/shared/samples"))
SAMPLE = SAMPLES / "claude-code-2.1.197-transcript.jsonl"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "usage"
CODEX_ROLLOUT = (FIXTURES / "codex" / "2025" / "10" / "01" /
                 "rollout-2025-10-01T10-00-00-0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.jsonl")
SESSION = "25b79f51-2c20-4b40-b462-3e09266f4905"


def sample_lines() -> list[bytes]:
    return SAMPLE.read_bytes().splitlines(keepends=True)


def facts_cost(p: float, q: float, inp: int, out: int, w5: int, w1h: int, read: int) -> float:
    """FACTS.md, verbatim: (in*P + out*Q + cw5m*1.25*P + cw1h*2*P + cr*0.1*P) / 1e6."""
    return (inp * p + out * q + w5 * 1.25 * p + w1h * 2 * p + read * 0.1 * p) / 1e6


def assistant(lines: list[bytes]) -> list[dict[str, Any]]:
    return [d for d in map(json.loads, lines) if d.get("type") == "assistant"]


def edit(line: bytes, **changes: Any) -> bytes:
    """A copy of a real transcript line with some fields changed (dotted: message.model)."""
    d = json.loads(line)
    for key, value in changes.items():
        target = d
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def write(path: Path, lines: list[bytes], mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# --------------------------------------------------------------------------------------------
# The real sample, by hand
# --------------------------------------------------------------------------------------------


def test_sample_totals_by_hand() -> None:
    lines = sample_lines()
    raw = assistant(lines)
    assert len(raw) == 5, "the sample has 5 assistant lines"
    unique = {(d["message"]["id"], d["requestId"]): d["message"]["usage"] for d in raw}
    assert len(unique) == 4, "two of them are one response written twice"
    by_hand = {k: sum(u[k] for u in unique.values()) for k in
               ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens")}
    assert by_hand == {"input_tokens": 3910, "output_tokens": 210,
                       "cache_creation_input_tokens": 1708, "cache_read_input_tokens": 17000}

    rows = load_usage(SAMPLE)
    t = totals(rows)
    assert len(rows) == t["requests"] == 4
    assert (t["input"], t["output"], t["cache_write"], t["cache_read"]) == (3910, 210, 1708, 17000)
    assert {r.session_id for r in rows} == {SESSION}
    assert {r.project for r in rows} == {"/home/dev/src/alpha"}
    assert {r.model for r in rows} == {"claude-opus-4-8"}

    # cost, independently: opus-4-8 is (5, 25) $/MTok; breakdowns are all zero -> 5m writes
    want = sum(facts_cost(5, 25, u["input_tokens"], u["output_tokens"],
                          u["cache_creation_input_tokens"], 0, u["cache_read_input_tokens"])
               for u in unique.values())
    assert want == pytest.approx(0.043975, abs=1e-12)
    assert t["cost"] == pytest.approx(want, rel=1e-12)
    assert round(t["cost"], 2) == 0.04 and t["cost_complete"] and t["unknown_models"] == []


def test_cache_creation_remainder_counts_as_5m_writes() -> None:
    line = sample_lines()[5]
    usage = json.loads(line)["message"]["usage"]
    assert usage["cache_creation_input_tokens"] == 427
    assert usage["cache_creation"] == {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0}
    row = parse_claude_line(line)
    assert (row.cache_write_5m, row.cache_write_1h) == (427, 0)

    split = edit(line, message__usage__cache_creation={"ephemeral_1h_input_tokens": 100,
                                                       "ephemeral_5m_input_tokens": 0})
    row = parse_claude_line(split)
    assert (row.cache_write_5m, row.cache_write_1h) == (327, 100)
    assert row.cost == pytest.approx(facts_cost(5, 25, 959, 47, 327, 100, 4000), rel=1e-12)

    bigger = edit(line, message__usage__cache_creation={"ephemeral_1h_input_tokens": 0,
                                                        "ephemeral_5m_input_tokens": 500})
    assert parse_claude_line(bigger).cache_write_5m == 500


# --------------------------------------------------------------------------------------------
# Fast line parser == json.loads reference
# --------------------------------------------------------------------------------------------


def test_fast_parser_matches_reference_on_every_sample_line() -> None:
    fast_hits = 0
    for line in sample_lines():
        assert parse_claude_line(line) == parse_claude_line(line, fast=False)
        fast_hits += _split_fast(line) is not None
    assert fast_hits == 5, "every assistant line of the real CLI takes the fast path"
    assert load_usage(SAMPLE) == load_usage(SAMPLE, fast=False)


def tricky_lines() -> dict[str, bytes]:
    base = sample_lines()[13]  # an assistant tool_use line
    d = json.loads(base)
    nested = json.loads(base)
    nested["message"]["content"][0]["input"] = {
        "model": "gpt-x", "usage": {"input_tokens": 999, "output_tokens": 1},
        "message": {"id": "m1"}, "timestamp": "2020-01-01T00:00:00Z", "sessionId": "not-this"}
    task_result = json.loads(sample_lines()[14])
    task_result["toolUseResult"] = {"status": "completed", "usage": {
        "input_tokens": 40, "output_tokens": 900, "cache_read_input_tokens": 40000}}
    progress = {"type": "progress", "timestamp": d["timestamp"], "sessionId": SESSION,
                "data": {"message": {"type": "assistant", "message": d["message"]}}}
    content_first = dict(d)
    msg = d["message"]
    content_first["message"] = {"content": msg["content"], "id": msg["id"], "model": msg["model"],
                                "role": "assistant", "usage": msg["usage"]}
    old_layout = {k: d[k] for k in ("parentUuid", "isSidechain", "userType", "cwd", "sessionId",
                                    "version", "gitBranch")}
    old_layout.update({"message": msg, "requestId": d["requestId"], "type": "assistant",
                       "uuid": d["uuid"], "timestamp": d["timestamp"]})
    old_task = {k: d[k] for k in ("parentUuid", "isSidechain", "userType", "cwd", "sessionId")}
    old_task.update({"type": "user", "timestamp": d["timestamp"],
                     "message": task_result["message"], "toolUseResult": task_result["toolUseResult"],
                     "uuid": d["uuid"]})
    user_with_ids = dict(old_task)
    user_with_ids["message"] = {"id": msg["id"], "model": msg["model"], **task_result["message"]}
    unicode_text = json.loads(base)
    unicode_text["message"]["content"] = [{"type": "text", "text": "naïve — ✓ 日本語 🚀 \"quoted\" \\"}]
    compact = lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode()  # noqa: E731
    return {
        "nested keys in tool input": compact(nested),
        "Task result with its own usage": compact(task_result),
        "Task result, 1.0.x key order": compact(old_task),
        "user line with message id and model": compact(user_with_ids),
        "progress line": compact(progress),
        "content before id": compact(content_first),
        "1.0.x key order": compact(old_layout),
        "spaced JSON": json.dumps(d).encode(),
        "ascii-escaped": json.dumps(unicode_text, separators=(",", ":")).encode(),
        "raw utf-8": compact(unicode_text),
        "truncated": base[: len(base) // 2],
        "cut after usage": base[: base.rfind(b'"requestId"')],
        "two objects on a line": base.rstrip() + b'{"type":"summary"}',
        "not json": b"this is not json \"input_tokens\": 5",
        "array": b'[{"message":{"usage":{"input_tokens":1,"output_tokens":1}}}]',
        "usage without timestamp": compact({k: v for k, v in d.items() if k != "timestamp"}),
        "string counts": compact({**d, "message": {**msg, "usage": {"input_tokens": "5",
                                                                    "output_tokens": 1}}}),
        "bad utf-8 in content": base.replace(b"Write", b"Wr\xffte"),
        "bad utf-8 in cwd": base.replace(b"/home/dev", b"/h\xffme/dev"),
        "BOM": b"\xef\xbb\xbf" + base,
    }


@pytest.mark.parametrize("name", list(tricky_lines()))
def test_fast_parser_matches_reference_on_tricky_lines(name: str) -> None:
    line = tricky_lines()[name]
    assert parse_claude_line(line) == parse_claude_line(line, fast=False)


def test_tricky_lines_outcomes() -> None:
    lines = tricky_lines()
    # these are what Claude Code writes: the fast path must take them, and read them right
    for name in ("nested keys in tool input", "1.0.x key order", "raw utf-8", "ascii-escaped",
                 "bad utf-8 in content"):
        assert _split_fast(lines[name]) is not None, name
        row = parse_claude_line(lines[name])
        assert (row.model, row.input, row.session_id) == ("claude-opus-4-8", 959, SESSION), name
    # these must not become rows at all
    for name in ("Task result with its own usage", "Task result, 1.0.x key order",
                 "user line with message id and model",
                 "progress line", "truncated", "two objects on a line",
                 "cut after usage", "not json", "array", "usage without timestamp",
                 "string counts"):
        assert parse_claude_line(lines[name]) is None, name
    # these need the full parser, which reads them
    for name in ("content before id", "spaced JSON", "bad utf-8 in cwd", "BOM"):
        assert _split_fast(lines[name]) is None, name
        assert parse_claude_line(lines[name]).input == 959, name
    assert parse_claude_line(lines["bad utf-8 in cwd"]).project == "/h\ufffdme/dev/src/alpha"


def test_garbage_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    lines = sample_lines()
    junk = [b"\n", b"not json\n", b"{\n", b"\xff\xfe\x00\n", b'{"message": 5}\n',
            b'{"input_tokens": 1}\n', b"x" * 200_000 + b"\n"]
    path = write(tmp_path / "p" / "s.jsonl", junk[:3] + lines + junk[3:] + [lines[5].rstrip()])
    rows = load_usage(path)  # the last line has no newline: a whole-file read still takes it
    assert len(rows) == 4
    assert totals(rows)["input"] == 3910


def load_bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_usage", ROOT / "benchmarks" / "bench_usage.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_usage"] = module
    spec.loader.exec_module(module)
    return module


def test_fast_path_equals_reference_on_generated_corpus(tmp_path: Path) -> None:
    """The benchmark's generator: duplicates, sidechains, resumed copies, odd tool inputs."""
    bench = load_bench_module()
    gen = bench.CorpusGen(tmp_path, 2_000_000, seed=4, mat=bench.Material(random.Random(3)))
    expected = gen.build()
    assert expected.resumed and expected.subagent_files and expected.duplicate_lines
    fast = load_usage(tmp_path / "projects")
    assert fast == load_usage(tmp_path / "projects", fast=False)
    import hive_lab.usage.parse as usage_mod

    usage_mod._PARALLEL_MIN, saved = 0, usage_mod._PARALLEL_MIN
    try:
        assert by_key(usage_mod.tally_usage(tmp_path / "projects", workers=2).rows()) == by_key(fast)
    finally:
        usage_mod._PARALLEL_MIN = saved
    t = totals(fast)
    got = {"inputTokens": t["input"], "outputTokens": t["output"],
           "cacheCreationTokens": t["cache_write"], "cacheReadTokens": t["cache_read"]}
    assert got == expected.tokens
    assert t["requests"] == expected.responses + sum(r.model == "<synthetic>" for r in fast)


# --------------------------------------------------------------------------------------------
# Dedup
# --------------------------------------------------------------------------------------------


def test_dedup_across_files_keeps_the_original_session(tmp_path: Path) -> None:
    lines = sample_lines()
    resumed_id = "99999999-2c20-4b40-b462-3e09266f4905"
    copy = [line.replace(SESSION.encode(), resumed_id.encode()) for line in lines]
    extra = edit(lines[15], message__id="msg_new", requestId="req_new", sessionId=resumed_id,
                 timestamp="2026-11-24T07:00:00.000Z")
    write(tmp_path / "proj" / f"{SESSION}.jsonl", lines, mtime=1_000)
    write(tmp_path / "proj" / f"{resumed_id}.jsonl", copy + [extra], mtime=2_000)
    rows = load_usage(tmp_path)
    assert len(rows) == 5
    assert totals(rows)["input"] == 3910 + 996
    per_session = {s["session_id"]: s["requests"] for s in aggregate(rows, "session")}
    assert per_session == {SESSION: 4, resumed_id: 1}


def test_fullest_line_wins_in_either_order(tmp_path: Path) -> None:
    full = sample_lines()[7]
    partial = edit(full, message__usage__output_tokens=1, timestamp="2026-11-24T06:33:56.650Z")
    for order in ([partial, full], [full, partial]):
        path = write(tmp_path / f"{len(order)}-{order[0] is full}.jsonl", order)
        (row,) = load_usage(path)
        assert row.output == 58
        assert load_usage(path, fast=False) == [row]


def test_non_sidechain_copy_is_preferred(tmp_path: Path) -> None:
    main_line = sample_lines()[7]
    side = edit(main_line, isSidechain=True, sessionId="side-session")
    for i, order in enumerate(([side, main_line], [main_line, side])):
        (row,) = load_usage(write(tmp_path / f"{i}.jsonl", order))
        assert row.sidechain is False and row.session_id == SESSION


def test_same_file_copies_keep_the_first_line() -> None:
    lines = sample_lines()
    rows = load_usage(SAMPLE)
    dup = [r for r in rows if r.message_id == "msg_089c77ed6d0b4042b4140ac9"]
    assert len(dup) == 1
    first = json.loads(lines[12])["timestamp"]
    assert dup[0].time == datetime.fromisoformat(first)


def test_copies_are_told_apart_by_request_id_wherever_it_is(tmp_path: Path) -> None:
    """Two responses with the same message id and counts but different request ids, the
    request id written after the uuid: both count (the copy shortcut must not merge them)."""
    d = json.loads(sample_lines()[7])
    lines = []
    for i in (1, 2):
        e = {k: v for k, v in d.items() if k != "requestId"}
        e.update({"uuid": f"u{i}", "requestId": f"req_{i}"})
        lines.append(json.dumps(e, separators=(",", ":")).encode() + b"\n")
    path = write(tmp_path / "s.jsonl", lines)
    rows = load_usage(path)
    assert [r.request_id for r in rows] == ["req_1", "req_2"]
    assert rows == load_usage(path, fast=False)
    # a copy right after a line that made no row (it has no timestamp) must still count
    no_time = {k: v for k, v in d.items() if k != "timestamp"}
    path = write(tmp_path / "t.jsonl", [json.dumps(no_time, separators=(",", ":")).encode() + b"\n",
                                        sample_lines()[7]])
    assert [r.message_id for r in load_usage(path)] == ["msg_21bb9ced265c4fa299056017"]


def by_key(rows: Any) -> list[UsageRow]:
    return sorted(rows, key=lambda r: (r.message_id or "", r.request_id or "", r.source, r.time))


def test_tally_gives_the_rows_of_load_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compact tally (the CLI's) and the forked tally count exactly what load_usage does:
    same rows, same session credit for copies, whatever order the halves are merged in."""
    import hive_lab.usage.parse as usage_mod

    lines = sample_lines()
    resumed = [line.replace(SESSION.encode(), b"resumed-session") for line in lines]
    write(tmp_path / "p" / "b-original.jsonl", lines, mtime=1_000)
    write(tmp_path / "p" / "a-resumed.jsonl", resumed, mtime=2_000)
    partial = edit(lines[7], message__usage__output_tokens=1)
    write(tmp_path / "p" / "c-partial.jsonl", [partial], mtime=500)  # oldest, but less full
    for i in range(4):  # more files, so both processes get some
        write(tmp_path / "p" / f"other{i}.jsonl",
              [line.replace(b"msg_", f"msg_{i}".encode()) for line in lines], mtime=3_000 + i)
    serial = load_usage(tmp_path)
    assert len(serial) == 20
    assert {r.session_id for r in serial if r.message_id.startswith("msg_0")} == {SESSION}
    assert [r.output for r in serial if r.message_id == "msg_21bb9ced265c4fa299056017"] == [58]
    assert by_key(usage_mod.tally_usage(tmp_path).rows()) == by_key(serial)
    monkeypatch.setattr(usage_mod, "_PARALLEL_MIN", 0)
    for weight_first in (True, False):  # the parent's share first, or the child's
        groups = usage_mod._split_by_size([f.stat().st_size for f in usage_mod.collect_files([tmp_path])], 2)
        assert len(groups) == 2
        monkeypatch.setattr(usage_mod, "_split_by_size",
                            lambda sizes, n, g=groups[::1 if weight_first else -1]: g)
        forked = usage_mod.tally_usage(tmp_path, workers=2)
        assert by_key(forked.rows()) == by_key(serial)


@pytest.mark.parametrize("kind", ["ledger", "tally"])
def test_wants_tells_which_copies_would_count(kind: str) -> None:
    from hive_lab.usage.parse import UsageTally

    row = parse_claude_line(sample_lines()[7])
    store = UsageLedger() if kind == "ledger" else UsageTally()
    key = ("claude", row.message_id, row.request_id)
    assert store.wants(key, row.total_tokens, False)
    store.add(row) if kind == "ledger" else store.add(row, 0)
    assert not store.wants(key, row.total_tokens, False)  # an equal copy: the first stays
    assert not store.wants(key, row.total_tokens, True)
    assert store.wants(key, row.total_tokens + 1, True)  # fuller wins
    assert store.wants(("claude", "msg_other", row.request_id), 1, True)
    assert store.wants(("claude", row.message_id, None), 1, False)  # unmatchable: kept


def test_ledger_reports_replacements() -> None:
    ledger = UsageLedger()
    full = parse_claude_line(sample_lines()[7])
    partial = parse_claude_line(edit(sample_lines()[7], message__usage__output_tokens=1))
    assert ledger.add(partial) == (partial, None)
    assert ledger.add(full) == (full, partial)
    assert ledger.add(partial) == (None, None)
    assert ledger.rows() == [full]


# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,key", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5[1m]", "claude-sonnet-4-5"),
    ("anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
    ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
    ("Claude-Opus-4-8", "claude-opus-4-8"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
])
def test_model_ids_are_normalised(raw: str, key: str) -> None:
    assert normalise_model(raw) == key
    assert Pricing.default().rates(raw).model == key


def test_shipped_table_has_the_checked_rates() -> None:
    p = Pricing.default()
    assert p.date == "2026-11-24" and p.source
    for model, rates in {"claude-opus-4-8": (5, 25), "claude-sonnet-4-5": (3, 15),
                         "claude-haiku-4-5": (1, 5)}.items():
        r = p.rates(model)
        assert (r.input, r.output, r.status) == (*rates, "checked")
        assert (r.write_5m, r.write_1h, r.read) == (1.25, 2.0, 0.1)
    assert p.rates("claude-opus-4-0").input == 15  # alias -> claude-opus-4 (reported)


def test_unknown_model_is_reported_not_free(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = sample_lines()
    odd = edit(lines[7], message__model="claude-future-9", message__id="msg_future")
    path = write(tmp_path / "s.jsonl", lines + [odd])
    rows = load_usage(path)
    future = [r for r in rows if r.model == "claude-future-9"]
    assert len(future) == 1 and future[0].cost is None
    t = totals(rows)
    assert t["cost_complete"] is False and t["unknown_models"] == ["claude-future-9"]
    assert t["cost"] == pytest.approx(0.043975)  # the priced part
    zero = edit(lines[7], message__model="claude-future-9", message__usage__input_tokens=0,
                message__usage__output_tokens=0, message__usage__cache_read_input_tokens=0,
                message__usage__cache_creation_input_tokens=0)
    assert parse_claude_line(zero).cost == 0.0  # no tokens cost nothing at any price

    assert usage_cli.main(["--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["totalCost"] is None
    assert doc["totals"]["knownCost"] == pytest.approx(0.043975)
    assert doc["totals"]["unknownModels"] == ["claude-future-9"]
    (session,) = doc["sessions"]
    costs = {m["modelName"]: m["cost"] for m in session["modelBreakdowns"]}
    assert costs["claude-future-9"] is None and costs["claude-opus-4-8"] == pytest.approx(0.043975)

    assert usage_cli.main([str(path)]) == 0
    table = capsys.readouterr().out
    assert "+?" in table and "claude-future-9" in table.splitlines()[-1]


def test_pricing_overrides(tmp_path: Path) -> None:
    bare = Pricing.load(overrides={"claude-future-9": {"input": 2, "output": 10}})
    assert bare.cost("claude-future-9", 1_000_000, 100_000) == pytest.approx(2 + 1)
    assert bare.rates("claude-future-9").status == "override"

    doubled = Pricing.load(overrides={"models": {"claude-opus-4-8": {"input": 10, "output": 50}}})
    assert totals(load_usage(SAMPLE, pricing=doubled))["cost"] == pytest.approx(2 * 0.043975)

    cheap_reads = Pricing.load(overrides={"cache": {"read": 0.05}})
    want = sum(facts_cost(5, 25, i, o, 427, 0, 0) + r * 0.05 * 5 / 1e6
               for i, o, r in [(959, 47, 4000), (996, 58, 4500)] * 2)
    assert totals(load_usage(SAMPLE, pricing=cheap_reads))["cost"] == pytest.approx(want)

    file = tmp_path / "prices.json"
    file.write_text(json.dumps({"claude-opus-4-8": {"input": 10, "output": 50}}))
    assert usage_cli.main(["--json", "--pricing", str(file), str(SAMPLE)]) == 0


def test_long_context_and_fast_mode() -> None:
    p = Pricing.default()
    # sonnet-4-5 above 200k input (all kinds) -> every token at 6 / 22.5 (reported rule)
    assert p.cost("claude-sonnet-4-5", 100, 1000, 0, 0, 199_900) == \
        pytest.approx(facts_cost(3, 15, 100, 1000, 0, 0, 199_900))
    assert p.cost("claude-sonnet-4-5", 101, 1000, 0, 0, 199_900) == \
        pytest.approx(facts_cost(6, 22.5, 101, 1000, 0, 0, 199_900))
    assert p.cost("claude-opus-4-8", 10, 10, speed="fast") is None
    assert p.cost("claude-opus-4-6", 10, 10, speed="fast") == pytest.approx(6 * facts_cost(5, 25, 10, 10, 0, 0, 0))


# --------------------------------------------------------------------------------------------
# Following a live transcript
# --------------------------------------------------------------------------------------------


def ids(rows: list[UsageRow]) -> list[str]:
    return [r.message_id for r in rows]


def test_follower_reads_only_complete_appended_lines(tmp_path: Path) -> None:
    lines = sample_lines()
    path = tmp_path / "live.jsonl"
    head = b"".join(lines[:7])
    path.write_bytes(head + lines[7][:40])  # a writer half-way through line 7
    f = TranscriptFollower(path)
    assert ids(f.poll()) == ["msg_06ff38aa2ad74760b2b72e4a"]
    assert f.offset == len(head)
    assert f.poll() == []
    with open(path, "ab") as out:
        out.write(lines[7][40:] + b"".join(lines[8:14]))
    assert ids(f.poll()) == ["msg_21bb9ced265c4fa299056017", "msg_089c77ed6d0b4042b4140ac9"]
    with open(path, "ab") as out:
        out.write(b"".join(lines[14:]))
    assert ids(f.poll()) == ["msg_d06bf2708b3e4c53ad4436a7"]
    assert f.offset == SAMPLE.stat().st_size
    assert sorted(f.rows(), key=lambda r: r.time) == sorted(load_usage(path), key=lambda r: r.time)


def test_follower_reports_a_fuller_copy_in_a_later_poll(tmp_path: Path) -> None:
    full = sample_lines()[7]
    path = write(tmp_path / "live.jsonl", [edit(full, message__usage__output_tokens=3)])
    f = TranscriptFollower(path)
    assert [r.output for r in f.poll()] == [3]
    with open(path, "ab") as out:
        out.write(full + full)
    assert [r.output for r in f.poll()] == [58]
    assert [r.output for r in f.rows()] == [58]
    # superseded within one poll: only the final row is reported
    other = edit(full, message__id="msg_other", requestId="req_other")
    with open(path, "ab") as out:
        out.write(edit(other, message__usage__output_tokens=5) + other)
    assert [(r.message_id, r.output) for r in f.poll()] == [("msg_other", 58)]


def test_follower_restarts_after_truncation(tmp_path: Path) -> None:
    lines = sample_lines()
    path = write(tmp_path / "live.jsonl", lines)
    f = TranscriptFollower(path)
    assert len(f.poll()) == 4
    new = edit(lines[15], message__id="msg_after", requestId="req_after")
    path.write_bytes(lines[15] + new)  # truncated and rewritten shorter (compaction)
    assert ids(f.poll()) == ["msg_after"]
    assert f.restarts == 1 and len(f.rows()) == 5  # usage already seen is kept: it was spent


def test_follower_restarts_after_rotation(tmp_path: Path) -> None:
    lines = sample_lines()
    path = write(tmp_path / "live.jsonl", lines)
    f = TranscriptFollower(path)
    assert len(f.poll()) == 4
    new = edit(lines[15], message__id="msg_rotated", requestId="req_rotated")
    write(tmp_path / "next.jsonl", lines + [new, new])
    inode = path.stat().st_ino
    os.replace(tmp_path / "next.jsonl", path)
    assert path.stat().st_ino != inode
    assert ids(f.poll()) == ["msg_rotated"]
    assert f.restarts == 1 and len(f.rows()) == 5


def test_follower_notices_an_in_place_rewrite(tmp_path: Path) -> None:
    lines = sample_lines()
    path = write(tmp_path / "live.jsonl", lines[:8])
    f = TranscriptFollower(path)
    assert len(f.poll()) == 2
    inode = path.stat().st_ino
    other = [edit(line, message__id=f"msg_x{i}", requestId=f"req_x{i}") if b'"usage"' in line
             else line for i, line in enumerate(lines)]
    with open(path, "r+b") as out:  # same inode, longer than before, different bytes
        out.write(b"".join(other))
    assert path.stat().st_ino == inode
    assert len(f.poll()) == 5 and f.restarts == 1  # 5 usage lines, each now its own response


def test_follower_on_a_missing_file(tmp_path: Path) -> None:
    f = TranscriptFollower(tmp_path / "not-yet.jsonl")
    assert f.poll() == []
    write(tmp_path / "not-yet.jsonl", sample_lines())
    assert len(f.poll()) == 4


# --------------------------------------------------------------------------------------------
# Codex CLI rollouts
# --------------------------------------------------------------------------------------------
# The fixture follows openai/codex codex-rs/protocol (found with the search tool): each line a
# RolloutLine {"timestamp", "type", "payload"} -- session_meta, turn_context (model), response_item,
# event_msg; token_count events carry info.total_token_usage (cumulative) and last_token_usage,
# TokenUsage {input_tokens, cached_input_tokens, output_tokens, reasoning_output_tokens,
# total_tokens}; info is null before the first response. Hand-made, not a real Codex run.


def test_codex_cumulative_counts_become_deltas() -> None:
    rows = parse_codex_rollouts(CODEX_ROLLOUT)
    got = [(r.model, r.input, r.cache_read, r.output) for r in rows]
    assert got == [("gpt-5-codex", 12000 - 3000, 3000, 400),
                   ("gpt-5-codex", 13500 - 11000, 11000, 500),  # the repeat adds nothing
                   ("gpt-5", 14500 - 10000, 10000, 600)]
    assert {r.session_id for r in rows} == {"0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}
    assert {(r.agent, r.project) for r in rows} == {("codex", "/home/dev/src/beta")}
    # gpt-5 family: $1.25 in, $10 out, cached input at 0.1x (reported rates)
    want = [(9000 * 1.25 + 400 * 10 + 3000 * 0.125) / 1e6, (2500 * 1.25 + 500 * 10 + 11000 * 0.125) / 1e6,
            (4500 * 1.25 + 600 * 10 + 10000 * 0.125) / 1e6]
    assert [r.cost for r in rows] == pytest.approx(want)


def test_codex_found_by_name_in_a_tree_and_followed(tmp_path: Path) -> None:
    assert len(load_usage(FIXTURES / "codex")) == 3  # auto-detected by rollout-*.jsonl
    data = CODEX_ROLLOUT.read_bytes()
    path = tmp_path / CODEX_ROLLOUT.name
    cut = data.index(b'"total_tokens":26400') + 5
    path.write_bytes(data[:cut])
    f = TranscriptFollower(path)
    assert [r.output for r in f.poll()] == [400]
    with open(path, "ab") as out:
        out.write(data[cut:])
    assert [r.output for r in f.poll()] == [500, 600]
    path.write_bytes(data)  # rewritten: same content, read again, nothing new
    assert f.poll() == [] and len(f.rows()) == 3


# --------------------------------------------------------------------------------------------
# Aggregates and billing blocks
# --------------------------------------------------------------------------------------------


def row_at(when: str, tokens: int = 100, model: str = "claude-opus-4-8", session: str = "s1") -> UsageRow:
    t = datetime.fromisoformat(when)
    return UsageRow(t, session, "/p", model, tokens, 0, 0, 0, 0,
                    Pricing.default().cost(model, tokens), f"m{when}", "r", False, "x")


def test_blocks_follow_ccusage() -> None:
    rows = [row_at("2026-11-20T10:20:00+00:00"), row_at("2026-11-20T11:00:00+00:00"),
            row_at("2026-11-20T15:00:00+00:00"),  # exactly 5 h after the 10:00 start: same block
            row_at("2026-11-20T15:00:01+00:00"),  # later than that: a new block from 15:00
            row_at("2026-11-20T20:00:01+00:00"),  # 5 h after 15:00:01, not more: no gap
            row_at("2026-11-21T03:30:00+00:00")]  # 7.5 h pause: a gap block, then a new block
    now = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)
    blocks = billing_blocks(reversed(rows), now=now)
    got = [(b["id"], b["requests"], b["is_gap"], b["is_active"]) for b in blocks]
    assert got == [("2026-11-20T10:00:00.000Z", 3, False, False),
                   ("2026-11-20T15:00:00.000Z", 1, False, False),
                   ("2026-11-20T20:00:00.000Z", 1, False, False),
                   ("gap-2026-11-21T01:00:01.000Z", 0, True, False),
                   ("2026-11-21T03:00:00.000Z", 1, False, True)]
    assert blocks[0]["end"] == "2026-11-20T15:00:00.000Z"
    assert blocks[0]["actual_end"] == "2026-11-20T15:00:00.000Z"
    assert blocks[3]["end"] == "2026-11-21T03:30:00.000Z"
    assert blocks[0]["input"] == 300
    later = billing_blocks(rows, now=now + timedelta(hours=5))
    assert not any(b["is_active"] for b in later)
    assert aggregate(rows, "block", now=now) == blocks


def test_aggregates_by_session_day_and_model() -> None:
    rows = [row_at("2026-11-20T23:59:00+00:00", 10, session="a"),
            row_at("2026-11-21T00:01:00+00:00", 20, "claude-haiku-4-5", session="a"),
            row_at("2026-11-21T09:00:00+00:00", 40, "claude-future-9", session="b")]
    by_session = {s["session_id"]: s for s in aggregate(rows, "session", breakdown=True)}
    assert by_session["a"]["input"] == 30 and by_session["a"]["cost_complete"]
    assert [m["model"] for m in by_session["a"]["by_model"]] == ["claude-haiku-4-5", "claude-opus-4-8"]
    assert by_session["b"]["unknown_models"] == ["claude-future-9"] and by_session["b"]["cost"] == 0
    assert [(d["day"], d["input"]) for d in aggregate(rows, "day")] == \
        [("2026-11-20", 10), ("2026-11-21", 60)]
    tz = timezone(timedelta(hours=-5))
    assert [(d["day"], d["input"]) for d in aggregate(rows, "day", tz=tz)] == \
        [("2026-11-20", 30), ("2026-11-21", 40)]
    models = {m["model"]: m for m in aggregate(rows, "model")}
    assert models["claude-haiku-4-5"]["cost"] == pytest.approx(20 / 1e6)
    assert models["claude-opus-4-8"]["cost"] == pytest.approx(10 * 5 / 1e6)
    with pytest.raises(ValueError):
        aggregate(rows, "week")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_json_by_session_compares_with_ccusage_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_cli.main(["--json", "--by", "session", str(SAMPLE)]) == 0
    doc = json.loads(capsys.readouterr().out)
    (s,) = doc["sessions"]
    ccusage_keys = {"sessionId", "inputTokens", "outputTokens", "cacheCreationTokens",
                    "cacheReadTokens", "totalTokens", "totalCost", "lastActivity", "modelsUsed",
                    "modelBreakdowns", "projectPath"}
    assert ccusage_keys <= set(s)
    assert s["sessionId"] == SESSION and s["projectPath"] == "/home/dev/src/alpha"
    # what ccusage 18.0.11 --offline printed for this file (its cost is 0: no opus-4-8 price)
    assert {k: doc["totals"][k] for k in ("inputTokens", "outputTokens", "cacheCreationTokens",
                                          "cacheReadTokens", "totalTokens")} == \
        {"inputTokens": 3910, "outputTokens": 210, "cacheCreationTokens": 1708,
         "cacheReadTokens": 17000, "totalTokens": 22828}
    assert doc["totals"]["totalCost"] == pytest.approx(0.043975)
    assert doc["totals"]["cacheCreation5mTokens"] == 1708 and doc["totals"]["sessions"] == 1
    assert doc["pricing"]["date"] == "2026-11-24"


@pytest.mark.parametrize("by,key", [("day", "daily"), ("model", "models"), ("block", "blocks")])
def test_cli_json_other_groupings(by: str, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_cli.main(["--json", "--by", by, str(SAMPLE)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc[key]) == 1 and doc[key][0]["inputTokens"] == 3910
    if by == "block":
        assert doc[key][0]["id"] == "2026-11-24T06:00:00.000Z"
        assert doc[key][0]["tokenCounts"]["cacheCreationInputTokens"] == 1708


def test_cli_table_is_aligned(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    other = [line.replace(SESSION.encode(), b"other-session").replace(b"msg_", b"msg_o")
             for line in sample_lines()]
    write(tmp_path / "a" / "one.jsonl", sample_lines())
    write(tmp_path / "b" / "two.jsonl", other)
    assert usage_cli.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["Session", "Project"] and lines[0].endswith("Cost")
    assert len({len(line) for line in lines}) == 1, "every line as wide as the header"
    assert lines[-1].startswith("Total") and lines[-1].endswith("$0.0880")
    assert sum(SESSION in line or "other-session" in line for line in lines) == 2
    assert lines[-1].split()[1:6] == ["7,820", "420", "3,416", "34,000", "45,656"]


@pytest.mark.parametrize("argv,needle", [
    (["/no/such/path"], "no such file or directory: /no/such/path"),
    (["--by", "week"], "invalid choice: 'week'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--pricing", "/no/prices.json", str(SAMPLE)], "cannot read pricing file"),
])
def test_cli_errors_are_one_line_exit_2(argv: list[str], needle: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and needle in err
    assert err.startswith("hive-lab usage: error: ") and "Traceback" not in err


def test_cli_bad_pricing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "p.json"
    for text, needle in (("{not json", "not valid JSON"), ("[1]", "must hold a JSON object"),
                         ('{"m": {"input": 1}}', "bad entry")):
        bad.write_text(text)
        assert usage_cli.main(["--pricing", str(bad), str(SAMPLE)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1


def test_cli_default_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "nothing-here"))
    assert usage_cli.main([]) == 2
    assert "no Claude Code transcripts found" in capsys.readouterr().err
    write(tmp_path / "cfg" / "projects" / "-home-dev-src-alpha" / f"{SESSION}.jsonl", sample_lines())
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{tmp_path / 'nothing-here'},{tmp_path / 'cfg'}")
    assert usage_cli.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["inputTokens"] == 3910
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write(tmp_path / "home" / ".claude" / "projects" / "p" / "s.jsonl", sample_lines())
    assert [str(p) for p in usage_cli.default_paths()] == [str(tmp_path / "home" / ".claude" / "projects")]


def test_cli_runs_as_a_module(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "hive_lab.usage.report", "--json", str(SAMPLE)],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and json.loads(ok.stdout)["totals"]["outputTokens"] == 210
    bad = subprocess.run([sys.executable, "-m", "hive_lab.usage.report", str(tmp_path / "x")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stdout == ""


# --------------------------------------------------------------------------------------------
# Speed paths (issue 9 C): orjson writer, streamed document, aggregates from the tally
# --------------------------------------------------------------------------------------------

HOSTILE_DOC: dict[str, Any] = {
    "sessions": [{"projectPath": "/home/dév/日本語 \"q\" \\ \n\t\u0001 🚀", "cost": 1e-05,
                  "x": 0.1 + 0.2, "big": 1e22, "neg": -0.0, "none": None, "t": True,
                  "empty": [], "emptyd": {}, "nested": [[1, [2, {}]], {"a": []}]}],
    "totals": {"huge": 2**70, "n": 0},
}


def sample_reports() -> list[dict[str, Any]]:
    rows = load_usage(SAMPLE)
    return [usage_cli.usage_report(rows, by) for by in ("session", "day", "model", "block")]


@pytest.mark.parametrize("doc", [*sample_reports(), HOSTILE_DOC])
def test_fast_writer_gives_the_stdlib_data(doc: dict[str, Any]) -> None:
    from hive_lab.usage.jsonout import HAVE_ORJSON, dumps_indented

    assert HAVE_ORJSON  # a declared dependency: the speed targets assume it
    stdlib = json.dumps(doc, indent=2)
    fast = dumps_indented(doc)
    assert json.loads(fast) == json.loads(stdlib)
    assert dumps_indented(doc, fast=False) == stdlib.encode()
    if fast.isascii() and b"huge" not in fast and b"1e-05" not in stdlib.encode():
        assert fast == stdlib.encode()  # same layout, byte for byte


def mixed_corpus(root: Path) -> Path:
    """Both benchmark shapes, plus rows the tally stores differently: unknown model (no cost),
    fast mode, no requestId (unkeyed), a session spread over files."""
    bench = load_bench_module()
    mat = bench.Material(random.Random(3))
    bench.CorpusGen(root / "large", 600_000, seed=5, mat=mat).build()
    bench.CorpusGen(root / "short", 300_000, seed=6, mat=mat, shape=bench.SHAPES["short"]).build()
    lines = sample_lines()
    extra = [edit(lines[7], message__model="claude-opus-9-unknown", message__id="msg_unknown"),
             edit(lines[7], message__usage__speed="fast", message__id="msg_fast"),
             edit(lines[7], requestId=None, message__id="msg_nokey")]
    write(root / "extra" / "x.jsonl", extra + lines, mtime=5_000)
    return root


def test_tally_aggregates_equal_row_aggregates(tmp_path: Path) -> None:
    from hive_lab.usage.parse import aggregate_with_totals, tally_usage
    from hive_lab.usage.tallyagg import aggregate_tally

    tally = tally_usage(mixed_corpus(tmp_path))
    rows = list(tally.rows())
    assert any(r.cost is None for r in rows) and any(r.speed == "fast" for r in rows)
    assert any(r.request_id is None for r in rows)
    for by in ("session", "day", "model"):
        for breakdown in (False, True):
            want = aggregate_with_totals(rows, by, breakdown=breakdown)
            groups, grand, n = aggregate_tally(tally, by, breakdown)
            assert (list(groups), grand) == want
            assert n == len(want[0])


@pytest.mark.parametrize("by", ["session", "day", "model", "block"])
def test_streamed_report_is_the_whole_document(tmp_path: Path, by: str) -> None:
    from hive_lab.usage.jsonout import dumps_indented
    from hive_lab.usage.parse import UsageTally, tally_usage

    tally = tally_usage(mixed_corpus(tmp_path))
    whole = usage_cli.usage_report(list(tally.rows()), by)  # the generic path
    for source in (tally, UsageTally()):
        out: list[bytes] = []
        usage_cli.write_json_report(usage_cli.report_parts(source, by), out.append, batch=7)
        got = b"".join(out)
        if source is tally:
            assert got == dumps_indented(whole) + b"\n"
            assert json.loads(got) == json.loads(json.dumps(whole, indent=2))
        else:
            assert json.loads(got) == json.loads(json.dumps(usage_cli.usage_report([], by), indent=2))


def test_report_does_not_depend_on_how_files_are_split(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI parses part of the files in a forked child; costs used to be summed in row
    order, which the split changes (last-digit differences between runs with other splits)."""
    import hive_lab.usage.parse as usage_mod
    from hive_lab.usage.jsonout import dumps_indented

    root = mixed_corpus(tmp_path)
    serial = dumps_indented(usage_cli.usage_report(usage_mod.tally_usage(root), "session"))
    n = len(usage_mod.collect_files([root]))
    monkeypatch.setattr(usage_mod, "_PARALLEL_MIN", 0)
    for split in ([list(range(0, n, 2)), list(range(1, n, 2))],
                  [list(range(n // 3, n)), list(range(n // 3))]):
        monkeypatch.setattr(usage_mod, "_split_by_size", lambda sizes, w, g=split: g)
        forked = usage_mod.tally_usage(root, workers=2)
        assert dumps_indented(usage_cli.usage_report(forked, "session")) == serial


def test_huge_token_counts_stay_exact() -> None:
    """orjson reads integers beyond 64 bits as floats; such lines go to the stdlib scanner."""
    line = edit(sample_lines()[7], message__usage__input_tokens=2**70 + 1)
    fast = parse_claude_line(line)
    assert fast is not None and fast.input == 2**70 + 1
    assert fast == parse_claude_line(line, fast=False)


def test_collect_files_walks_like_os_walk(tmp_path: Path) -> None:
    """One stat per file now (scandir): same files, same order as the os.walk version."""
    lines = sample_lines()
    write(tmp_path / "p" / "a.jsonl", lines, mtime=3_000)
    write(tmp_path / "p" / "deep" / "er" / "b.jsonl", lines, mtime=1_000)
    write(tmp_path / "p" / "c.txt", lines, mtime=500)
    write(tmp_path / "elsewhere" / "d.jsonl", lines, mtime=2_000)
    write(tmp_path / "linked" / "e.jsonl", lines, mtime=100)
    (tmp_path / "p" / "link.jsonl").symlink_to(tmp_path / "elsewhere" / "d.jsonl")
    (tmp_path / "p" / "dirlink").symlink_to(tmp_path / "linked", target_is_directory=True)
    (tmp_path / "p" / "broken.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    (tmp_path / "p" / "dir.jsonl").mkdir()
    old = []
    for dirpath, _dirs, files in os.walk(tmp_path / "p", followlinks=False):
        old.extend(Path(dirpath, f) for f in files if f.endswith(".jsonl"))
    seen: dict[tuple[int, int], tuple[float, str, Path]] = {}
    for f in old:
        try:
            st = f.stat()
        except OSError:
            continue
        seen.setdefault((st.st_dev, st.st_ino), (st.st_mtime, str(f), f))
    want = [f for _, _, f in sorted(seen.values())]
    from hive_lab.usage.parse import collect_files

    got = collect_files([tmp_path / "p"])
    assert got == want
    assert [f.name for f in got] == ["b.jsonl", "link.jsonl", "a.jsonl"]


def test_cli_writes_utf8_json_of_the_report(tmp_path: Path) -> None:
    """The real command: stdout is UTF-8 JSON (non-ASCII unescaped) equal to the report."""
    line = edit(sample_lines()[7], cwd="/home/dév/プロジェクト")
    path = write(tmp_path / "p" / "s.jsonl", [line])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-m", "hive_lab.usage.report", "--json", str(path)],
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "プロジェクト".encode() in proc.stdout
    assert json.loads(proc.stdout.decode("utf-8")) == \
        json.loads(json.dumps(usage_cli.usage_report(load_usage(path), "session")))


def test_the_command_ends_without_teardown_but_with_every_byte(tmp_path: Path) -> None:
    """``hive-lab usage`` leaves by ``os._exit`` (no teardown of a big tally): what it wrote
    is flushed first, for the console script and ``-m`` alike, JSON and table."""
    from hive_lab.usage.jsonout import dumps_indented
    from hive_lab.usage.parse import tally_usage

    root = mixed_corpus(tmp_path / "corpus")
    line = sample_lines()[7]
    write(root / "many" / "s.jsonl", [edit(line, sessionId=f"s-{i}", message__id=f"m-{i}")
                                       for i in range(1500)])
    tally = tally_usage(root)
    want_json = dumps_indented(usage_cli.usage_report(tally, "session")) + b"\n"
    want_table = (usage_cli.render_table(usage_cli.usage_report(tally, "day"), "day")
                  + "\n").encode()
    assert len(want_json) > 256 * 1024  # more than any pipe or stdio buffer holds
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    env["PYTHONPATH"] = str(ROOT)
    script = Path(sys.executable).with_name("hive-lab")
    for prefix in ([str(script)], [sys.executable, "-m", "hive_lab.usage.report"]):
        argv = prefix + (["usage"] if prefix[0] == str(script) else [])
        got = subprocess.run(argv + ["--json", str(root)], capture_output=True, env=env,
                             timeout=120)
        assert got.returncode == 0 and got.stdout == want_json, (argv, got.stderr[-500:])
        table = subprocess.run(argv + ["--by", "day", str(root)], capture_output=True, env=env,
                               timeout=120)
        assert table.returncode == 0 and table.stdout == want_table, table.stderr[-500:]
    head = subprocess.run(f"{script} usage --json {root} | head -c 10", shell=True,
                          capture_output=True, env=env, timeout=120)
    assert head.returncode == 0 and head.stdout == want_json[:10] and b"Traceback" not in head.stderr


def test_report_times_from_integers_equal_iso() -> None:
    """The report's integer formatter spells every time as :func:`_iso` does (edges of the
    four-digit years, before the epoch, odd years through the fallback)."""
    from hive_lab.usage.parse import _EPOCH, _iso
    from hive_lab.usage.tallyagg import _FOUR_DIGIT_YEARS, _time

    lo, hi = _FOUR_DIGIT_YEARS
    first, last = -62_135_596_800_000_000, 253_402_300_799_999_999  # 0001-01-01 .. 9999-12-31
    rng = random.Random(9)
    times = [0, -1, 1, 999, 1000, -1000, lo - 1, lo, lo + 1, hi - 1, first, last,
             1_764_633_600_123_456] + [rng.randint(first, last) for _ in range(20_000)]
    for t in times:
        assert _time(t) == _iso(_EPOCH + timedelta(microseconds=t)), t
    assert _time(None) is None


# --------------------------------------------------------------------------------------------
# The real Claude Code CLI (e2e setup of tests/claude_support): our numbers == its own
# --------------------------------------------------------------------------------------------

try:  # with or without tests/__init__.py
    from tests.claude_support import cli as claude_cli
    from tests.claude_support.fake_api import FakeAnthropic
except ImportError:  # pragma: no cover - tests/ itself on sys.path
    from claude_support import cli as claude_cli  # type: ignore[no-redef]
    from claude_support.fake_api import FakeAnthropic  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    path = claude_cli.find_or_install_claude()
    if path is None:
        pytest.skip(f"real Claude Code CLI unavailable: {claude_cli.skip_reason()}")
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("prompt,seed", [("SCENARIO:bash echo hi", 11), ("SCENARIO:multi", 12),
                                         ("SCENARIO:write notes/a.md hello", 13)])
def test_real_cli_usage_and_cost_equal_its_own(claude_bin: Path, tmp_path: Path, prompt: str,
                                               seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with FakeAnthropic(seed=seed) as api:
        env = claude_cli.private_home(tmp_path, [project], base_url=api.base_url)
        proc = subprocess.run([str(claude_bin), "-p", prompt, "--output-format", "json"], cwd=project,
                              env=claude_cli.cli_env(env), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    projects = Path(env["HOME"]) / ".claude" / "projects"
    lines = [line for f in projects.rglob("*.jsonl") for line in f.read_bytes().splitlines()]
    assert sum(b'"usage"' in line for line in lines) >= len(api.usage_calls())  # copies included

    rows = load_usage(projects)
    t = totals(rows)
    cli_usage = out["usage"]
    assert (t["input"], t["output"], t["cache_write"], t["cache_read"]) == (
        cli_usage["input_tokens"], cli_usage["output_tokens"],
        cli_usage["cache_creation_input_tokens"], cli_usage["cache_read_input_tokens"])
    assert (t["cache_write_5m"], t["cache_write_1h"]) == (
        cli_usage["cache_creation"]["ephemeral_5m_input_tokens"],
        cli_usage["cache_creation"]["ephemeral_1h_input_tokens"])
    assert t["cost"] == pytest.approx(out["total_cost_usd"], abs=1e-9)
    assert {r.session_id for r in rows} == {out["session_id"]}

    assert usage_cli.main(["--json", str(projects)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["totalCost"] == pytest.approx(out["total_cost_usd"], abs=1e-9)
    assert [s["sessionId"] for s in doc["sessions"]] == [out["session_id"]]
