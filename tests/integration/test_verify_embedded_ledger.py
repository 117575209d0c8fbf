"""The main job's path: a run on the embedded defaults, then `arbitrage verify` with no DSN at all.

verify restarts the run's embedded PostgreSQL from the data directory the manifest records,
recounts read-only and stops it again; it joins a server someone else still holds instead of
starting a second postmaster; a ledger that lost a row, cannot start or is gone is NO-GO, in one
line and without a traceback.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psutil
import psycopg
import pytest

from arbitrage.services import EmbeddedPostgres
from evidence import names
from gates.ledger_access import LedgerChoice, open_ledger
from harness.cli_process import run_cli

pytestmark = pytest.mark.integration


def cli(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"ARB_SERVICES__DATA_DIR": str(cwd / ".services")}, timeout=timeout, cwd=cwd)


def recount(evidence_dir: Path) -> dict[str, str]:
    result = json.loads((evidence_dir / names.ANALYSIS_RESULT).read_text())
    row = next(c for c in result["criteria"] if c["name"] == "db_recount")
    return {"verdict": row["verdict"], "detail": row["detail"], "observed": str(row["observed"])}


def postmasters(data_dir: Path) -> list[int]:
    """Running postgres processes started on `data_dir` (the postmaster has `-D <data_dir>`)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(process.pid)
    return found


def verify(cwd: Path, evidence_dir: Path) -> subprocess.CompletedProcess[str]:
    done = cli(cwd, "verify", str(evidence_dir))
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_verify_recounts_the_runs_embedded_ledger_and_catches_a_lost_row(tmp_path: Path) -> None:
    run = cli(tmp_path, "run", "--ticks", "400", "--seed", "7", "--evidence-root", str(tmp_path / "evidence"))
    assert run.returncode == 0, run.stderr[-2000:]
    evidence_dir = Path(
        next(x for x in run.stdout.splitlines() if x.startswith("evidence: ")).split(" ", 1)[1]
    )
    manifest = json.loads((evidence_dir / names.MANIFEST).read_text())
    data_dir = (tmp_path / ".services" / "postgres").resolve()
    assert manifest["services"] == {"postgres_data_dir": str(data_dir)}
    assert postmasters(data_dir) == [], "the run stops the server it started"

    good = verify(tmp_path, evidence_dir)
    assert good.returncode == 0, good.stdout
    assert "verdict: GO" in good.stdout
    assert recount(evidence_dir)["verdict"] == "pass"
    assert str(data_dir) in recount(evidence_dir)["detail"]
    assert postmasters(data_dir) == [], "verify stops the server it restarted"

    held = EmbeddedPostgres(data_dir)
    dsn = held.start_existing()
    try:
        (postmaster,) = postmasters(data_dir)
        joined = verify(tmp_path, evidence_dir)
        assert joined.returncode == 0, joined.stdout
        assert postmasters(data_dir) == [postmaster], "verify joins a running server and leaves it running"
        with psycopg.connect(dsn, autocommit=True) as conn:
            deleted = conn.execute(
                "DELETE FROM trade_legs WHERE id = (SELECT max(id) FROM trade_legs WHERE run_id = %s)",
                (evidence_dir.name,),
            ).rowcount
        assert deleted == 1
    finally:
        held.stop()
    assert postmasters(data_dir) == []

    lost = verify(tmp_path, evidence_dir)
    assert lost.returncode == 1, lost.stdout
    assert "verdict: NO-GO: failed db_recount" in lost.stdout
    rows = int(manifest_rows(evidence_dir))
    assert recount(evidence_dir)["observed"].startswith(f"rows {rows - 1} ")
    assert postmasters(data_dir) == []

    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("shared_buffers = 'not a size'\n")
    broken = verify(tmp_path, evidence_dir)
    assert broken.returncode == 1, broken.stdout
    assert "verdict: NO-GO: failed db_recount" in broken.stdout
    assert recount(evidence_dir)["detail"].startswith(
        f"cannot recount: embedded postgres did not start in {data_dir}"
    )

    subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    gone = verify(tmp_path, evidence_dir)
    assert gone.returncode == 1, gone.stdout
    assert (
        recount(evidence_dir)["detail"]
        == f"cannot recount: embedded postgres data directory {data_dir} is gone"
    )
    assert not data_dir.exists(), "verify must not create a fresh cluster in place of the lost one"


def manifest_rows(evidence_dir: Path) -> int:
    """The legs the engine reports: acknowledged inserts (this run journals none)."""
    kpi = json.loads((evidence_dir / names.KPI).read_text())
    assert kpi["ledger"]["legs_pending"] == 0
    return int(kpi["db_counts"]["db_inserts_ok"])


def test_the_recount_session_cannot_write_and_the_server_is_stopped_after(tmp_path: Path) -> None:
    data_dir = (tmp_path / "pg").resolve()
    setup = EmbeddedPostgres(data_dir)
    dsn = setup.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE trade_legs (id serial PRIMARY KEY, run_id text)")
            conn.execute("INSERT INTO trade_legs (run_id) VALUES ('r')")
    finally:
        setup.stop()
    assert postmasters(data_dir) == []

    manifest = {"services": {"postgres_data_dir": str(data_dir)}}
    with open_ledger(LedgerChoice(embedded=True), manifest) as access:
        assert access.dsn is not None and access.problem is None
        with psycopg.connect(access.dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM trade_legs").fetchone() == (1,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("DELETE FROM trade_legs")
        assert len(postmasters(data_dir)) == 1
    assert postmasters(data_dir) == []
