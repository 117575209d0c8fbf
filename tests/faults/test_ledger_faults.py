"""Real engine runs against a PostgreSQL the test cuts, stops and freezes: nothing is lost.

Each case is judged by `LedgerAudit`, from PostgreSQL and the files: every entry leg has its
exit leg or is reported open, kpi.json equals the database, the `runs` row is final, no
traceback was printed, and the evidence is sealed (the journal included).
"""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import psycopg
import pytest

from arbitrage.journal import JournalError, LedgerJournal, read_journal
from arbitrage.ledger import APPLICATION_NAME, Ledger
from gates.chaos.checker import LedgerAudit
from gates.chaos.disk import fill_to_enospc
from tests.integration.test_ledger_journal import leg
from tests.support.controlled_pg import ControlledPostgres
from tests.support.engine_process import wait_for
from tests.support.ledger_audit import EngineRun, next_command, tracebacks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAULT_WARNINGS = r"not acknowledged|ledger reconnected|insert failed|undelivered|unreachable"


def wait_for_a_trade(run: EngineRun, within_sec: float = 90.0) -> float:
    """Seconds after launch at which the run's first trade leg is in its journal (start-up on a
    loaded machine can take many seconds, so no fault is scheduled before it)."""

    def journaled_a_leg() -> bool:
        if run.process.poll() is not None:
            raise AssertionError(f"engine exited early ({run.process.returncode})")
        journals = run.evidence_root.glob("*/ledger_journal.jsonl")
        return any(record["op"] == "leg" for journal in journals for record in read_journal(journal))

    wait_for(journaled_a_leg, within_sec, "a trade leg in the run's journal")
    return run.elapsed()


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
    traded_at = wait_for_a_trade(run)
    if strike_at == "at-stop":
        run.wait_until(traded_at + 6.0)
        run.process.send_signal(signal.SIGTERM)
        killed = controlled_pg.terminate_backends(APPLICATION_NAME)
    else:
        run.wait_until(traded_at + (0.0 if strike_at == "early" else 4.0))
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
    run.wait_until(wait_for_a_trade(run) + 2.0)
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
    run.wait_until(wait_for_a_trade(run) + 3.0)
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
    traded_at = wait_for_a_trade(run)
    run.wait_until(traded_at + 3.0)
    assert controlled_pg.freeze_backends()
    run.wait_until(traded_at + 5.0)
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


@pytest.mark.allow_log("ERROR", "ledger journal unwritable", count=1)
@pytest.mark.allow_log("WARNING", r"kept in memory \(journal unwritable\)", count=1)
def test_a_full_disk_and_a_stopped_server_at_once_drop_no_record(
    controlled_pg: ControlledPostgres, small_tmpfs: Path
) -> None:
    """Found by chaos (seed 1, run 110: pg-restart + disk-full): a leg that neither PostgreSQL nor
    the journal could take was dropped. It must stay pending in memory until the server is back."""
    ledger = Ledger(controlled_pg.dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    evidence = small_tmpfs / "run_full"
    evidence.mkdir()
    journal = LedgerJournal(evidence, small_tmpfs, "run_full")
    ledger.attach_journal(journal)
    try:
        fill_to_enospc(small_tmpfs / ".filler")
        controlled_pg.stop()
        acknowledged = ledger.record_leg(leg("run_full", 1))
        pending_while_down = (ledger.pending_count, ledger.pending_unjournaled)
        controlled_pg.start()
        left = ledger.drain(20.0)
    finally:
        ledger.close()
        journal.close()
    assert acknowledged is False
    assert pending_while_down == (1, 1)
    assert ledger.journal_error is not None and ledger.journal_error.errno == errno.ENOSPC
    assert left == 0
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute("SELECT trade_id, leg FROM trade_legs WHERE run_id = 'run_full'").fetchall()
    assert rows == [("T000001", "entry")]


@pytest.mark.parametrize("small_tmpfs", [64], indirect=True)
def test_a_full_disk_never_leaves_a_torn_line_inside_the_journal(small_tmpfs: Path) -> None:
    """Found by chaos (seed 1, run 110): a full disk took part of a line, the next lines followed
    it, and the journal could not be read back. A line goes in whole or not at all."""
    evidence = small_tmpfs / "run_torn"
    evidence.mkdir()
    journal = LedgerJournal(evidence, small_tmpfs, "run_torn")
    payload = {"run_id": "run_torn", "event_type": "BIG", "payload": {"pad": "x" * 3000}}
    written, refused = 0, 0
    try:
        for _ in range(40):
            try:
                journal.append("event", payload)
                written += 1
            except JournalError as exc:
                assert exc.errno == errno.ENOSPC
                refused += 1
        (small_tmpfs / ".ledger_pending" / "run_torn.json").unlink()
        journal.append("event", {**payload, "payload": {"after": "space freed"}})
    finally:
        journal.close()
    records = read_journal(journal.path)
    assert refused > 0
    assert len(records) == written + 1
    assert records[-1]["payload"] == {"after": "space freed"}
