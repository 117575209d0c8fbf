"""`arbitrage verify` recounts the ledger in a real PostgreSQL and catches a deleted row.

A real engine run writes real rows into embedded PostgreSQL; verify says GO; one `trade_legs`
row is then deleted behind the engine's back and verify must say NO-GO, naming `db_recount`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest

from arbitrage.services import ServiceEndpoints
from evidence import names
from evidence.ledger_rows import count_trade_legs
from harness.cli_process import run_cli

pytestmark = pytest.mark.integration


def cli(tmp_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=timeout, cwd=tmp_path)


def criteria(evidence_dir: Path) -> dict[str, str]:
    result = json.loads((evidence_dir / names.ANALYSIS_RESULT).read_text())
    return {c["name"]: c["verdict"] for c in result["criteria"]}


def test_verify_recounts_rows_and_catches_a_deleted_leg(tmp_path: Path, server: ServiceEndpoints) -> None:
    dsn, url = server.postgres_dsn, server.redis_url
    run = cli(tmp_path, "run", "--ticks", "400", "--seed", "7", "--postgres-dsn", dsn, "--redis-url", url,
              "--evidence-root", str(tmp_path / "evidence"))  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    evidence_lines = [line for line in run.stdout.splitlines() if line.startswith("evidence: ")]
    assert len(evidence_lines) == 1, run.stdout
    evidence_dir = Path(evidence_lines[0].removeprefix("evidence: "))
    run_id = evidence_dir.name
    rows = count_trade_legs(dsn, run_id)
    assert rows >= 2, "the seeded run should trade at least once"

    good = cli(tmp_path, "verify", str(evidence_dir), "--postgres-dsn", dsn)
    assert good.returncode == 0, good.stdout
    assert "verdict: GO" in good.stdout
    assert criteria(evidence_dir)["db_recount"] == "pass"

    with psycopg.connect(dsn, autocommit=True) as conn:
        deleted = conn.execute(
            "DELETE FROM trade_legs WHERE id = (SELECT max(id) FROM trade_legs WHERE run_id = %s)", (run_id,)
        ).rowcount
    assert deleted == 1
    assert count_trade_legs(dsn, run_id) == rows - 1

    bad = cli(tmp_path, "verify", str(evidence_dir), "--postgres-dsn", dsn)
    assert bad.returncode == 1, bad.stdout
    assert "verdict: NO-GO: failed db_recount" in bad.stdout
    assert criteria(evidence_dir)["db_recount"] == "fail"
    recount = json.loads((evidence_dir / names.ANALYSIS_RESULT).read_text())["kpis"]["db_rows_recounted"]
    assert recount.startswith(f"rows {rows - 1} ")
