"""Usage from a real Codex CLI 0.169.0 rollout (trimmed; recorded by tests/test_codex_e2e.py).

0.169.0 writes ``token_count`` events with cumulative ``total_token_usage`` (plus a new
``cache_write_input_tokens`` field, always 0 here) after every model response; the parser
turns them into one row per response. Its own /status line for this session read "Token
usage: 30.1K total (29.7K input + 361 output)": non-cached input plus output.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from hive_lab.usage import load_usage, parse_codex_rollouts

DIR = Path(__file__).resolve().parents[1] / "fixtures" / "usage" / "codex-0.169.0"


def test_a_0_169_rollout_gives_one_priced_row_per_response() -> None:
    (path,) = sorted(DIR.glob("rollout-*.jsonl"))
    counts = [json.loads(line)["payload"]["info"] for line in path.read_text().splitlines()
              if '"token_count"' in line]
    final = counts[-1]["total_token_usage"]
    rows = parse_codex_rollouts([path])
    assert len(rows) == len(counts) == 5
    assert {(r.agent, r.model, r.project, r.session_id) for r in rows} == {
        ("codex", "gpt-5.5", "/home/dev/src/gamma", "01a2349b-094b-7160-a889-367e94708b51")}
    inp, cached, out = (sum(getattr(r, f) for r in rows) for f in ("input", "cache_read", "output"))
    assert (inp + cached, cached, out) == (final["input_tokens"], final["cached_input_tokens"],
                                           final["output_tokens"])
    # What /status showed: 29.7K input (not cached) + 361 output = 30.1K total.
    assert (round(inp / 100) / 10, out, round((inp + out) / 100) / 10) == (29.7, 361, 30.1)
    # gpt-5.5 (reported): $5 in, $30 out, cache reads at 0.1 x input, per million tokens.
    want = (inp * 5 + out * 30 + cached * 0.5) / 1e6
    assert math.isclose(sum(r.cost for r in rows), want, rel_tol=1e-9)
    assert len(load_usage(DIR)) == 5  # found by its rollout-*.jsonl name; re-reading dedups
    assert len(load_usage([path, path])) == 5
