"""Gemini CLI usage from its own chat file (usage/gemini.py), on a trimmed real file.

``tests/fixtures/gemini/chats/session-*.jsonl`` is what @google/gemini-cli 0.61.0 wrote for two
prompts against tests/gemini_support/fake_gemini.py (message contents trimmed, the rest as
written); ``screen-stats-model.txt`` is its ``/stats model`` screen at the end of that run.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from hive_lab.usage import gemini as g
from hive_lab.usage.parse import Pricing, TranscriptFollower, load_usage, totals

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gemini_support.stats import parse_model_stats  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
CHAT = FIXTURES / "chats" / "session-2026-12-02T03-23-6587e4ec.jsonl"
SID = "6587e4ec-566d-48ac-bcc2-b3efc52bf208"


def _recorded(path: Path) -> dict[str, dict]:
    """The ``tokens`` of each gemini message id, read independently of the parser."""
    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        d = json.loads(line)
        if d.get("type") == "gemini" and "tokens" in d:
            out[d["id"]] = {**d["tokens"], "model": d["model"]}
    return out


def test_rows_match_the_file_and_the_cli_own_stats() -> None:
    rows = load_usage(CHAT)
    rec = _recorded(CHAT)
    assert len(rec) == 3 and sorted(r.message_id for r in rows) == sorted(rec)  # one per id
    for r in rows:
        t = rec[r.message_id]
        assert (r.agent, r.session_id, r.model) == ("gemini", SID, t["model"])
        assert r.input == t["input"] - t["cached"] and r.cache_read == t["cached"]
        assert r.output == t["output"] + t["thoughts"]
        assert r.total_tokens == t["total"]
        assert r.cost is None  # gemini-3.1-pro-preview is not in the pricing table
    stats = parse_model_stats((FIXTURES / "screen-stats-model.txt").read_text())
    main = stats["gemini-3.1-pro-preview"]
    assert main["roles"]["main"]["requests"] == len(rows)
    assert sum(r.input for r in rows) == main["input"]
    assert sum(r.cache_read for r in rows) == main["cache_reads"]
    assert sum(r.output for r in rows) == main["output"] + main["thoughts"]
    assert sum(r.total_tokens for r in rows) == main["total"]
    total = totals(rows)  # the unknown model is flagged, not passed off as $0
    assert total["cost_complete"] is False
    assert total["unknown_models"] == ["gemini-3.1-pro-preview"]


def test_cost_from_the_pricing_table(tmp_path: Path) -> None:
    chats = tmp_path / "proj" / "chats"
    chats.mkdir(parents=True)
    path = chats / CHAT.name
    path.write_text(CHAT.read_text().replace("gemini-3.1-pro-preview", "gemini-2.5-pro"))
    rows = load_usage(path)
    for r in rows:
        want = (r.input * 1.25 + r.output * 10 + r.cache_read * 0.125) / 1e6
        assert r.cost == pytest.approx(want, rel=1e-12) and r.cost > 0
    override = Pricing.load(overrides={"gemini-3.1-pro-preview": {"input": 2, "output": 12}})
    priced = load_usage(CHAT, override)
    assert all(r.cost is not None and r.cost > 0 for r in priced)
    assert rows[0].project == "proj"


def test_rereads_and_repeated_messages_never_count_twice(tmp_path: Path) -> None:
    chats = tmp_path / "p" / "chats"
    chats.mkdir(parents=True)
    path = chats / CHAT.name
    lines = CHAT.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]))
    f = TranscriptFollower(path)
    assert len(f.poll()) == 1
    path.write_text("".join(lines))  # rewritten in place, grown: read again from the start
    f.poll()
    assert len(f.rows()) == 3
    gemini_msgs = [ln for ln in lines if '"type":"gemini"' in ln and '"tokens"' in ln]
    # The CLI re-appends a message when it changes, and a resume rewrites the list in $set.
    again = json.dumps({"$set": {"messages": [json.loads(x) for x in gemini_msgs]}})
    with path.open("a") as out:
        out.write(gemini_msgs[0])
        out.write(again + "\n")
        out.write('{"$rewindTo":"7b8ffede-af23-4a90-8a7b-ddd8bece926f"}\n{"id": broken\n')
    assert f.poll() == []
    assert len(f.rows()) == 3
    assert totals(f.rows())["total_tokens"] == sum(t["total"] for t in _recorded(CHAT).values())


def test_only_chat_files_are_taken_for_gemini(tmp_path: Path) -> None:
    assert g.is_gemini_chat(CHAT)
    assert not g.is_gemini_chat(tmp_path / "session-x.jsonl")  # not under chats/
    other = tmp_path / "x" / "chats" / "session-2026-01-01T00-00-abcd1234.jsonl"
    other.parent.mkdir(parents=True)
    shutil.copy(CHAT, other)
    rows = load_usage(tmp_path)  # found in a directory tree, auto-detected by its path
    assert {r.agent for r in rows} == {"gemini"} and len(rows) == 3


def test_a_resume_names_its_session() -> None:
    assert g.parse_line(b'{"$set":{"sessionId":"abc-1"}}') == ("abc-1", [])
    assert g.parse_line(b'{"$set":{"lastUpdated":"2026-12-02T03:24:00.498Z"}}') == (None, [])


@pytest.mark.parametrize("line", [
    b'{"id":"a","timestamp":"2026-12-02T03:24:00.498Z","type":"gemini","tokens":"lots"}',
    b'{"id":"a","timestamp":"2026-12-02T03:24:00.498Z","type":"user","tokens":{"input":5}}',
    b'{"id":"a","timestamp":"2026-12-02T03:24:00.498Z","type":"gemini","tokens":{"input":-5,'
    b'"output":1e400,"cached":true}}',
    b'{"id":1,"type":"gemini","tokens":{"input":5}}',
    b'not json "tokens"',
])
def test_hostile_lines_give_nothing_or_zeroes(line: bytes) -> None:
    _, found = g.parse_line(line)
    for r in found:
        assert (r.prompt, r.candidates, r.cached) == (0, 0, 0)
