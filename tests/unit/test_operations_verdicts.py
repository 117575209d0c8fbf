"""`verify` on crafted evidence: the hedge residual bound and the reconciliation addendum.

The residual criterion holds kpi.json's total |residual| to the configured share of entry notional;
the reconciliation criteria judge `reconciliation.json` (sealed, valid, of this run, ok) and call a
live run without one not reconciled (CONDITIONAL GO, exit 3).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from arbitrage.cli import main
from evidence import names
from evidence.addendum import write_addendum
from gates.analyzer import FAIL, NOT_APPLICABLE, PASS, analyze
from tests.evidence_factory import RUN_ID, make_evidence_dir, refresh_manifest_hashes

CLEAN: dict[str, Any] = {"warnings_count": 0, "warnings": []}


def residual(total: float, pct: float, notional: float = 1000.0) -> dict[str, Any]:
    block = {"trades": 5, "total_abs_usd": total, "entry_notional_usd": notional, "max_pct_of_notional": pct}
    return {"residual": block}


def evidence(path: Path, *, mode: str = "paper", kpi: dict[str, Any] | None = None) -> Path:
    return make_evidence_dir(path, chain_summary=CLEAN, manifest={"mode": mode}, kpi=kpi)


def report(ok: bool, run_id: str = RUN_ID) -> dict[str, Any]:
    problems = [] if ok else ["binance XRP: balance changed +10.00000000 since the run started"]
    return {"run_id": run_id, "ok": ok, "problems": problems, "tolerances": {"pnl_usd": 0.01},
            "venues": {}, "trades": [], "reconciled_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip


def verify(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["verify", str(path)])
    return code, out.getvalue()


def test_a_residual_within_its_bound_passes_and_is_a_kpi(tmp_path: Path) -> None:
    analysis = analyze(evidence(tmp_path, kpi=residual(total=12.5, pct=2.0)))
    row = analysis.criterion("hedge_residual")
    assert (row.verdict, row.observed, row.limit, row.priority) == (PASS, 12.5, 20.0, "high")
    assert analysis.kpi_groups["risk"]["hedge_residual_usd"] == 12.5
    assert analysis.verdict == "GO"


def test_a_bound_below_the_measured_total_fails_the_criterion_in_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POSTGRES_DSN", raising=False)
    path = evidence(tmp_path, kpi=residual(total=12.5, pct=1.0))
    row = analyze(path).criterion("hedge_residual")
    assert (row.verdict, row.observed, row.limit) == (FAIL, 12.5, 10.0)
    code, out = verify(path)
    assert code == 3, out
    assert "hedge_residual" in out and "12.5" in out, out


def test_evidence_without_the_residual_figures_cannot_pass(tmp_path: Path) -> None:
    path = evidence(tmp_path)
    kpi = json.loads((path / names.KPI).read_text())
    del kpi["residual"]
    (path / names.KPI).write_text(json.dumps(kpi))
    refresh_manifest_hashes(path)
    row = analyze(path).criterion("hedge_residual")
    assert row.verdict == FAIL and row.detail.startswith("cannot check"), row


def test_a_paper_run_needs_no_reconciliation(tmp_path: Path) -> None:
    analysis = analyze(evidence(tmp_path))
    assert analysis.criterion("reconciliation").verdict == NOT_APPLICABLE
    assert analysis.criterion("reconciled").verdict == NOT_APPLICABLE


def test_a_live_run_without_reconciliation_is_conditional(tmp_path: Path) -> None:
    analysis = analyze(evidence(tmp_path, mode="live"))
    row = analysis.criterion("reconciled")
    assert (row.verdict, row.priority) == (FAIL, "high")
    assert f"arbitrage reconcile --run {RUN_ID}" in row.detail
    assert analysis.verdict == "CONDITIONAL GO" and analysis.failed == ["reconciled"]


def test_a_sealed_clean_reconciliation_passes(tmp_path: Path) -> None:
    path = evidence(tmp_path, mode="live")
    write_addendum(path, names.RECONCILIATION, names.RECONCILIATION_SEAL, report(ok=True))
    analysis = analyze(path)
    assert analysis.criterion("reconciliation").verdict == PASS
    assert analysis.criterion("reconciled").verdict == PASS
    assert analysis.verdict == "GO"


def test_a_failed_reconciliation_is_no_go_naming_its_finding(tmp_path: Path) -> None:
    path = evidence(tmp_path, mode="live")
    write_addendum(path, names.RECONCILIATION, names.RECONCILIATION_SEAL, report(ok=False))
    analysis = analyze(path)
    row = analysis.criterion("reconciliation")
    assert (row.verdict, row.priority, row.observed) == (FAIL, "critical", "1 finding(s)")
    assert "binance XRP: balance changed" in row.detail
    assert analysis.verdict == "NO-GO"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("edit", "sha256 mismatch"),
        ("other_run", "reconciles run 'smoke_20990101T000000Z_ffffff'"),
        ("schema", "problems"),
        ("inconsistent", "ok is True with 1 problem(s)"),
    ],
)
def test_a_tampered_or_foreign_reconciliation_fails(tmp_path: Path, damage: str, expected: str) -> None:
    path = evidence(tmp_path, mode="live")
    document = report(ok=True)
    if damage == "other_run":
        document = report(ok=True, run_id="smoke_20990101T000000Z_ffffff")
    elif damage == "schema":
        del document["problems"]
    elif damage == "inconsistent":
        document["problems"] = ["hidden finding"]
    write_addendum(path, names.RECONCILIATION, names.RECONCILIATION_SEAL, document)
    if damage == "edit":
        (path / names.RECONCILIATION).write_text(json.dumps(report(ok=True) | {"note": "edited"}))
    row = analyze(path).criterion("reconciliation")
    assert row.verdict == FAIL and row.observed == "invalid", row
    assert expected in row.detail, row.detail
