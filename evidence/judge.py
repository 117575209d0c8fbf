"""The rule book applied to an evidence directory's documents: one function per verdict.

The harness assertions and ``verify`` both call these, so the two judges cannot disagree on a
run; the engine's close-out calls the same underlying rules on the figures it measured itself.
A document a rule needs but cannot read makes the rule fail ("cannot check"): an auditor cannot
accept what cannot be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from evidence.documents import SEALED_STATUSES
from evidence.invariants import (
    DB,
    HEARTBEAT_DENSITY,
    HEARTBEAT_SLACK_SECONDS,
    WALLCLOCK,
    WALLCLOCK_TOLERANCE,
    InvariantResult,
    check_heartbeat_density,
    check_wallclock,
)
from evidence.ledger_rule import ENGINE_ACKNOWLEDGED, LedgerClaims, LegCounts, check_ledger
from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST
from evidence.reader import EvidenceBundle

SEALED: Final = "sealed"


def _cannot_check(name: str, *missing: str) -> InvariantResult:
    return InvariantResult(
        name, True, False, None, None, f"cannot check: {' and '.join(missing)} unavailable"
    )


def _problems_of(bundle: EvidenceBundle, name: str) -> list[str]:
    return [p for p in bundle.problems if p.startswith(name)]


@dataclass(frozen=True)
class RunWindow:
    """When the run started and ended, and the heartbeat interval it promised."""

    started: float
    ended: float
    interval: float


def run_window(bundle: EvidenceBundle) -> RunWindow | None:
    """The window from the chain summary (else the first and last beats) and the interval from the
    manifest (else the chain summary); None when the documents do not tell."""
    summary, manifest = bundle.summary_doc, bundle.manifest_doc
    interval = (
        manifest.heartbeat_interval_seconds
        if manifest is not None
        else summary.heartbeat_interval_seconds
        if summary is not None
        else None
    )
    epochs = bundle.beat_epochs
    if summary is not None:
        started, ended = summary.run_started_epoch, summary.run_ended_epoch
    elif epochs:
        started, ended = min(epochs), max(epochs)
    else:
        return None
    return None if interval is None else RunWindow(started, ended, interval)


def expected_seconds(bundle: EvidenceBundle) -> float | None:
    """The configured duration: the manifest's typed field, else the chain summary's."""
    if bundle.manifest_doc is not None:
        return bundle.manifest_doc.expected_duration_seconds
    return bundle.summary_doc.expected_duration_seconds if bundle.summary_doc is not None else None


def judge_wallclock(bundle: EvidenceBundle, tolerance: float = WALLCLOCK_TOLERANCE) -> InvariantResult:
    """Wallclock on the run's documents (not applicable to a tick-bounded run)."""
    summary = bundle.summary_doc
    if summary is None:
        return _cannot_check(WALLCLOCK, CHAIN_SUMMARY)
    return check_wallclock(summary.duration_seconds, expected_seconds(bundle), tolerance)


def judge_heartbeat_density(
    bundle: EvidenceBundle, slack_seconds: float = HEARTBEAT_SLACK_SECONDS
) -> InvariantResult:
    """Heartbeat density over the precise time of every beat, run start and end included."""
    unreadable = _problems_of(bundle, HEARTBEAT)
    if unreadable:
        return InvariantResult(HEARTBEAT_DENSITY, True, False, None, None, "cannot check: " + unreadable[0])
    window = run_window(bundle)
    if window is None:
        return _cannot_check(HEARTBEAT_DENSITY, "run window", "heartbeat interval")
    return check_heartbeat_density(
        bundle.beat_epochs, window.started, window.ended, window.interval, slack_seconds
    )


def judge_ledger(bundle: EvidenceBundle, rows: LegCounts | None = None) -> InvariantResult:
    """The ledger rule with ``rows`` counted in PostgreSQL, or without them on the engine's own
    account of its acknowledged legs (``kpi.json["ledger"]``)."""
    kpi = bundle.kpi_doc
    if kpi is None:
        return _cannot_check(DB, KPI)
    claims = LedgerClaims.from_documents(kpi, bundle.summary_doc)
    if rows is not None:
        return check_ledger(rows, claims)
    if kpi.ledger is None:
        return _cannot_check(DB, "kpi.json ledger account")
    own = LegCounts(kpi.ledger.entry_legs_ok, kpi.ledger.exit_legs_ok)
    return check_ledger(own, claims, source=ENGINE_ACKNOWLEDGED)


def judge_sealed(bundle: EvidenceBundle) -> InvariantResult:
    """The engine reached its final flush: the manifest is no longer ``running``."""
    manifest = bundle.manifest
    if manifest is None:
        return _cannot_check(SEALED, MANIFEST)
    status = manifest.get("status")
    passed = status in SEALED_STATUSES
    detail = (
        f"the engine sealed the run as {status!r}"
        if passed
        else f"manifest status {status!r}: the engine never reached its final flush"
    )
    return InvariantResult(SEALED, True, passed, str(status), " or ".join(SEALED_STATUSES), detail)
