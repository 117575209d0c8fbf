"""The four run invariants as plain assertions, each message showing observed against limit.

They recompute every verdict from the raw evidence with :mod:`evidence.invariants`, never trusting
what the engine wrote into ``chain_summary.json``; the DB invariant recounts the run's rows in
PostgreSQL itself (:mod:`evidence.ledger_rows`) instead of reading ``kpi.json``.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

from evidence.invariants import (
    InvariantResult,
    LedgerLegs,
    check_completeness,
    check_db,
    check_heartbeat_density,
    check_wallclock,
)
from evidence.ledger_rows import count_legs_by_kind, count_trade_legs
from evidence.names import CHAIN_SUMMARY, HEARTBEAT
from evidence.reader import EvidenceBundle, load_evidence

EvidenceLike = Path | str | EvidenceBundle
SEALED_STATUSES = ("ended", "failed")


def _bundle(evidence: EvidenceLike) -> EvidenceBundle:
    return evidence if isinstance(evidence, EvidenceBundle) else load_evidence(Path(evidence))


def _chain_summary(bundle: EvidenceBundle) -> dict[str, Any]:
    summary = bundle.chain_summary
    problems = [p for p in bundle.problems if p.startswith(CHAIN_SUMMARY)] or bundle.problems
    assert summary is not None, f"{bundle.path}: {CHAIN_SUMMARY} unusable: {'; '.join(problems)}"
    return summary


def assert_wallclock(evidence: EvidenceLike, tolerance: float = 0.05) -> InvariantResult:
    """A duration-bounded run lasted its configured duration within ``tolerance`` (a fraction)."""
    bundle = _bundle(evidence)
    summary = _chain_summary(bundle)
    expected = summary.get("expected_duration_seconds")
    actual = float(summary["duration_seconds"])
    assert expected is not None, (
        f"wallclock: not applicable to {bundle.path.name}: it was tick-bounded (ran {actual:.1f}s, "
        "no expected duration); check wallclock only on --duration runs"
    )
    result = check_wallclock(actual, float(expected), tolerance)
    assert result.passed, f"wallclock invariant failed for {bundle.path.name}: {result.detail}"
    return result


def _widest_gap(beats: list[dict[str, Any]], started: float, ended: float) -> str:
    points = [("run start", started)]
    points += [(f"beat seq {b.get('seq')}", float(b["epoch_time"])) for b in beats]
    points.append(("run end", ended))
    points.sort(key=lambda point: point[1])
    (first, t_first), (second, t_second) = max(pairwise(points), key=lambda pair: pair[1][1] - pair[0][1])
    return f"between {first} (+{t_first - started:.1f}s) and {second} (+{t_second - started:.1f}s)"


def assert_heartbeat_density(evidence: EvidenceLike, slack_seconds: float = 5.0) -> InvariantResult:
    """No silence longer than one heartbeat interval + ``slack_seconds``, run start and end included."""
    bundle = _bundle(evidence)
    summary = _chain_summary(bundle)
    corrupt = [p for p in bundle.problems if p.startswith(HEARTBEAT)]
    assert not corrupt, f"heartbeat density: {bundle.path.name}: {'; '.join(corrupt)}"
    started = float(summary["run_started_epoch"])
    ended = float(summary["run_ended_epoch"])
    interval = float(summary["heartbeat_interval_seconds"])
    beats = [beat for beat in bundle.heartbeats if "epoch_time" in beat]
    result = check_heartbeat_density(
        [float(b["epoch_time"]) for b in beats], started, ended, interval, slack_seconds
    )
    assert result.passed, (
        f"heartbeat density failed for {bundle.path.name}: {result.detail}; widest gap "
        f"{_widest_gap(beats, started, ended)}; {len(beats)} beats over {ended - started:.1f}s"
    )
    return result


def assert_db_invariant(
    evidence: EvidenceLike, postgres_dsn: str, tolerance: int = 2, max_failed_inserts: int = 0
) -> int:
    """The run's ``trade_legs`` rows, recounted in PostgreSQL, match two per closed trade.

    The rule is `evidence.invariants.check_db` with the legs counted in PostgreSQL: beyond the
    protocol's tolerance, one entry and one exit leg per closed trade and one entry leg per position
    the run reported open; every insert the engine reported as acknowledged (or journaled) present;
    and at most ``max_failed_inserts`` failed inserts. Returns the recounted rows.
    """
    bundle = _bundle(evidence)
    summary = _chain_summary(bundle)
    run_id = str(summary["run_id"])
    closed = int(summary["closed_trades"])
    rows = count_trade_legs(postgres_dsn, run_id)
    legs = count_legs_by_kind(postgres_dsn, run_id)
    kpi = bundle.kpi or {}
    reported = kpi.get("open_positions", [])
    open_count = len(reported) if isinstance(reported, list) else int(reported or 0)
    problems: list[str] = []
    result = check_db(
        rows, closed, tolerance, legs=LedgerLegs(legs["entry"], legs["exit"], open_count, pending_records=0)
    )
    if result.failed:
        problems.append(f"recounted in PostgreSQL: {result.detail}")
    counts = kpi.get("db_counts") or {}
    acknowledged = counts.get("db_inserts_ok")
    journaled = int((kpi.get("ledger") or {}).get("legs_pending", 0))
    if isinstance(acknowledged, int) and acknowledged + journaled != rows:
        problems.append(
            f"the engine acknowledged {acknowledged} inserts (kpi.json db_inserts_ok) and journaled"
            f" {journaled}, but PostgreSQL holds {rows} rows: {acknowledged + journaled - rows:+d} missing"
        )
    failed = counts.get("db_inserts_failed")
    if isinstance(failed, int) and failed > max_failed_inserts:
        problems.append(f"db_inserts_failed {failed} > limit {max_failed_inserts}")
    assert not problems, f"DB invariant failed for run {run_id}: " + "; ".join(problems)
    return rows


def assert_evidence_complete(evidence: EvidenceLike, *, sealed: bool = True) -> InvariantResult:
    """Every minimum-set file exists, parses, matches its schema and its manifest sha256.

    With ``sealed`` the manifest must also be final (``ended``/``failed``): ``running`` means the
    engine died before its last flush.
    """
    path = evidence.path if isinstance(evidence, EvidenceBundle) else Path(evidence)
    result = check_completeness(path, verify_hashes=True)
    problems = [] if result.passed else [f"{result.detail} (need {result.limit})"]
    if sealed:
        status = (load_evidence(path).manifest or {}).get("status")
        if status not in SEALED_STATUSES:
            problems.append(
                f"manifest status {status!r}, expected one of {SEALED_STATUSES}: the run was never sealed"
            )
    assert not problems, f"evidence incomplete in {path}: " + "; ".join(problems)
    return result


def _kpi(bundle: EvidenceBundle) -> dict[str, Any]:
    assert bundle.kpi is not None, f"{bundle.path}: kpi.json unusable: {'; '.join(bundle.problems)}"
    return bundle.kpi


def assert_no_dead_letters(evidence: EvidenceLike) -> int:
    """No alert ended in the dead-letter queue (D77-4): an operator who was never told is a failure."""
    bundle = _bundle(evidence)
    alerts = _kpi(bundle).get("alerts") or {}
    dlq = int(alerts.get("dlq_count", 0))
    assert dlq == 0, (
        f"alerts: {dlq} alert(s) of run {bundle.path.name} reached the DLQ (limit 0); "
        f"sent {alerts.get('sent_count')}, retries {alerts.get('retry_count')}"
    )
    return dlq


def assert_memory_growth(evidence: EvidenceLike) -> dict[str, Any]:
    """RSS growth after the warm-up stayed within the configured limit per hour (the memory soak)."""
    bundle = _bundle(evidence)
    growth = ((_kpi(bundle).get("resources") or {}).get("rss_growth")) or {}
    assert growth.get("exceeded") is not True, (
        f"memory growth of run {bundle.path.name}: {growth.get('pct_per_hour')} %/h "
        f"({growth.get('mb_per_hour')} MB/h over {growth.get('samples')} samples) > limit "
        f"{growth.get('limit_pct_per_hour')} %/h"
    )
    return dict(growth)


def assert_invariants(evidence: EvidenceLike, postgres_dsn: str, *, wallclock: bool = True) -> None:
    """All four invariants of a finished run (wallclock only for duration-bounded runs), and no DLQ."""
    bundle = _bundle(evidence)
    assert_evidence_complete(bundle)
    if wallclock:
        assert_wallclock(bundle)
    assert_heartbeat_density(bundle)
    assert_db_invariant(bundle, postgres_dsn)
    assert_no_dead_letters(bundle)
