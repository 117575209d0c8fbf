"""The run's close-out around the evidence flush (`arbitrage.closeout`): what the run measured, the
ledger's last records, the journal's settling, the run's status in Redis and the operator's lines.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO

from arbitrage.closeout import RunFacts, final_flush
from arbitrage.evidence_failure import EvidenceFailures
from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger
from arbitrage.logs import WarningCounter
from arbitrage.run_evidence import EvidenceDir
from arbitrage.run_parts import RUN_LOGGER, Connected, RunParts
from arbitrage.run_summary import closing_summary
from evidence import names
from evidence.ledger_rule import LegCounts

log = logging.getLogger(RUN_LOGGER)


class RunCloseout:
    """Ends one run that got its evidence directory, whatever stopped it, and decides its exit code."""

    def __init__(
        self, run_id: str, out: TextIO, failures: EvidenceFailures, warnings: WarningCounter
    ) -> None:
        self.run_id = run_id
        self.out = out
        self.failures = failures
        self.warnings = warnings

    def facts(
        self,
        parts: RunParts,
        ledger: Ledger,
        evidence: EvidenceDir,
        expected: float | None,
        duration: float,
        stop_reason: str | None,
    ) -> RunFacts:
        """What the run measured about itself, once the loop and the watcher have stopped."""
        return RunFacts(
            run_id=self.run_id,
            expected_seconds=expected,
            heartbeat_interval_seconds=evidence.base.heartbeat_interval_seconds,
            started_epoch=parts.started_epoch,
            ended_epoch=time.time(),
            duration_seconds=duration,
            beat_epochs=parts.watcher.beat_epochs,
            stop_reason=stop_reason or "UNKNOWN",
            portfolio=parts.portfolio,
            opportunities_generated=parts.strategy.opportunities_generated,
            db_inserts_ok=ledger.db_inserts_ok,
            warnings=self.warnings,
            acked_legs=LegCounts(ledger.acked_legs["entry"], ledger.acked_legs["exit"]),
            journaled_legs=ledger.pending_legs,
            open_positions=list(parts.trader.left_open),
        )

    def close(
        self,
        conn: Connected,
        evidence: EvidenceDir,
        journal: LedgerJournal,
        parts: RunParts,
        facts: RunFacts,
        kpi: dict[str, Any],
        drain_until: float,
    ) -> int:
        """Flush and seal the evidence, finalize the ledger and the run state; the exit code."""
        portfolio = parts.portfolio
        outcome = f"stop_reason={facts.stop_reason} closed_trades={portfolio.closed_trades}"
        finish = partial(parts.supervisor.finish, evidence.path, names.METRICS_SNAPSHOT, outcome)
        finalize = partial(self.finalize_ledger, conn.ledger, facts, drain_until)
        exit_code, status = final_flush(
            evidence, facts, kpi, finish, self.failures, finalize, parts.conditional.write
        )
        parts.supervisor.close()
        self._settle(conn.ledger, journal)
        conn.state.set_status(self.run_id, status, exit_code=exit_code)
        log.info(
            "run %s %s: stop_reason=%s closed_trades=%d net_pnl_usd=%.4f exit=%d",
            self.run_id, status, facts.stop_reason, portfolio.closed_trades, portfolio.net_pnl_usd, exit_code,
        )  # fmt: skip
        print("\n".join(closing_summary(evidence.path)), file=self.out, flush=True)
        return exit_code

    def finalize_ledger(
        self, ledger: Ledger, facts: RunFacts, drain_until: float, exit_code: int, status: str
    ) -> None:
        """The run's last ledger records, journaled before the final seal so that it covers them.

        They get at least the bound a synchronous write of them would have had (`ledger.guard`):
        the stop's other work (an abandoned fetch from a slow venue let finish) can spend the whole
        drain budget, and a writer thread given no time at all would leave them queued.
        """
        ledger.record_event(
            self.run_id, "RUN_END", {"stop_reason": facts.stop_reason, "exit_code": exit_code}
        )
        ledger.record_run_end(
            self.run_id,
            status,
            facts.stop_reason,
            exit_code,
            facts.portfolio.closed_trades,
            datetime.now(UTC),
        )
        ledger.drain(max(ledger.guard.bound_sec, drain_until - time.monotonic()))

    def _settle(self, ledger: Ledger, journal: LedgerJournal) -> None:
        """Settle the journal on what PostgreSQL still lacks, and say where those records are."""
        pending = ledger.pending_count
        journal.settle(pending)
        if ledger.pending_unjournaled:
            print(
                f"arbitrage: {ledger.pending_unjournaled} ledger records of run {self.run_id} reached"
                f" neither PostgreSQL nor the journal ({ledger.journal_error}): lost with this process",
                file=sys.stderr, flush=True,
            )  # fmt: skip
        elif pending:
            print(
                f"arbitrage: {pending} ledger records of run {self.run_id} are not in PostgreSQL yet: kept in"
                f" {journal.path}; the next `arbitrage run` or `arbitrage preflight` replays them",
                file=sys.stderr, flush=True,
            )  # fmt: skip
