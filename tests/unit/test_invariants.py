"""The four operational invariants: boundaries, edge gaps and completeness on crafted directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evidence
from evidence.completeness import check_completeness
from evidence.documents import Invariants
from evidence.invariants import (
    COMPLETENESS,
    DB,
    HEARTBEAT_DENSITY,
    INVARIANT_NAMES,
    WALLCLOCK,
    InvariantResult,
    check_heartbeat_density,
    check_wallclock,
    max_heartbeat_gap,
)
from evidence.ledger_rule import LedgerClaims, LegCounts, check_ledger
from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST, MINIMUM_SET
from tests.evidence_factory import make_evidence_dir, make_heartbeats, refresh_manifest_hashes


def test_invariant_names_are_the_chain_summary_invariant_keys() -> None:
    schema_file = Path(evidence.__file__).parent / "schemas" / "chain_summary.schema.json"
    shipped = json.loads(schema_file.read_text())
    required = shipped["$defs"]["Invariants"]["required"]
    assert list(INVARIANT_NAMES) == [WALLCLOCK, HEARTBEAT_DENSITY, DB, COMPLETENESS]
    assert sorted(required) == sorted(INVARIANT_NAMES)
    assert set(Invariants.model_fields) == set(INVARIANT_NAMES)


# --- wallclock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("actual", [3600.0, 3780.0, 3420.0, 3700.0])
def test_wallclock_within_five_percent_passes(actual: float) -> None:
    result = check_wallclock(actual, 3600.0)
    assert (result.applicable, result.passed, result.failed) == (True, True, False)
    assert result.limit == 180.0


@pytest.mark.parametrize(("actual", "deviation"), [(3780.5, 180.5), (3419.5, 180.5), (7200.0, 3600.0)])
def test_wallclock_beyond_five_percent_fails(actual: float, deviation: float) -> None:
    result = check_wallclock(actual, 3600.0)
    assert (result.passed, result.failed) == (False, True)
    assert result.observed == deviation
    assert "off by" in result.detail and "> limit 180.0s" in result.detail


def test_wallclock_detail_carries_the_numbers() -> None:
    result = check_wallclock(630.0, 600.0)
    assert result.detail == "ran 630.0s vs expected 600.0s: off by 30.0s <= limit 30.0s (5%)"
    assert result.passed is True


def test_wallclock_not_applicable_for_tick_bounded_run() -> None:
    result = check_wallclock(12.5, None)
    assert (result.applicable, result.passed, result.failed) == (False, None, False)
    assert result.detail == "not applicable: run was tick-bounded"


def test_wallclock_custom_tolerance() -> None:
    assert check_wallclock(110.0, 100.0, tolerance=0.10).passed is True
    assert check_wallclock(110.5, 100.0, tolerance=0.10).passed is False


def test_wallclock_nan_fails_and_stays_json_safe() -> None:
    result = check_wallclock(float("nan"), 60.0)
    assert result.failed is True
    assert result.observed == "nan"


def test_wallclock_rejects_non_positive_expected() -> None:
    with pytest.raises(ValueError, match="expected_seconds"):
        check_wallclock(10.0, 0.0)


# --- heartbeat density -------------------------------------------------------------------------


def test_gap_between_beats() -> None:
    assert max_heartbeat_gap([110.0, 120.0, 135.0, 140.0], 100.0, 145.0) == 15.0


def test_gap_includes_run_start_edge() -> None:
    assert max_heartbeat_gap([118.0, 125.0], 100.0, 130.0) == 18.0


def test_gap_includes_run_end_edge() -> None:
    assert max_heartbeat_gap([105.0, 110.0], 100.0, 130.0) == 20.0


def test_gap_without_beats_is_whole_run() -> None:
    assert max_heartbeat_gap([], 100.0, 130.5) == 30.5


def test_gap_ignores_beat_order() -> None:
    assert max_heartbeat_gap([120.0, 110.0, 130.0], 100.0, 131.0) == 10.0


def test_density_exactly_at_limit_passes() -> None:
    result = check_heartbeat_density([115.0, 130.0], 100.0, 140.0, interval_seconds=10.0)
    assert (result.passed, result.observed, result.limit) == (True, 15.0, 15.0)
    assert result.detail == "max heartbeat gap 15.0s <= limit 15.0s (interval 10s + 5s)"


def test_density_just_over_limit_fails() -> None:
    result = check_heartbeat_density([110.0, 125.5], 100.0, 130.0, interval_seconds=10.0)
    assert result.failed is True
    assert result.detail == "max heartbeat gap 15.5s > limit 15.0s (interval 10s + 5s)"


def test_density_fails_on_silent_tail() -> None:
    result = check_heartbeat_density(
        [100.0, 110.0, 120.0], 100.0, 160.0, interval_seconds=10.0, slack_seconds=2.0
    )
    assert (result.passed, result.observed, result.limit) == (False, 40.0, 12.0)


# --- db ------------------------------------------------------------------------------------------


def _claims(closed: int, open_: int = 0, acknowledged: int | None = None, journaled: int = 0) -> LedgerClaims:
    acked = 2 * closed + open_ if acknowledged is None else acknowledged
    return LedgerClaims(closed, open_, acked, journaled)


def test_ledger_exact_rows_pass() -> None:
    result = check_ledger(LegCounts(10, 10), _claims(10))
    assert (result.name, result.passed, result.observed) == (DB, True, 0)
    assert result.detail == "PostgreSQL holds 20 legs (entry 10, exit 10); expected 20 (2 x 10 closed)"


def test_ledger_zero_trades_zero_rows_passes() -> None:
    assert check_ledger(LegCounts(0, 0), _claims(0)).passed is True


@pytest.mark.parametrize(("rows", "problem"), [
    (LegCounts(10, 9), "9 exit legs for 10 closed trades"),
    (LegCounts(9, 10), "9 entry legs for 10 closed trades + 0 reported open"),
    (LegCounts(11, 10), "11 entry legs for 10 closed trades"),
])  # fmt: skip
def test_ledger_one_lost_or_extra_leg_fails_without_tolerance(rows: LegCounts, problem: str) -> None:
    result = check_ledger(rows, _claims(10, acknowledged=rows.total))
    assert result.failed is True
    assert problem in result.detail


def test_ledger_positions_reported_open_are_expected_entry_legs() -> None:
    result = check_ledger(LegCounts(13, 10), _claims(10, open_=3))
    assert (result.passed, result.observed) == (True, 0)
    assert "+ 3 open" in result.detail


def test_ledger_rows_must_be_what_the_engine_acknowledged() -> None:
    result = check_ledger(LegCounts(10, 10), _claims(10, acknowledged=21))
    assert result.failed is True
    assert "20 rows but the engine accounted for 21 acknowledged + 0 journaled (-1)" in result.detail


def test_ledger_legs_still_in_the_journal_fail_until_replayed() -> None:
    before = check_ledger(LegCounts(9, 9), _claims(10, acknowledged=18, journaled=2))
    assert before.failed is True
    assert "2 legs still only in the run's journal (not replayed yet)" in before.detail
    replayed = check_ledger(LegCounts(10, 10), _claims(10, acknowledged=18, journaled=2))
    assert replayed.passed is True


# --- result object -------------------------------------------------------------------------------


def test_result_json_round_trip() -> None:
    result = InvariantResult("db", True, False, 3, 2, "off by 3")
    data = result.to_json()
    assert data == {
        "name": "db",
        "applicable": True,
        "passed": False,
        "observed": 3,
        "limit": 2,
        "detail": "off by 3",
    }
    assert InvariantResult.from_json(json.loads(json.dumps(data))) == result


@pytest.mark.parametrize(("applicable", "passed"), [(True, None), (False, True), (False, False)])
def test_result_rejects_inconsistent_verdicts(applicable: bool, passed: bool | None) -> None:
    with pytest.raises(ValueError, match="applicable"):
        InvariantResult("x", applicable, passed, None, None, "")


# --- completeness --------------------------------------------------------------------------------


def test_completeness_of_valid_directory(tmp_path: Path) -> None:
    result = check_completeness(make_evidence_dir(tmp_path / "ev"))
    assert (result.name, result.applicable, result.passed) == ("completeness", True, True)
    assert (result.observed, result.limit) == ("4/4 files ok", "4/4")


@pytest.mark.parametrize("name", [CHAIN_SUMMARY, HEARTBEAT, KPI])
def test_completeness_missing_file(tmp_path: Path, name: str) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    (evidence_dir / name).unlink()
    result = check_completeness(evidence_dir)
    assert result.failed is True
    assert result.observed == "3/4 files ok"
    assert f"{name}: missing" in result.detail


def test_completeness_missing_manifest_fails_every_hash(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    (evidence_dir / MANIFEST).unlink()
    result = check_completeness(evidence_dir)
    assert result.observed == "0/4 files ok"
    assert result.detail.startswith("0/4 files ok: manifest.json: missing; ")
    assert "chain_summary.json: cannot verify sha256: manifest unreadable" in result.detail
    assert check_completeness(evidence_dir, verify_hashes=False).observed == "3/4 files ok"


@pytest.mark.parametrize("name", MINIMUM_SET)
def test_completeness_empty_file(tmp_path: Path, name: str) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    (evidence_dir / name).write_bytes(b"")
    result = check_completeness(evidence_dir, verify_hashes=False)
    assert result.failed is True
    assert result.observed == "3/4 files ok"
    assert f"{name}: empty" in result.detail


def test_completeness_schema_invalid_json_file(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(
        tmp_path / "ev", kpi={"db_counts": {"db_inserts_ok": -1, "db_inserts_failed": 0}}
    )
    result = check_completeness(evidence_dir)
    assert result.observed == "3/4 files ok"
    assert (
        result.detail == "3/4 files ok: kpi.json: db_counts.db_inserts_ok: -1 is less than the minimum of 0"
    )


def test_completeness_schema_invalid_heartbeat_line(tmp_path: Path) -> None:
    lines = make_heartbeats()
    lines[1]["watchdog"] = "SLEEPY"
    result = check_completeness(make_evidence_dir(tmp_path / "ev", heartbeats=lines))
    assert result.failed is True
    assert "heartbeat.jsonl: line 2: watchdog: 'SLEEPY' is not one of" in result.detail


def test_completeness_schema_invalid_manifest(tmp_path: Path) -> None:
    result = check_completeness(make_evidence_dir(tmp_path / "ev", manifest={"status": "paused"}))
    assert result.observed == "3/4 files ok"
    assert "manifest.json: status: 'paused' is not one of" in result.detail


def test_completeness_tampered_file(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    kpi_path = evidence_dir / KPI
    kpi_path.write_text(kpi_path.read_text().replace('"closed_trades": 3', '"closed_trades": 4'))
    result = check_completeness(evidence_dir)
    assert result.failed is True
    assert result.observed == "3/4 files ok"
    assert "kpi.json: sha256 mismatch with manifest" in result.detail
    assert check_completeness(evidence_dir, verify_hashes=False).passed is True


def test_completeness_file_not_listed_in_manifest(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev", manifest={"files": {}})
    result = check_completeness(evidence_dir)
    assert result.observed == "1/4 files ok"
    assert result.detail == (
        "1/4 files ok: chain_summary.json: not listed in manifest files; "
        "heartbeat.jsonl: not listed in manifest files; kpi.json: not listed in manifest files"
    )


def test_completeness_tolerates_torn_heartbeat_tail(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    with (evidence_dir / HEARTBEAT).open("ab") as fh:
        fh.write(b'{"seq": 8, "ev')
    refresh_manifest_hashes(evidence_dir)
    assert check_completeness(evidence_dir).passed is True


def test_completeness_corrupt_heartbeat_line(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    lines = (evidence_dir / HEARTBEAT).read_bytes().split(b"\n")
    lines[3] = b'{"seq": 3,'
    (evidence_dir / HEARTBEAT).write_bytes(b"\n".join(lines))
    refresh_manifest_hashes(evidence_dir)
    result = check_completeness(evidence_dir)
    assert result.observed == "3/4 files ok"
    assert "heartbeat.jsonl: line 4: corrupt: malformed JSON line" in result.detail


def test_completeness_detail_lists_first_problems_and_counts_the_rest(tmp_path: Path) -> None:
    evidence_dir = tmp_path / "empty"
    evidence_dir.mkdir()
    result = check_completeness(evidence_dir)
    assert result.observed == "0/4 files ok"
    assert result.detail == (
        "0/4 files ok: manifest.json: missing; chain_summary.json: missing; "
        "heartbeat.jsonl: missing (+1 more)"
    )
