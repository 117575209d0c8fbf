"""Where verify looks for a run's ledger, decided without any server: the order of the sources, the
read-only session, and a recorded embedded data directory that is gone."""

from __future__ import annotations

from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from gates.analyzer import FAIL, NOT_CHECKED, analyze
from gates.ledger_access import LedgerChoice, embedded_data_dir, open_ledger, read_only
from tests.evidence_factory import make_evidence_dir

CLEAN = {"warnings_count": 0, "warnings": []}


def _manifest(data_dir: Path | None) -> dict[str, object]:
    return {"services": {"postgres_data_dir": None if data_dir is None else str(data_dir)}}


def test_every_session_verify_opens_is_read_only() -> None:
    params = conninfo_to_dict(read_only("postgresql://postgres:@/postgres?host=/tmp/sock"))
    assert params["options"] == "-c default_transaction_read_only=on"
    assert params["host"] == "/tmp/sock"


def test_the_flag_wins_then_the_runs_embedded_server_then_postgres_dsn(tmp_path: Path) -> None:
    gone = tmp_path / "gone" / "postgres"
    manifest = _manifest(gone)
    with open_ledger(LedgerChoice("postgresql:///flag", explicit=True, embedded=True), manifest) as access:
        assert (access.origin, access.explicit) == ("--postgres-dsn", True)
    with open_ledger(LedgerChoice("postgresql:///ambient", embedded=True), manifest) as access:
        assert access.dsn is None and access.explicit
        assert access.problem == f"embedded postgres data directory {gone} is gone"
    with open_ledger(LedgerChoice("postgresql:///ambient", embedded=True), _manifest(None)) as access:
        assert (access.origin, access.explicit) == ("POSTGRES_DSN", False)
    with open_ledger(LedgerChoice(embedded=False), manifest) as access:
        assert access.dsn is None and access.problem is None
    assert not gone.exists(), "looking for a gone ledger must not create one"


def test_manifests_without_a_recorded_data_dir_name_none() -> None:
    assert embedded_data_dir(None) is None
    assert embedded_data_dir({"services": "x"}) is None
    assert embedded_data_dir(_manifest(None)) is None
    assert embedded_data_dir(_manifest(Path("/srv/pg"))) == Path("/srv/pg")


def test_a_gone_ledger_fails_a_run_that_claims_legs(tmp_path: Path) -> None:
    gone = tmp_path / "nothing-here"
    path = make_evidence_dir(tmp_path / "run", manifest=_manifest(gone), chain_summary=CLEAN)
    recount = analyze(path, embedded_ledger=True).criterion("db_recount")
    assert recount.verdict == FAIL
    assert recount.detail == f"cannot recount: embedded postgres data directory {gone} is gone"
    assert not gone.exists()


def test_a_gone_ledger_is_not_checked_for_a_run_that_claims_no_legs(tmp_path: Path) -> None:
    gone = tmp_path / "nothing-here"
    path = make_evidence_dir(tmp_path / "run", manifest=_manifest(gone), chain_summary=CLEAN, closed_trades=0)
    recount = analyze(path, embedded_ledger=True).criterion("db_recount")
    assert recount.verdict == NOT_CHECKED
    assert "is gone; the run claims no legs" in recount.detail


def test_without_embedded_ledger_the_recorded_directory_is_not_used(tmp_path: Path) -> None:
    path = make_evidence_dir(tmp_path / "run", manifest=_manifest(tmp_path / "pg"), chain_summary=CLEAN)
    recount = analyze(path).criterion("db_recount")
    assert recount.verdict == NOT_CHECKED and recount.detail.startswith("no database given")
