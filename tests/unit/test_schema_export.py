"""The shipped JSON Schemas are exactly what the document models generate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from evidence.documents import DOCUMENTS, Kpi, Manifest, schema_file_name
from evidence.names import DAILY_REPORT, DECISION_TRACE, MINIMUM_SET, STOP_REASON_SNAPSHOT
from evidence.schema_export import MODELS, SCHEMA_DIR, main, render, stale
from tests.evidence_factory import make_kpi, make_manifest

CONDITIONAL_DOCUMENTS = (STOP_REASON_SNAPSHOT, DAILY_REPORT, DECISION_TRACE)


def test_every_evidence_document_has_a_model_and_a_schema() -> None:
    assert set(DOCUMENTS) == set(MINIMUM_SET)
    assert set(MODELS) == {*MINIMUM_SET, *CONDITIONAL_DOCUMENTS}
    assert {schema_file_name(name) for name in MODELS} == {p.name for p in SCHEMA_DIR.glob("*.schema.json")}


def test_checked_in_schemas_equal_the_generated_ones() -> None:
    assert stale() == [], "run: python -m evidence.schema_export"


def test_a_stale_schema_is_reported_and_check_exits_1(tmp_path: Path) -> None:
    for name in MODELS:
        (tmp_path / schema_file_name(name)).write_text(render(name), encoding="utf-8")
    assert stale(tmp_path) == []
    kpi_schema = tmp_path / "kpi.schema.json"
    edited = json.loads(kpi_schema.read_text())
    edited["required"].remove("leg_unwinds")
    kpi_schema.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    assert stale(tmp_path) == ["kpi.schema.json"]


def test_check_command_passes_on_the_shipped_schemas() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evidence.schema_export", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert main(["--check"]) == 0


def test_models_read_what_the_schemas_accept() -> None:
    kpi = Kpi.model_validate(
        make_kpi({"open_positions": [{"symbol": "BTC", "trade_id": "t1", "reason": "x"}]})
    )
    assert kpi.open_position_count == 1
    assert kpi.model_extra is not None or kpi.ledger is not None


def test_an_old_manifest_reads_its_typed_fields_from_config() -> None:
    old = make_manifest({"config": {"heartbeat": {"interval_sec": 7.5}}, "duration_minutes": 2.0})
    del old["heartbeat_interval_seconds"], old["expected_duration_seconds"]
    manifest = Manifest.model_validate(old)
    assert (manifest.heartbeat_interval_seconds, manifest.expected_duration_seconds) == (7.5, 120.0)
