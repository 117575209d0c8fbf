"""The four run invariants as plain assertions, each message showing observed against limit.

They recompute every verdict from the raw evidence with the rule book in :mod:`evidence.judge`
(the same functions ``verify`` calls), never trusting what the engine wrote into
``chain_summary.json``; the DB invariant recounts the run's rows in PostgreSQL itself.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

from evidence.completeness import check_completeness
from evidence.documents import beat_epoch
from evidence.invariants import HEARTBEAT_SLACK_SECONDS, InvariantResult
from evidence.judge import judge_heartbeat_density, judge_ledger, judge_sealed, judge_wallclock, run_window
from evidence.ledger_rows import count_legs
from evidence.reader import EvidenceBundle, load_evidence

EvidenceLike = Path | str | EvidenceBundle


def _bundle(evidence: EvidenceLike) -> EvidenceBundle:
    return evidence if isinstance(evidence, EvidenceBundle) else load_evidence(Path(evidence))


def assert_wallclock(evidence: EvidenceLike, tolerance: float = 0.05) -> InvariantResult:
    """A duration-bounded run lasted its configured duration within ``tolerance`` (a fraction)."""
    bundle = _bundle(evidence)
    result = judge_wallclock(bundle, tolerance)
    ran = bundle.summary_doc.duration_seconds if bundle.summary_doc is not None else float("nan")
    assert result.applicable, (
        f"wallclock: not applicable to {bundle.path.name}: it was tick-bounded (ran {ran:.1f}s, "
        "no expected duration); check wallclock only on --duration runs"
    )
    assert result.passed, f"wallclock invariant failed for {bundle.path.name}: {result.detail}"
    return result


def _widest_gap(beats: list[dict[str, Any]], started: float, ended: float) -> str:
    points = [("run start", started)]
    points += [(f"beat seq {b.get('seq')}", epoch) for b in beats if (epoch := beat_epoch(b)) is not None]
    points.append(("run end", ended))
    points.sort(key=lambda point: point[1])
    (first, t_first), (second, t_second) = max(pairwise(points), key=lambda pair: pair[1][1] - pair[0][1])
    return f"between {first} (+{t_first - started:.1f}s) and {second} (+{t_second - started:.1f}s)"


def assert_heartbeat_density(
    evidence: EvidenceLike, slack_seconds: float = HEARTBEAT_SLACK_SECONDS
) -> InvariantResult:
    """No silence longer than one heartbeat interval + the slack, run start and end included."""
    bundle = _bundle(evidence)
    result = judge_heartbeat_density(bundle, slack_seconds)
    window = run_window(bundle)
    where = ""
    if window is not None:
        span = window.ended - window.started
        where = (
            f"; widest gap {_widest_gap(bundle.heartbeats, window.started, window.ended)}; "
            f"{len(bundle.beat_epochs)} beats over {span:.1f}s"
        )
    assert result.passed, f"heartbeat density failed for {bundle.path.name}: {result.detail}{where}"
    return result


def assert_db_invariant(evidence: EvidenceLike, postgres_dsn: str, max_failed_inserts: int = 0) -> int:
    """The run's ``trade_legs`` rows, recounted in PostgreSQL, are exactly what the ledger promises.

    The rule is `evidence.ledger_rule.check_ledger` with the legs counted in PostgreSQL (one entry and
    one exit leg per closed trade, one entry leg per position reported open, every acknowledged or
    journaled leg present), plus at most ``max_failed_inserts`` failed inserts. Returns the rows.
    """
    bundle = _bundle(evidence)
    run_id = bundle.manifest_doc.run_id if bundle.manifest_doc is not None else None
    assert run_id is not None, f"DB invariant: {bundle.path.name}: manifest.json unusable: {bundle.problems}"
    rows = count_legs(postgres_dsn, run_id)
    problems: list[str] = []
    result = judge_ledger(bundle, rows)
    if result.failed:
        problems.append(result.detail)
    failed = bundle.kpi_doc.db_counts.db_inserts_failed if bundle.kpi_doc is not None else 0
    if failed > max_failed_inserts:
        problems.append(f"db_inserts_failed {failed} > limit {max_failed_inserts}")
    assert not problems, f"DB invariant failed for run {run_id}: " + "; ".join(problems)
    return rows.total


def assert_evidence_complete(evidence: EvidenceLike, *, sealed: bool = True) -> InvariantResult:
    """Every minimum-set file exists, parses, matches its schema and the manifest's seal.

    With ``sealed`` the manifest must also be final (``ended``/``failed``): ``running`` means the
    engine died before its last flush.
    """
    path = evidence.path if isinstance(evidence, EvidenceBundle) else Path(evidence)
    result = check_completeness(path, verify_hashes=True)
    problems = [] if result.passed else [f"{result.detail} (need {result.limit})"]
    if sealed:
        seal = judge_sealed(_bundle(evidence))
        if seal.failed:
            problems.append(f"{seal.detail} (need {seal.limit})")
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
