"""Validate and flush: the invariants, kpi.json, chain_summary.json and the sealed manifest.

This is the end of every run that got as far as trading, whatever stopped it. The exit
code is decided here: 0 only when every applicable invariant held, the run stopped by its own
condition (duration or ticks), and no WARNING was logged (WARN = FAIL).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arbitrage.evidence_failure import STOP_REASON, EvidenceFailures
from arbitrage.logs import WarningCounter
from arbitrage.portfolio import Portfolio
from arbitrage.run_evidence import EvidenceDir
from evidence import names
from evidence.completeness import check_completeness
from evidence.conditional_rule import PLANNED_STOPS
from evidence.invariants import COMPLETENESS, InvariantResult, check_heartbeat_density, check_wallclock
from evidence.ledger_rule import ENGINE_ACKNOWLEDGED, LedgerClaims, LegCounts, check_ledger
from evidence.schema import document_errors

log = logging.getLogger("arbitrage.closeout")

Finalize = Callable[[int, str], None]
"""What runs once the exit code and status are known, before the last seal."""

CLEAN_STOPS = PLANNED_STOPS

WriteConditional = Callable[["RunFacts", EvidenceFailures], None]
"""Writes the conditional files the run requires (see `arbitrage.conditional_evidence`)."""


@dataclass
class RunFacts:
    """What the run measured about itself, gathered once the loop and the watcher have stopped."""

    run_id: str
    expected_seconds: float | None
    heartbeat_interval_seconds: float
    started_epoch: float
    ended_epoch: float
    duration_seconds: float
    beat_epochs: list[float]
    stop_reason: str
    portfolio: Portfolio
    opportunities_generated: int
    db_inserts_ok: int
    warnings: WarningCounter
    acked_legs: LegCounts
    """Legs PostgreSQL acknowledged to the ledger."""
    journaled_legs: int
    """Legs left in the run's journal, not acknowledged."""
    open_positions: list[dict[str, Any]] = field(default_factory=list)
    """Positions the stop-time flatten left open: symbol, trade_id and reason."""

    def invariants(self) -> list[InvariantResult]:
        """Wallclock, heartbeat density and DB; completeness is judged on the written files."""
        return [
            check_wallclock(self.duration_seconds, self.expected_seconds),
            check_heartbeat_density(
                self.beat_epochs, self.started_epoch, self.ended_epoch, self.heartbeat_interval_seconds
            ),
            self.ledger(),
        ]

    def ledger(self) -> InvariantResult:
        """The ledger rule on the engine's own account: the legs it saw acknowledged."""
        claims = LedgerClaims(
            self.portfolio.closed_trades, len(self.open_positions), self.db_inserts_ok, self.journaled_legs
        )
        return check_ledger(self.acked_legs, claims, source=ENGINE_ACKNOWLEDGED)

    def summary(self, results: list[InvariantResult]) -> dict[str, Any]:
        ok = (
            all(not r.failed for r in results)
            and self.stop_reason in CLEAN_STOPS
            and self.warnings.count == 0
        )
        p = self.portfolio
        return {
            "run_id": self.run_id,
            "duration_seconds": round(self.duration_seconds, 3),
            "expected_duration_seconds": self.expected_seconds,
            "run_started_epoch": self.started_epoch,
            "run_ended_epoch": self.ended_epoch,
            "heartbeat_interval_seconds": self.heartbeat_interval_seconds,
            "closed_trades": p.closed_trades,
            "closed_by_reason": dict(sorted(p.closed_by_reason.items())),
            "wins": p.wins,
            "losses": p.losses,
            "net_pnl": {"krw": round(p.net_pnl_krw, 2), "usd": round(p.net_pnl_usd, 4)},
            "opportunities_generated": self.opportunities_generated,
            "open_positions": list(self.open_positions),
            "stop_reason": self.stop_reason,
            "exit_code": 0 if ok else 1,
            "warnings_count": self.warnings.count,
            "warnings": list(self.warnings.first),
            "invariants": {r.name: r.to_json() for r in results},
        }


def final_flush(
    evidence: EvidenceDir,
    facts: RunFacts,
    kpi: dict[str, Any],
    finish: Callable[[], dict[str, Any]],
    failures: EvidenceFailures,
    finalize: Finalize | None = None,
    conditional: WriteConditional | None = None,
) -> tuple[int, str]:
    """Release the space reserved at start, then `finish` (its kpi additions), the `conditional`
    files once the stop reason is final, and `close_out`.

    Never raises an OSError: an evidence write failure, now or earlier in the run, makes the
    result (1, "failed") and prints the operator's one line naming the path and the cause.
    `finalize` (the ledger's last records) runs exactly once, even when the evidence could not
    be written.
    """
    finalized: list[tuple[int, str]] = []

    def finalize_once(exit_code: int, status: str) -> None:
        finalized.append((exit_code, status))
        if finalize is not None:
            finalize(exit_code, status)

    for step in (evidence.release_closeout_space, lambda: kpi.update(finish())):
        try:
            step()
        except OSError as exc:
            failures.report(exc)
    if failures.first is not None and facts.stop_reason in CLEAN_STOPS:
        facts.stop_reason = STOP_REASON
    if conditional is not None:
        conditional(facts, failures)
    exit_code, status = 1, "failed"
    try:
        exit_code, status = close_out(evidence, facts, kpi, finalize_once)
    except OSError as exc:
        failures.report(exc)
    if not finalized:
        finalize_once(1, "failed")
    failure = failures.first
    if failure is None:
        return exit_code, status
    print(failure.line(), file=sys.stderr, flush=True)
    return 1, "failed"


def close_out(
    evidence: EvidenceDir, facts: RunFacts, kpi: dict[str, Any], finalize: Finalize | None = None
) -> tuple[int, str]:
    """Write kpi.json and chain_summary.json, seal the manifest; return (exit code, status).

    The summary reports on the files it is one of, so it is written, the directory sealed and
    checked from disk, and then the checked result is written and sealed again. `finalize`
    runs once the exit code is known and before that last seal (the ledger's final records go
    to its journal, which the seal covers). When a write fails (OSError), the manifest is still
    sealed `failed` over what is there, if it can be, and the error is raised.
    """
    try:
        return _flush(evidence, facts, kpi, finalize)
    except OSError:
        try:
            evidence.seal("failed")
        except OSError as exc:
            log.error("evidence could not be sealed: %s", exc)
        raise


def _flush(
    evidence: EvidenceDir, facts: RunFacts, kpi: dict[str, Any], finalize: Finalize | None
) -> tuple[int, str]:
    evidence.write(names.KPI, kpi)
    measured = facts.invariants()
    pending = InvariantResult(COMPLETENESS, True, False, "unchecked", "4/4", "not checked yet")
    evidence.write(names.CHAIN_SUMMARY, facts.summary([*measured, pending]))
    evidence.seal("failed")
    summary = facts.summary([*measured, check_completeness(evidence.path, check=document_errors)])
    evidence.write(names.CHAIN_SUMMARY, summary)
    exit_code = int(summary["exit_code"])
    status = "ended" if exit_code == 0 else "failed"
    if finalize is not None:
        finalize(exit_code, status)
    evidence.seal(status)
    final = check_completeness(evidence.path, check=document_errors)
    if final.failed:
        log.error("evidence incomplete after the final flush: %s", final.detail)
        exit_code = 1
    if facts.warnings.count > summary["warnings_count"]:
        exit_code = 1
    return exit_code, status
