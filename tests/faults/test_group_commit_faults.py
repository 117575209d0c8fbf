"""The ledger's group-committing writer against a PostgreSQL the test stops, cuts and freezes while
legs wait in its queue: after recovery every leg and event is in PostgreSQL exactly once, nothing
is dropped for room, and a stop flushes what the queue holds.

Outcomes are read from PostgreSQL (and the journal file), never from the ledger's counters alone.
"""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arbitrage.closeout import RunFacts
from arbitrage.config import StrategyConfig
from arbitrage.evidence_failure import EvidenceFailures
from arbitrage.execution import PaperExecutor
from arbitrage.journal import LedgerJournal, read_journal
from arbitrage.ledger import APPLICATION_NAME, Ledger
from arbitrage.logs import WarningCounter
from arbitrage.market.model import MarketModel
from arbitrage.market.universe import top_n
from arbitrage.portfolio import Portfolio
from arbitrage.run_closeout import RunCloseout
from arbitrage.strategy import Strategy
from arbitrage.trader import Trader
from evidence.ledger_rule import LegCounts
from gates.chaos.checker import LedgerAudit
from tests.faults.test_ledger_faults import audit, wait_for_a_trade
from tests.integration.test_ledger_journal import leg
from tests.support.controlled_pg import ControlledPostgres
from tests.support.ledger_audit import EngineRun

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

QUEUE_WARNINGS = r"not acknowledged|ledger reconnected"


def rows(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def group_ledger(controlled_pg: ControlledPostgres, tmp_path: Path) -> Iterator[tuple[Ledger, LedgerJournal]]:
    ledger = Ledger(controlled_pg.dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    evidence = tmp_path / "run_gc"
    evidence.mkdir()
    journal = LedgerJournal(evidence, tmp_path, "run_gc")
    ledger.attach_journal(journal)
    ledger.start_group_commit(capacity=10_000)
    yield ledger, journal
    ledger.close()
    journal.close()


def record_round_trips(ledger: Ledger, first: int, count: int) -> None:
    """`count` trades, each an entry leg with TRADE_OPEN and an exit leg with TRADE_CLOSE."""
    for number in range(first, first + count):
        for kind, event in (("entry", "TRADE_OPEN"), ("exit", "TRADE_CLOSE")):
            row = leg("run_gc", number, kind)
            ledger.record_trade_leg(row, event, {"n": number}, row.correlation_id)


def assert_exactly_once(dsn: str, trades: int) -> None:
    legs = rows(dsn, "SELECT trade_id, leg, count(*) FROM trade_legs WHERE run_id = 'run_gc' GROUP BY 1, 2")
    events = rows(
        dsn,
        "SELECT event_type, count(*), count(DISTINCT correlation_id) FROM event_log WHERE run_id = 'run_gc'"
        " GROUP BY 1 ORDER BY 1",
    )
    assert len(legs) == 2 * trades
    assert {count for _, _, count in legs} == {1}
    assert events == [("TRADE_CLOSE", trades, trades), ("TRADE_OPEN", trades, trades)]


@pytest.mark.allow_log("WARNING", QUEUE_WARNINGS)
def test_a_stopped_server_while_the_queue_holds_legs_loses_and_doubles_none(
    controlled_pg: ControlledPostgres, group_ledger: tuple[Ledger, LedgerJournal]
) -> None:
    ledger, journal = group_ledger
    record_round_trips(ledger, 1, 20)
    assert ledger.drain(15.0) == 0
    controlled_pg.stop()
    record_round_trips(ledger, 21, 200)
    held_while_down = ledger.pending_count
    controlled_pg.start()
    left = ledger.drain(30.0)

    assert held_while_down == 4 * 200
    assert left == 0
    assert_exactly_once(controlled_pg.dsn, 220)
    assert ledger.db_inserts_ok == 2 * 220
    journaled = [r for r in read_journal(journal.path) if r["op"] == "leg"]
    assert len(journaled) == 2 * 220


@pytest.mark.allow_log("WARNING", QUEUE_WARNINGS)
def test_a_frozen_then_killed_backend_under_a_full_batch_adds_each_leg_once(
    controlled_pg: ControlledPostgres, group_ledger: tuple[Ledger, LedgerJournal]
) -> None:
    """The writer's backend freezes with a batch in flight (the deadline cuts it), then every
    backend is killed while the queue refills: whether or not a batch committed before its
    connection died, the replay adds nothing twice."""
    ledger, _ = group_ledger
    record_round_trips(ledger, 1, 5)
    assert ledger.drain(15.0) == 0
    frozen = controlled_pg.freeze_backends(APPLICATION_NAME, controlled_pg.database)
    assert frozen
    try:
        record_round_trips(ledger, 6, 300)
        queued_while_frozen = ledger.pending_count
    finally:
        controlled_pg.thaw()
    killed = controlled_pg.terminate_backends(APPLICATION_NAME, controlled_pg.database)
    record_round_trips(ledger, 306, 100)
    left = ledger.drain(30.0)

    assert queued_while_frozen > 0
    assert killed >= 1
    assert left == 0
    assert_exactly_once(controlled_pg.dsn, 405)


@pytest.mark.allow_log("WARNING", QUEUE_WARNINGS)
def test_a_full_queue_holds_entries_back_and_drops_nothing(
    controlled_pg: ControlledPostgres, tmp_path: Path
) -> None:
    """Back-pressure: with the server down the queue fills to its capacity; the trader then opens
    no new position (exits go on), and every leg it did record reaches PostgreSQL once it is back."""
    ledger = Ledger(controlled_pg.dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    (tmp_path / "run_bp").mkdir()
    journal = LedgerJournal(tmp_path / "run_bp", tmp_path, "run_bp")
    ledger.attach_journal(journal)
    ledger.start_group_commit(capacity=6)
    config = StrategyConfig(entry_threshold_pct=2.2, exit_threshold_pct=2.1)
    portfolio = Portfolio()
    trader = Trader("run_bp", Strategy(config, 0.5), PaperExecutor(config, 7), portfolio, ledger)
    model = MarketModel(seed=7, symbols=top_n(10))
    controlled_pg.stop()
    try:
        tick = 0
        while trader.entries_held == 0 and tick < 20_000:
            trader.on_snapshot(model.step(now_ms=tick * 500))
            tick += 1
        held_at = ledger.pending_count
        for later in range(tick, tick + 200):
            trader.on_snapshot(model.step(now_ms=later * 500))
        opened = portfolio.closed_trades + len(portfolio.positions)
        controlled_pg.start()
        left = ledger.drain(30.0)
    finally:
        ledger.close()
        journal.close()

    assert trader.entries_held > 0
    assert held_at >= 6
    assert left == 0
    legs = rows(controlled_pg.dsn, "SELECT leg, count(*) FROM trade_legs WHERE run_id = 'run_bp' GROUP BY 1")
    assert dict(legs).get("entry") == opened
    assert dict(legs).get("exit", 0) == portfolio.closed_trades


def test_a_sigterm_with_a_full_queue_flushes_within_the_budget(
    controlled_pg: ControlledPostgres, redis_url: str, tmp_path: Path
) -> None:
    """The server is down long enough for the queue to fill (a capacity of 2 records), comes back,
    and the engine is stopped at once: the stop sends what the queue holds, and the run's ledger
    is whole in PostgreSQL, with nothing left in the journal."""
    run = EngineRun.start(
        tmp_path, controlled_pg.dsn, redis_url, "--duration", "40s",
        env={"ARB_SERVICES__LEDGER_GROUP_COMMIT": "true", "ARB_SERVICES__LEDGER_QUEUE_RECORDS": "2"},
    )  # fmt: skip
    traded_at = wait_for_a_trade(run)
    controlled_pg.stop()
    run.wait_until(traded_at + 12.0)
    controlled_pg.start()
    run.process.send_signal(signal.SIGTERM)
    signalled = run.elapsed()
    code = run.finish(timeout=60)
    stop_seconds = run.elapsed() - signalled

    assert code == 1
    assert stop_seconds <= 10.0, f"SIGTERM to exit took {stop_seconds:.1f}s with a full ledger queue"
    result: LedgerAudit = audit(run, controlled_pg.dsn)
    assert result.kpi is not None
    assert result.kpi["ledger"]["journal_pending"] == 0
    assert result.kpi["entries_held_for_ledger"] > 0
    assert not (tmp_path / ".ledger_pending" / f"{run.run_id}.json").exists()


def test_the_last_records_are_sent_when_the_stop_spent_the_drain_budget(
    controlled_pg: ControlledPostgres, group_ledger: tuple[Ledger, LedgerJournal]
) -> None:
    """A slow venue's abandoned fetch can take the whole close-out drain budget before the run's
    last records (RUN_END and the `runs` row) are queued: they still reach PostgreSQL before the
    close-out settles the journal on what is pending."""
    ledger, _ = group_ledger
    register(ledger)
    facts = RunFacts(
        run_id="run_gc", expected_seconds=None, heartbeat_interval_seconds=2.0, started_epoch=0.0,
        ended_epoch=1.0, duration_seconds=1.0, beat_epochs=[], stop_reason="WATCHDOG_CRITICAL",
        portfolio=Portfolio(), opportunities_generated=0, db_inserts_ok=0, warnings=WarningCounter(),
        acked_legs=LegCounts(0, 0), journaled_legs=0,
    )  # fmt: skip
    closeout = RunCloseout("run_gc", io.StringIO(), EvidenceFailures(lambda: None), WarningCounter())
    spent = time.monotonic() - 5.0
    closeout.finalize_ledger(ledger, facts, spent, 1, "failed")
    pending_at_settle = ledger.pending_count

    assert pending_at_settle == 0
    final = rows(controlled_pg.dsn, "SELECT status, exit_code FROM runs WHERE run_id = 'run_gc'")
    assert final == [("failed", 1)]
    ends = rows(controlled_pg.dsn, "SELECT event_type FROM event_log WHERE event_type = 'RUN_END'")
    assert ends == [("RUN_END",)]


def test_a_record_queued_just_before_close_is_sent(
    controlled_pg: ControlledPostgres, group_ledger: tuple[Ledger, LedgerJournal]
) -> None:
    """A run refused after its registration queues its `runs` end and closes the ledger at once:
    the close sends it instead of leaving it to the next start's replay."""
    ledger, _ = group_ledger
    register(ledger)
    ledger.record_run_end("run_gc", "failed", "EVIDENCE_WRITE_FAILED", 1, 0, datetime.now(UTC))
    ledger.close()

    final = rows(controlled_pg.dsn, "SELECT status, stop_reason FROM runs WHERE run_id = 'run_gc'")
    assert final == [("failed", "EVIDENCE_WRITE_FAILED")]


def register(ledger: Ledger) -> None:
    ledger.record_run_start("run_gc", "smoke", "paper", datetime.now(UTC), 7, None, "cfg")
