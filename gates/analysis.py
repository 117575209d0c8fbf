"""The verdict on one evidence directory: its criteria (observed, limit, verdict, priority) and the
whole `analysis_result.json` document; how the criteria are checked is `gates.evidence_checks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from evidence.criteria import EXIT_CODES, Judged, Priority, Windows, overall_verdict
from evidence.invariants import InvariantResult
from evidence.reader import EvidenceBundle

Verdict = Literal["pass", "fail", "not checked", "not applicable"]
Measure = float | int | str | None

PASS: Final = "pass"
FAIL: Final = "fail"
NOT_CHECKED: Final = "not checked"
NOT_APPLICABLE: Final = "not applicable"


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


def from_invariant(result: InvariantResult) -> Criterion:
    """An engine invariant as a criterion; one that does not apply is "not applicable"."""
    if not result.applicable:
        return Criterion(result.name, NOT_APPLICABLE, result.observed, result.limit, result.detail)
    return judged(result.name, bool(result.passed), result.observed, result.limit, result.detail)


def from_d77(row: Judged) -> Criterion:
    """A D77-4 criterion row, with its priority."""
    return Criterion(row.name, row.outcome, row.observed, row.limit, row.detail, row.priority)


def judged(name: str, ok: bool, observed: Measure, limit: Measure, detail: str) -> Criterion:
    """A critical criterion that passed when `ok`, else failed."""
    return Criterion(name, PASS if ok else FAIL, observed, limit, detail)


def unavailable(name: str, limit: Measure, *missing: str) -> Criterion:
    """A failed criterion: the evidence it is checked on is `missing`."""
    return Criterion(name, FAIL, None, limit, f"cannot check: {' and '.join(missing)} unavailable")
