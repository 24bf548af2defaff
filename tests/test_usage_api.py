"""Live usage through the server: transcripts named by hooks are followed incrementally.

The transcript is the real one in ../shared/samples (Claude Code 2.1.197); the expected
totals are computed here from its raw lines, independently of hive_lab.usage.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from support import SAMPLES, HiveServer, fire_hook, spawn, wait_for

TRANSCRIPT = SAMPLES / "claude-code-2.1.197-transcript.jsonl"


def expected_totals(lines: list[str]) -> dict[str, Any]:
    """Count each (message.id, requestId) once; cost with FACTS.md's formula (opus 4.8: 5/25)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        d = json.loads(line)
        if d.get("type") != "assistant":
            continue
        m = d["message"]
        seen[(m["id"], d["requestId"])] = m["usage"]
    tin = sum(u["input_tokens"] for u in seen.values())
    tout = sum(u["output_tokens"] for u in seen.values())
    cw = sum(u["cache_creation_input_tokens"] for u in seen.values())  # all 5m here
    cr = sum(u["cache_read_input_tokens"] for u in seen.values())
    cost = (tin * 5 + tout * 25 + cw * 1.25 * 5 + cr * 0.1 * 5) / 1e6
    return {"input": tin, "output": tout, "cache_write": cw, "cache_read": cr, "cost": cost,
            "responses": len(seen)}


def session_usage(server: HiveServer, name: str) -> dict[str, Any] | None:
    report = server.get(f"usage?by=session&session={name}")
    rows = [s for s in report["sessions"] if s["sessionId"] == name]
    return rows[0] if rows else None


def test_usage_follows_transcript_live(server: HiveServer, workdir: Path) -> None:
    lines = TRANSCRIPT.read_text().splitlines()
    half = len(lines) // 2
    transcript = workdir / "t" / "live.jsonl"
    transcript.parent.mkdir()
    transcript.write_text("\n".join(lines[:half]) + "\n")
    spawn(server, "spender", None, cwd=workdir, agent="hooked")
    start = server.get("status")["last_event_id"]
    fire_hook(server, "spender", {"hook_event_name": "SessionStart", "session_id": "sid-1",
                                  "transcript_path": str(transcript)})
    first = expected_totals(lines[:half])
    wait_for(lambda: (session_usage(server, "spender") or {}).get("outputTokens") == first["output"],
             timeout=20, what="usage of the first half")
    # the agent keeps writing: only the appended part is read, and the totals follow
    with transcript.open("a") as fh:
        fh.write("\n".join(lines[half:]) + "\n")
    full = expected_totals(lines)
    wait_for(lambda: (session_usage(server, "spender") or {}).get("outputTokens") == full["output"],
             timeout=20, what="usage after the append")
    row = session_usage(server, "spender")
    assert row["inputTokens"] == full["input"] and row["cacheReadTokens"] == full["cache_read"]
    assert row["cacheCreationTokens"] == full["cache_write"]
    assert abs(row["totalCost"] - full["cost"]) < 1e-9
    rows = server.get("usage/rows?session=spender")["rows"]
    assert len(rows) == full["responses"]
    assert {r["session"] for r in rows} == {"spender"}
    assert {r["model"] for r in rows} == {"claude-opus-4-8"}
    updates = server.get(f"events?after={start}&event=UsageUpdated&session=spender")["events"]
    assert len(updates) >= 2 and abs(updates[-1]["payload"]["usage"]["cost"] - full["cost"]) < 1e-9
    models = server.get("usage?by=model&session=spender")["models"]
    assert [m["modelName"] for m in models] == ["claude-opus-4-8"]
    assert server.get("usage?by=day&session=spender")["daily"]
    assert server.get("usage?by=block&session=spender")["blocks"]


def test_usage_survives_restart_and_bad_paths_are_ignored(tmp_path: Path) -> None:
    srv = HiveServer(tmp_path).start()
    try:
        transcript = srv.root / "copy.jsonl"
        shutil.copy(TRANSCRIPT, transcript)
        spawn(srv, "keeper", None, cwd=srv.root, agent="hooked")
        spawn(srv, "sneaky", None, cwd=srv.root, agent="hooked")
        fire_hook(srv, "keeper", {"hook_event_name": "Stop", "transcript_path": str(transcript)})
        for bad in ("relative.jsonl", "/etc/passwd", str(srv.root / "x.txt")):
            fire_hook(srv, "sneaky", {"hook_event_name": "Stop", "transcript_path": bad})
        full = expected_totals(TRANSCRIPT.read_text().splitlines())
        wait_for(lambda: (session_usage(srv, "keeper") or {}).get("outputTokens") == full["output"],
                 timeout=20, what="usage before restart")
        srv.restart()
        wait_for(lambda: (session_usage(srv, "keeper") or {}).get("outputTokens") == full["output"],
                 timeout=20, what="usage after restart (transcripts re-followed)")
        assert session_usage(srv, "sneaky") is None
        assert srv.request("GET", "usage?by=week")[0] == 400
        assert srv.request("GET", "usage?since=yesterday")[0] == 400
    finally:
        srv.stop()
        srv.kill_tmux()


def test_two_sessions_following_one_transcript_keep_their_own_rows(server: HiveServer,
                                                                   workdir: Path) -> None:
    """A resumed conversation: two Hive sessions report the same agent transcript. Rows are
    credited to the session whose ledger holds them, not mapped back by agent id."""
    transcript = workdir / "shared.jsonl"
    shutil.copy(TRANSCRIPT, transcript)
    for name in ("first-aa", "second-bb"):
        spawn(server, name, None, cwd=workdir, agent="hooked")
        fire_hook(server, name, {"hook_event_name": "Stop", "transcript_path": str(transcript)})
    full = expected_totals(TRANSCRIPT.read_text().splitlines())
    for name in ("first-aa", "second-bb"):
        wait_for(lambda n=name: (session_usage(server, n) or {}).get("outputTokens") == full["output"],
                 timeout=20, what=f"usage of {name}")
        rows = server.get(f"usage/rows?session={name}")["rows"]
        assert {r["session"] for r in rows} == {name} and len(rows) == full["responses"]
