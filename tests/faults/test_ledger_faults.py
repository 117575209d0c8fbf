"""Real engine runs against a PostgreSQL the test cuts, stops and freezes: nothing is lost.

Each case is judged by `LedgerAudit`, from PostgreSQL and the files: every entry leg has its
exit leg or is reported open, kpi.json equals the database, the `runs` row is final, no
traceback was printed, and the evidence is sealed (the journal included).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from arbitrage.ledger import APPLICATION_NAME
from gates.chaos.checker import LedgerAudit
from tests.support.controlled_pg import ControlledPostgres
from tests.support.ledger_audit import EngineRun, next_command, tracebacks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAULT_WARNINGS = r"not acknowledged|ledger reconnected|insert failed|undelivered|unreachable"


def audit(run: EngineRun, dsn: str) -> LedgerAudit:
    assert tracebacks(run.stdout, run.stderr) == [], run.stderr
    result = LedgerAudit.of(dsn, run.run_dir)
    assert result.lost() == [], run.stderr
    assert result.unexplained(killed=False) == [], run.stderr
    return result


@pytest.mark.parametrize("strike_at", ["early", "mid-run", "at-stop"])
def test_a_dropped_connection_loses_no_leg(
    controlled_pg: ControlledPostgres, redis_url: str, tmp_path: Path, strike_at: str
) -> None:
    run = EngineRun.start(tmp_path, controlled_pg.dsn, redis_url, "--duration", "12s")
    if strike_at == "at-stop":
        run.wait_until(8.0)
        run.process.send_signal(signal.SIGTERM)
        killed = controlled_pg.terminate_backends(APPLICATION_NAME)
    else:
        run.wait_until(3.0 if strike_at == "early" else 7.0)
        killed = controlled_pg.terminate_backends(APPLICATION_NAME)
    assert run.finish() == 1
    assert killed >= 1
    result = audit(run, controlled_pg.dsn)
    assert result.run_row is not None and result.run_row[1] == 1
    assert result.exits >= 1


def test_the_server_stopped_for_ten_seconds_mid_run(
    controlled_pg: ControlledPostgres, redis_url: str, tmp_path: Path
) -> None:
    run = EngineRun.start(tmp_path, controlled_pg.dsn, redis_url, "--duration", "22s")
    run.wait_until(4.0)
    with controlled_pg.stopped_for(10.0):
        pass
    assert run.finish() == 1
    result = audit(run, controlled_pg.dsn)
    assert result.kpi is not None and result.kpi["ledger"]["journal_pending"] == 0
    assert result.run_row is not None and result.run_row[0] == "failed"
    assert "ledger write of" in run.stderr


def test_the_server_down_past_the_end_is_replayed_by_the_next_command(
    controlled_pg: ControlledPostgres, redis_url: str, tmp_path: Path
) -> None:
    run = EngineRun.start(tmp_path, controlled_pg.dsn, redis_url, "--duration", "10s")
    run.wait_until(5.0)
    controlled_pg.stop()
    assert run.finish() == 1
    assert f"ledger records of run {run.run_id} are not in PostgreSQL yet" in run.stderr
    assert (tmp_path / ".ledger_pending" / f"{run.run_id}.json").exists()
    controlled_pg.start()

    after = next_command(tmp_path, controlled_pg.dsn, redis_url)

    replayed = [line for line in after.stderr.splitlines() if run.run_id in line]
    assert len(replayed) == 1, after.stderr
    assert replayed[0].startswith(f"arbitrage: replayed the ledger journal of run {run.run_id}: ")
    assert not (tmp_path / ".ledger_pending" / f"{run.run_id}.json").exists()
    result = audit(run, controlled_pg.dsn)
    assert result.run_row is not None and result.run_row[0] == "failed"


def test_a_frozen_backend_cannot_hold_a_sigterm(
    controlled_pg: ControlledPostgres, redis_url: str, tmp_path: Path
) -> None:
    run = EngineRun.start(tmp_path, controlled_pg.dsn, redis_url, "--duration", "30s")
    run.wait_until(5.0)
    assert controlled_pg.freeze_backends()
    run.wait_until(7.0)
    run.process.send_signal(signal.SIGTERM)
    signalled = run.elapsed()
    try:
        code = run.finish(timeout=30)
        stop_seconds = run.elapsed() - signalled
    finally:
        controlled_pg.thaw()
    assert code == 1
    assert stop_seconds <= 10.0, f"SIGTERM to exit took {stop_seconds:.1f}s with a frozen database"
    after = next_command(tmp_path, controlled_pg.dsn, redis_url)
    assert after.returncode in (0, 1), after.stderr
    audit(run, controlled_pg.dsn)
