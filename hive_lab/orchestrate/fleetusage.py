"""Fleet-wide spend on the shared store: every control server's usage rows, counted by all.

Each node's budget keeper counts the rows of its own sessions. With a shared store, a fleet or
profile limit must count the whole team's spend, so each server publishes the rows it counted
to ``fleet_usage`` (one append per flush) and reads the other servers' rows back into its
keeper's fleet and profile meters (``BudgetKeeper.ingest_remote``); each then pauses its own
agents when a fleet limit is reached, so one budget stops agents on every server.

Counting is idempotent: a row is keyed by (node, session, API response id), and a copy
replaces the one counted before, so the reader may re-read. It does, on purpose: ids of
concurrent writers can commit out of order, so each read starts at the highest id seen at
least ``LAG`` seconds ago, never missing a row that committed late.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..core.errors import StoreUnavailable
from .schema import FLEET_USAGE_SQL

if TYPE_CHECKING:
    from ..core.signals import Signals
    from ..core.usagemonitor import UsageMonitor
    from .budgetkeeper import BudgetKeeper
    from .runtime import Orchestrator

log = logging.getLogger("hive_lab.budgets")

MIGRATION_SQL = FLEET_USAGE_SQL  # appended to the store's migrations as step 7

LAG = 15.0  # seconds: re-read rows younger than this (late commits of lower ids)
MAX_PENDING = 200_000  # rows kept while the store is away (the oldest go first beyond it)
READ_BATCH = 5000


class FleetUsage:
    """Publishes this server's usage rows and counts the other servers' into the keeper."""

    def __init__(self, orch: "Orchestrator", keeper: "BudgetKeeper", usage: "UsageMonitor",
                 signals: "Signals") -> None:
        self.conn = orch.conn
        self.node = orch.config.owner
        self.keeper = keeper
        self.usage = usage
        self.pending: deque[tuple[Any, ...]] = deque(maxlen=MAX_PENDING)
        self._published: dict[tuple[str, str], tuple[Any, int]] = {}
        # (when, highest id read then); rows after ``_floor`` (the highest id read at least
        # LAG seconds ago) are read again: a lower id may have committed after a higher one.
        self._marks: deque[tuple[float, int]] = deque()
        self._floor = 0
        self.remote_rows = 0
        signals.usage.connect(self._on_usage)

    def _on_usage(self, session: str) -> None:
        agent = self.keeper._agent(session)
        for row in self.usage.fresh.get(session) or []:
            key = "|".join(row.key) if row.key is not None else \
                f"{row.source}@{row.time.timestamp():.6f}:{row.total_tokens}"
            value = (row.cost, row.total_tokens)
            if self._published.get((session, key)) == value:
                continue  # a replay of a row already published
            self._published[(session, key)] = value
            self.pending.append((self.node, session, agent, key, row.time.timestamp(), row.cost,
                                 row.total_tokens))

    async def sync(self) -> None:
        """Flush what this server counted; count what the others published. Level-triggered."""
        try:
            self._flush()
            self._read(time.monotonic())
        except StoreUnavailable as exc:
            log.debug("fleet usage waits for the store: %s", exc.detail)

    def _flush(self) -> None:
        if not self.pending:
            return
        batch = list(self.pending)
        with self.conn:
            for k in range(0, len(batch), 500):
                chunk = batch[k:k + 500]
                self.conn.execute(
                    "INSERT INTO fleet_usage (node, session, agent, rowkey, at, dollars, tokens) "
                    "VALUES " + ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in chunk),
                    [v for r in chunk for v in r])
        for _ in batch:
            self.pending.popleft()

    def _read(self, now: float) -> None:
        while self._marks and self._marks[0][0] <= now - LAG:
            self._floor = max(self._floor, self._marks.popleft()[1])
        after = top = self._floor
        while True:
            rows = self.conn.execute(
                "SELECT id, node, session, agent, rowkey, at, dollars, tokens FROM fleet_usage "
                "WHERE id > ? AND node != ? ORDER BY id LIMIT ?",
                (after, self.node, READ_BATCH)).fetchall()
            for r in rows:
                self.keeper.ingest_remote(str(r[1]), str(r[2]), str(r[3]), str(r[4]), float(r[5]),
                                          None if r[6] is None else float(r[6]), int(r[7]))
                self.remote_rows += 1
            if rows:
                after = top = max(top, int(rows[-1][0]))
            if len(rows) < READ_BATCH:
                break
        self._marks.append((now, top))
