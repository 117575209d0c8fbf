"""GO/NO-GO on a run's evidence, recomputed from the raw files instead of trusting the engine.

Every criterion carries what was observed, the limit it was held to, a verdict and a priority
(D77-4's critical, high, medium: see :mod:`evidence.criteria`); the run is GO only when no
criterion failed, CONDITIONAL GO when only high or medium ones failed, NO-GO otherwise. A
criterion that could not be evaluated for a reason outside the evidence (no database given) is
"not checked"; one the evidence itself makes impossible to evaluate (a missing file) fails,
because an auditor cannot accept what cannot be shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evidence import names
from evidence.completeness import check_completeness, completeness_problems
from evidence.criteria import Windows, judge_d77
from evidence.invariants import max_heartbeat_gap
from evidence.judge import judge_heartbeat_density, judge_ledger, judge_wallclock, run_window
from evidence.kpi_catalog import kpi_groups
from evidence.ramp_checks import judge_phase, split_exits
from evidence.reader import EvidenceBundle, load_evidence
from evidence.reconciliation_rule import judge_reconciliation
from evidence.residual_rule import hedge_residual
from evidence.run_facts import profile_of
from evidence.writer import atomic_write_json
from gates.analysis import (
    FAIL,
    NOT_APPLICABLE,
    NOT_CHECKED,
    PASS,
    Analysis,
    Criterion,
    Measure,
    Verdict,
    from_d77,
    from_invariant,
)
from gates.d77 import run_facts
from gates.evidence_checks import (
    conditional,
    db_recount,
    engine_exit,
    files_present,
    heartbeat_lines,
    loop_progress,
    manifest_status,
    number,
    schema_valid,
    sha256_match,
    warnings_logged,
)
from gates.ledger_access import LedgerChoice

__all__ = [
    "FAIL",
    "NOT_APPLICABLE",
    "NOT_CHECKED",
    "PASS",
    "Analysis",
    "Criterion",
    "Measure",
    "Verdict",
    "analyze",
    "write_result",
]


def _tally(value: object) -> int | None:
    return sum(v for v in value.values() if isinstance(v, int)) if isinstance(value, dict) else None


def _kpis(bundle: EvidenceBundle, criteria: Sequence[Criterion]) -> dict[str, Measure]:
    kpi, summary, manifest = bundle.kpi or {}, bundle.chain_summary or {}, bundle.manifest or {}
    latency = kpi.get("loop_latency_ms")
    latency = latency if isinstance(latency, dict) else {}
    rss = [v for r in bundle.heartbeats if (v := number(r, "rss_mb")) is not None]
    epochs = bundle.beat_epochs
    window = run_window(bundle)
    closed, wins = number(kpi, "closed_trades"), number(kpi, "wins")
    return {
        **{k: manifest.get(k) for k in ("run_id", "phase", "mode", "status")},
        "profile": profile_of(manifest),
        **{k: summary.get(k) for k in ("stop_reason", "duration_seconds", "expected_duration_seconds")},
        **{k: kpi.get(k) for k in ("closed_trades", "wins", "losses")},
        **split_exits(summary.get("closed_by_reason")),
        "win_rate_pct": round(100.0 * wins / closed, 1) if closed and wins is not None else None,
        **{k: kpi.get(k) for k in ("net_pnl_usd", "net_pnl_krw", "opportunities_generated", "loop_count")},
        **{f"loop_latency_{p}_ms": latency.get(p) for p in ("p50", "p95", "p99", "max")},
        "db_inserts_ok": number(kpi, "db_counts", "db_inserts_ok"),
        "db_inserts_failed": number(kpi, "db_counts", "db_inserts_failed"),
        "db_rows_recounted": next((c.observed for c in criteria if c.name == "db_recount"), None),
        "heartbeat_lines": len(bundle.heartbeats),
        "max_heartbeat_gap_seconds": (
            round(max_heartbeat_gap(epochs, window.started, window.ended), 3) if window else None
        ),
        "market_errors": _tally(kpi.get("market_errors")),
        "rejected_books": _tally(kpi.get("rejected_books")),
        "leg_unwinds": kpi.get("leg_unwinds"),
        "rss_mb_first": rss[0] if rss else None,
        "rss_mb_max": max(rss) if rss else None,
        "warnings_count": summary.get("warnings_count"),
    }


def analyze(
    evidence_dir: Path,
    postgres_dsn: str | None = None,
    *,
    dsn_explicit: bool = False,
    embedded_ledger: bool = False,
    windows: Windows | None = None,
) -> Analysis:
    """Judge one evidence directory; `dsn_explicit` makes an unreachable database a failure;
    `embedded_ledger` lets the recount restart the run's embedded PostgreSQL when no DSN is explicit;
    `windows` shortens or lengthens D77-4's windowed criteria (default: D77-4's own)."""
    evidence_dir = Path(evidence_dir)
    bundle = load_evidence(evidence_dir)
    problems = completeness_problems(evidence_dir)
    criteria = [
        manifest_status(bundle),
        files_present(problems),
        schema_valid(problems, bundle),
        sha256_match(problems, bundle),
        from_invariant(check_completeness(evidence_dir)),
        *conditional(evidence_dir, bundle),
        from_invariant(judge_wallclock(bundle)),
        from_invariant(judge_heartbeat_density(bundle)),
        heartbeat_lines(bundle),
        loop_progress(bundle),
        from_invariant(judge_ledger(bundle)),
        db_recount(bundle, LedgerChoice(postgres_dsn, dsn_explicit, embedded_ledger)),
        engine_exit(bundle),
        warnings_logged(bundle),
    ]
    used = windows or Windows()
    facts = run_facts(evidence_dir, bundle)
    criteria += [from_d77(row) for row in judge_d77(facts, used)]
    criteria += [from_d77(row) for row in judge_phase(facts)]
    operations = [hedge_residual(facts), *judge_reconciliation(evidence_dir, bundle.manifest)]
    criteria += [from_d77(row) for row in operations]
    return Analysis(evidence_dir, bundle, criteria, _kpis(bundle, criteria), kpi_groups(facts), used)


def write_result(analysis: Analysis, out_dir: Path | None = None) -> Path:
    """Write `analysis_result.json` atomically (into the evidence directory unless told otherwise)."""
    target = (out_dir or analysis.evidence_dir) / names.ANALYSIS_RESULT
    atomic_write_json(target, analysis.to_json())
    return target
