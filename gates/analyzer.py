"""GO/NO-GO on a run's evidence, recomputed from the raw files instead of trusting the engine.

Every criterion carries what was observed, the limit it was held to, a verdict and a priority
(D77-4's critical, high, medium: see :mod:`evidence.criteria`); the run is GO only when no
criterion failed, CONDITIONAL GO when only high or medium ones failed, NO-GO otherwise. A
criterion that could not be evaluated for a reason outside the evidence (no database given) is
"not checked"; one the evidence itself makes impossible to evaluate (a missing file) fails,
because an auditor cannot accept what cannot be shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, Literal

import psycopg

from evidence import names
from evidence.completeness import (
    CONTENT_KINDS,
    PRESENCE_KINDS,
    SEAL_KINDS,
    Problem,
    check_completeness,
    completeness_problems,
    summarize,
)
from evidence.conditional_rule import check_conditional
from evidence.criteria import EXIT_CODES, Judged, Priority, Windows, judge_d77, overall_verdict
from evidence.documents import beat_epoch
from evidence.invariants import InvariantResult, heartbeat_limit, max_heartbeat_gap
from evidence.judge import judge_heartbeat_density, judge_ledger, judge_wallclock, run_window
from evidence.kpi_catalog import kpi_groups
from evidence.ledger_rows import count_legs
from evidence.ledger_rule import LedgerClaims
from evidence.ramp_checks import judge_phase, split_exits
from evidence.reader import EvidenceBundle, load_evidence
from evidence.reconciliation_rule import judge_reconciliation
from evidence.residual_rule import hedge_residual
from evidence.run_facts import profile_of
from evidence.writer import atomic_write_json
from gates.d77 import run_facts
from gates.ledger_access import LedgerChoice, embedded_data_dir, open_ledger

Verdict = Literal["pass", "fail", "not checked", "not applicable"]
Measure = float | int | str | None

PASS: Final = "pass"
FAIL: Final = "fail"
NOT_CHECKED: Final = "not checked"
NOT_APPLICABLE: Final = "not applicable"

_SHOWN_PROBLEMS: Final = 3


@dataclass(frozen=True)
class Criterion:
    """One line of the verdict: what was measured, against what, and the outcome."""

    name: str
    verdict: Verdict
    observed: Measure
    limit: Measure
    detail: str
    priority: Priority = "critical"

    def to_json(self) -> dict[str, Any]:
        """The row as written into `analysis_result.json` (strict JSON: no NaN)."""
        return {
            "name": self.name,
            "priority": self.priority,
            "verdict": self.verdict,
            "observed": _finite(self.observed),
            "limit": _finite(self.limit),
            "detail": self.detail,
        }


@dataclass
class Analysis:
    """The verdict on one evidence directory, plus the parsed evidence the report draws from."""

    evidence_dir: Path
    bundle: EvidenceBundle
    criteria: list[Criterion]
    kpis: dict[str, Measure]
    kpi_groups: dict[str, dict[str, Measure]] = field(default_factory=dict)
    windows: Windows = field(default_factory=Windows)
    analyzed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def failed(self) -> list[str]:
        """Names of the failed criteria, in reporting order."""
        return [c.name for c in self.criteria if c.verdict == FAIL]

    @property
    def verdict(self) -> str:
        """GO, CONDITIONAL GO or NO-GO by the failed criteria's priorities ("not checked" and
        "not applicable" do not block)."""
        return overall_verdict(c.priority for c in self.criteria if c.verdict == FAIL)

    @property
    def exit_code(self) -> int:
        """verify's exit code: 0 GO, 3 CONDITIONAL GO, 1 NO-GO."""
        return EXIT_CODES[self.verdict]

    @property
    def run_id(self) -> str | None:
        """The run id from whichever document still has one."""
        for doc in (self.bundle.manifest, self.bundle.chain_summary, self.bundle.kpi):
            if doc is not None and isinstance(doc.get("run_id"), str):
                return str(doc["run_id"])
        return None

    def criterion(self, name: str) -> Criterion:
        """Look one criterion up by name."""
        return next(c for c in self.criteria if c.name == name)

    def to_json(self) -> dict[str, Any]:
        """The whole `analysis_result.json` document."""
        return {
            "verdict": self.verdict,
            "failed_criteria": self.failed,
            "run_id": self.run_id,
            "evidence_dir": str(self.evidence_dir),
            "analyzed_at": self.analyzed_at,
            "criteria": [c.to_json() for c in self.criteria],
            "kpis": {k: _finite(v) for k, v in self.kpis.items()},
            "kpi_groups": {
                g: {k: _finite(v) for k, v in kpis.items()} for g, kpis in self.kpi_groups.items()
            },
            "windows": self.windows.to_json(),
        }


def _finite(value: Measure) -> Measure:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _summarize(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    more = f" (+{len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
    return shown + more


def _from_invariant(result: InvariantResult) -> Criterion:
    if not result.applicable:
        return Criterion(result.name, NOT_APPLICABLE, result.observed, result.limit, result.detail)
    return _judged(result.name, bool(result.passed), result.observed, result.limit, result.detail)


def _from_d77(row: Judged) -> Criterion:
    return Criterion(row.name, row.outcome, row.observed, row.limit, row.detail, row.priority)


def _judged(name: str, ok: bool, observed: Measure, limit: Measure, detail: str) -> Criterion:
    return Criterion(name, PASS if ok else FAIL, observed, limit, detail)


def _unavailable(name: str, limit: Measure, *missing: str) -> Criterion:
    return Criterion(name, FAIL, None, limit, f"cannot check: {' and '.join(missing)} unavailable")


def _number(doc: Mapping[str, Any] | None, *path: str) -> float | None:
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


# -- evidence files --------------------------------------------------------------------------------
def _manifest_status(bundle: EvidenceBundle) -> Criterion:
    if bundle.manifest is None:
        return _unavailable("manifest_status", "ended", names.MANIFEST)
    status = bundle.manifest.get("status")
    if status == "ended":
        return Criterion("manifest_status", PASS, status, "ended", "the engine sealed its evidence")
    if status == "running":
        detail = "crash: manifest still says running, the engine never reached its final flush"
    else:
        detail = f"the engine sealed the run as {status!r}"
    return Criterion("manifest_status", FAIL, str(status), "ended", detail)


def _files_present(problems: Sequence[Problem]) -> Criterion:
    found = [p for p in problems if p.kind in PRESENCE_KINDS]
    total = len(names.MINIMUM_SET)
    observed = f"{total - len({p.file for p in found})}/{total}"
    detail = summarize(found) or "minimum set present, non-empty"
    return _judged("files_present", not found, observed, f"{total}/{total}", detail)


def _schema_valid(problems: Sequence[Problem], bundle: EvidenceBundle) -> Criterion:
    absent = {p.file for p in problems if p.kind in PRESENCE_KINDS}
    present = [n for n in names.MINIMUM_SET if n not in absent]
    found = [p for p in problems if p.kind in CONTENT_KINDS and p.file in present]
    observed = f"{len(present) - len({p.file for p in found})}/{len(present)}"
    torn = " (torn final heartbeat line dropped)" if bundle.heartbeat_torn_tail else ""
    detail = summarize(found) or f"all parse and validate{torn}"
    return _judged("schema_valid", not found, observed, f"{len(present)}/{len(present)}", detail)


def _sha256_match(problems: Sequence[Problem], bundle: EvidenceBundle) -> Criterion:
    found = [p for p in problems if p.kind in SEAL_KINDS]
    listed = (bundle.manifest or {}).get("files")
    sealed = [n for n in listed if n not in names.NEVER_SEALED] if isinstance(listed, dict) else []
    mismatched = {p.file for p in found if p.kind in ("sha256", "listed_missing")}
    observed = f"{len(sealed) - len(mismatched)}/{len(sealed)} sealed files match"
    detail = summarize(found) or "every sealed file matches its manifest digest"
    return _judged("sha256_match", not found, observed, "all match", detail)


def _conditional(evidence_dir: Path, bundle: EvidenceBundle) -> list[Criterion]:
    """One criterion per conditional file (OPS_PROTOCOL §5.2), judged by the rule the engine writes by."""
    return [
        Criterion(
            check.requirement.file.removesuffix(".json"),
            check.verdict,
            check.observed,
            check.limit,
            check.detail,
        )
        for check in check_conditional(evidence_dir, bundle.manifest, bundle.chain_summary)
    ]


# -- heartbeat ---------------------------------------------------------------------------------------
def _heartbeat_lines(bundle: EvidenceBundle) -> Criterion:
    events = [r.get("event") for r in bundle.heartbeats]
    limit = ">= 2 lines: start first, stop last"
    if not events:
        return Criterion(
            "heartbeat_lines", FAIL, 0, limit, "no heartbeat lines: the run left no proof of life"
        )
    problems = []
    if events[0] != "start":
        problems.append(f"first line is {events[0]!r}, not 'start'")
    if events[-1] != "stop":
        problems.append(f"last line is {events[-1]!r}, not 'stop' (the run did not stop cleanly)")
    if len(events) < 2:
        problems.append("only one line")
    detail = _summarize(problems) or "start and stop present"
    return _judged("heartbeat_lines", not problems, len(events), limit, detail)


def _loop_progress(bundle: EvidenceBundle) -> Criterion:
    """loop_count must advance and never go back; the loop must never be silent past a beat interval."""
    window = run_window(bundle)
    beats = sorted(bundle.heartbeats, key=lambda r: _number(r, "seq") or 0.0)
    if window is None or not beats:
        return _unavailable("loop_progress", None, "heartbeat lines" if not beats else "heartbeat interval")
    limit = heartbeat_limit(window.interval)
    counts = [int(_number(r, "loop_count") or 0) for r in beats]
    stalls = [
        epoch - (_number(r, "last_loop_ts") or window.started)
        for r in beats
        if (epoch := beat_epoch(r)) is not None and r.get("event") != "start"
    ]
    stall = max(stalls, default=0.0)
    problems = []
    backwards = sum(later < earlier for earlier, later in pairwise(counts))
    if backwards:
        problems.append(f"loop_count went backwards {backwards} time(s)")
    if len(counts) >= 2 and counts[-1] <= counts[0]:
        problems.append(f"loop_count did not advance ({counts[0]} -> {counts[-1]})")
    if stall > limit:
        problems.append(f"loop silent for {stall:.1f}s at a beat > limit {limit:.1f}s")
    detail = (
        f"loop_count {counts[0]} -> {counts[-1]} over {len(counts)} beats; longest loop silence {stall:.1f}s"
    )
    return _judged("loop_progress", not problems, round(stall, 3), limit, _summarize(problems) or detail)


# -- run and database ----------------------------------------------------------------------------
def _db_recount(bundle: EvidenceBundle, choice: LedgerChoice) -> Criterion:
    """Count the run's legs in PostgreSQL and hold them to the ledger rule (`evidence.ledger_rule`).

    A ledger the run or the operator named (the run's embedded data directory, `--postgres-dsn`)
    that cannot be read fails a run that claims legs: its rows cannot be shown. A run that claims
    none is "not checked" then, as is an ambient `POSTGRES_DSN` that cannot be reached.
    """
    run_id = bundle.manifest_doc.run_id if bundle.manifest_doc is not None else None
    named = choice.dsn is not None or (choice.embedded and embedded_data_dir(bundle.manifest) is not None)
    if not named:
        return Criterion(
            "db_recount", NOT_CHECKED, None, None, "no database given (--postgres-dsn or POSTGRES_DSN)"
        )
    if run_id is None or bundle.kpi_doc is None:
        return _unavailable("db_recount", None, "run_id, kpi.json")
    expected = LedgerClaims.from_documents(bundle.kpi_doc, bundle.summary_doc).expected
    claims_legs = expected.total > 0
    try:
        with open_ledger(choice, bundle.manifest) as access:
            if access.dsn is None:
                problem = access.problem or "no database"
                if claims_legs:
                    return Criterion("db_recount", FAIL, "unreachable", None, f"cannot recount: {problem}")
                return Criterion("db_recount", NOT_CHECKED, None, None, f"{problem}; the run claims no legs")
            rows = count_legs(access.dsn, run_id, connect_timeout_sec=5)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if access.explicit and (claims_legs or access.origin == "--postgres-dsn"):
            return Criterion("db_recount", FAIL, "unreachable", None, f"db_recount: unreachable: {reason}")
        return Criterion(
            "db_recount", NOT_CHECKED, None, None, f"database from {access.origin} unreachable: {reason}"
        )
    result = judge_ledger(bundle, rows)
    observed = f"rows {rows.total} (entry {rows.entry}, exit {rows.exit})"
    detail = f"{result.detail}; read from {access.origin}"
    return _judged("db_recount", bool(result.passed), observed, result.limit, detail)


def _engine_exit(bundle: EvidenceBundle) -> Criterion:
    summary = bundle.chain_summary
    if summary is None:
        return _unavailable("engine_exit", 0, names.CHAIN_SUMMARY)
    code, reason = summary.get("exit_code"), summary.get("stop_reason")
    return _judged("engine_exit", code == 0, code, 0, f"stop_reason {reason}")


def _warnings(bundle: EvidenceBundle) -> Criterion:
    summary = bundle.chain_summary
    if summary is None:
        return _unavailable("warnings", 0, names.CHAIN_SUMMARY)
    count = summary.get("warnings_count")
    first = [w.get("message", "") for w in summary.get("warnings", []) if isinstance(w, dict)]
    detail = f"WARN = FAIL; first: {_summarize(first)}" if first else "no WARNING-or-worse records"
    return _judged("warnings", count == 0, count, 0, detail)


# -- KPIs and entry point -------------------------------------------------------------------------
def _tally(value: object) -> int | None:
    return sum(v for v in value.values() if isinstance(v, int)) if isinstance(value, dict) else None


def _kpis(bundle: EvidenceBundle, criteria: Sequence[Criterion]) -> dict[str, Measure]:
    kpi, summary, manifest = bundle.kpi or {}, bundle.chain_summary or {}, bundle.manifest or {}
    latency = kpi.get("loop_latency_ms")
    latency = latency if isinstance(latency, dict) else {}
    rss = [v for r in bundle.heartbeats if (v := _number(r, "rss_mb")) is not None]
    epochs = bundle.beat_epochs
    window = run_window(bundle)
    closed, wins = _number(kpi, "closed_trades"), _number(kpi, "wins")
    return {
        **{k: manifest.get(k) for k in ("run_id", "phase", "mode", "status")},
        "profile": profile_of(manifest),
        **{k: summary.get(k) for k in ("stop_reason", "duration_seconds", "expected_duration_seconds")},
        **{k: kpi.get(k) for k in ("closed_trades", "wins", "losses")},
        **split_exits(summary.get("closed_by_reason")),
        "win_rate_pct": round(100.0 * wins / closed, 1) if closed and wins is not None else None,
        **{k: kpi.get(k) for k in ("net_pnl_usd", "net_pnl_krw", "opportunities_generated", "loop_count")},
        **{f"loop_latency_{p}_ms": latency.get(p) for p in ("p50", "p95", "p99", "max")},
        "db_inserts_ok": _number(kpi, "db_counts", "db_inserts_ok"),
        "db_inserts_failed": _number(kpi, "db_counts", "db_inserts_failed"),
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
        _manifest_status(bundle),
        _files_present(problems),
        _schema_valid(problems, bundle),
        _sha256_match(problems, bundle),
        _from_invariant(check_completeness(evidence_dir)),
        *_conditional(evidence_dir, bundle),
        _from_invariant(judge_wallclock(bundle)),
        _from_invariant(judge_heartbeat_density(bundle)),
        _heartbeat_lines(bundle),
        _loop_progress(bundle),
        _from_invariant(judge_ledger(bundle)),
        _db_recount(bundle, LedgerChoice(postgres_dsn, dsn_explicit, embedded_ledger)),
        _engine_exit(bundle),
        _warnings(bundle),
    ]
    used = windows or Windows()
    facts = run_facts(evidence_dir, bundle)
    criteria += [_from_d77(row) for row in judge_d77(facts, used)]
    criteria += [_from_d77(row) for row in judge_phase(facts)]
    operations = [hedge_residual(facts), *judge_reconciliation(evidence_dir, bundle.manifest)]
    criteria += [_from_d77(row) for row in operations]
    return Analysis(evidence_dir, bundle, criteria, _kpis(bundle, criteria), kpi_groups(facts), used)


def write_result(analysis: Analysis, out_dir: Path | None = None) -> Path:
    """Write `analysis_result.json` atomically (into the evidence directory unless told otherwise)."""
    target = (out_dir or analysis.evidence_dir) / names.ANALYSIS_RESULT
    atomic_write_json(target, analysis.to_json())
    return target
