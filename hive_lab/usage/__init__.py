"""Token usage and cost: transcripts → usage rows → cost, the pricing table, the offline report.

Pure library code (no server, no kernel): the control plane follows live transcripts with it,
``hive-lab usage`` reads a directory offline, and the frames reuse the same rows.
"""
from __future__ import annotations

from .parse import (
    BLOCK_HOURS,
    PRICING_FILE,
    Agent,
    GroupBy,
    ModelRates,
    Pricing,
    Tokens,
    TranscriptFollower,
    UsageLedger,
    UsageRow,
    UsageTally,
    aggregate,
    aggregate_with_totals,
    billing_blocks,
    collect_files,
    iter_rows,
    load_usage,
    normalise_model,
    parse_claude_line,
    parse_claude_transcripts,
    parse_codex_rollouts,
    tally_usage,
    totals,
)

__all__ = [
    "BLOCK_HOURS", "PRICING_FILE", "Agent", "GroupBy", "ModelRates", "Pricing", "Tokens",
    "TranscriptFollower", "UsageLedger", "UsageRow", "UsageTally", "aggregate",
    "aggregate_with_totals", "billing_blocks", "collect_files", "iter_rows", "load_usage",
    "normalise_model", "parse_claude_line", "parse_claude_transcripts", "parse_codex_rollouts",
    "tally_usage", "totals",
]
