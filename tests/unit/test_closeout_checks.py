"""The close-out judges the documents it wrote with the models' rule, and refuses a bad one.

Checked from the files: the sealed chain_summary.json names the bad document and its path, the
manifest is sealed, and the readers' JSON Schema check of the same directory agrees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arbitrage.closeout import RunFacts, close_out
from arbitrage.logs import WarningCounter
from arbitrage.portfolio import Portfolio
from arbitrage.run_evidence import EvidenceDir, ManifestBase
from evidence.completeness import check_completeness
from evidence.ledger_rule import LegCounts
from evidence.names import CHAIN_SUMMARY, HEARTBEAT, MANIFEST
from tests.evidence_factory import INTERVAL_SECONDS, RUN_ID, STARTED_EPOCH, make_heartbeats, make_kpi

BAD_KPI = {"db_counts": {"db_inserts_ok": -1, "db_inserts_failed": 0}}


def _closed_out(path: Path, kpi: dict[str, Any]) -> tuple[int, str]:
    base = ManifestBase(
        run_id=RUN_ID, phase="smoke", mode="paper", started_at="2025-01-01T00:00:00+00:00",
        duration_minutes=None, expected_duration_seconds=None,
        heartbeat_interval_seconds=INTERVAL_SECONDS, ticks=70, seed=7, market_source="synthetic",
        config={}, config_hash="0" * 64, pid=4242,
    )  # fmt: skip
    evidence = EvidenceDir(path, base)
    evidence.write_running_manifest()
    lines = make_heartbeats(closed_trades=0)
    (path / HEARTBEAT).write_text("".join(json.dumps(line) + "\n" for line in lines))
    epochs = [float(line["epoch_time_precise"]) for line in lines]
    facts = RunFacts(
        run_id=RUN_ID, expected_seconds=None, heartbeat_interval_seconds=INTERVAL_SECONDS,
        started_epoch=STARTED_EPOCH, ended_epoch=epochs[-1], duration_seconds=epochs[-1] - STARTED_EPOCH,
        beat_epochs=epochs, stop_reason="TICKS_COMPLETED", portfolio=Portfolio(),
        opportunities_generated=0, db_inserts_ok=0, warnings=WarningCounter(),
        acked_legs=LegCounts(0, 0), journaled_legs=0,
    )  # fmt: skip
    return close_out(evidence, facts, kpi)


@pytest.mark.allow_log("ERROR", r"^kpi\.json breaks its contract: kpi\.json: db_counts\.db_inserts_ok: ")
@pytest.mark.allow_log("ERROR", r"^evidence incomplete after the final flush: 3/4 files ok: kpi\.json: ")
@pytest.mark.parametrize(("kpi", "exit_code"), [({}, 0), (BAD_KPI, 1)])
def test_a_written_document_that_breaks_its_contract_fails_the_run(
    tmp_path: Path, kpi: dict[str, Any], exit_code: int
) -> None:
    run_dir = tmp_path / RUN_ID
    document = make_kpi(kpi, closed_trades=0)
    assert _closed_out(run_dir, document)[0] == exit_code
    summary = json.loads((run_dir / CHAIN_SUMMARY).read_text())
    manifest = json.loads((run_dir / MANIFEST).read_text())
    completeness = summary["invariants"]["completeness"]
    assert summary["exit_code"] == exit_code
    assert completeness["passed"] is (exit_code == 0)
    assert manifest["status"] == ("ended" if exit_code == 0 else "failed")
    by_schema = check_completeness(run_dir)
    assert by_schema.passed is (exit_code == 0), by_schema.detail
    if exit_code:
        assert "kpi.json: db_counts.db_inserts_ok: " in completeness["detail"]
        assert "kpi.json: db_counts.db_inserts_ok: -1 is less than the minimum of 0" in by_schema.detail
