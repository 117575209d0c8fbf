"""A live order goes out only once its ORDER_SENT record will survive the process.

The ledger's PostgreSQL is stopped and the evidence disk is full, the way production loses both:
the record then lives only in memory, so the executor must not send the order (a crash would leave
a fill nothing names). With the journal writable, the same stopped server does not stop the order:
the record is journaled, and PostgreSQL holds it once the server is back. Checked from the
simulator's own order book and from PostgreSQL.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import psycopg
import pytest

from arbitrage.config import StrategyConfig
from arbitrage.execution import PairFill, Rejected
from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger
from arbitrage.live_execution import NOT_RECORDED, LiveExecutor
from arbitrage.market.ccxt_source import CcxtSource
from arbitrage.ops.live_arm import LiveKeys
from arbitrage.order_trail import OrderTrail
from gates.chaos.disk import fill_to_enospc
from harness.exchange_sim.client import SimProcess
from tests.integration.test_live_executor import TEST_KEYS, entry, sim, source
from tests.support.controlled_pg import ControlledPostgres

__all__ = ["sim", "source"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def trail_executor(sim: SimProcess, source: CcxtSource, ledger: Ledger, run_id: str) -> LiveExecutor:
    trail = OrderTrail(partial(ledger.record_durable_event, run_id))
    return LiveExecutor(
        StrategyConfig(), LiveKeys.from_env(TEST_KEYS), lambda: False, exchange_url=sim.url,
        listings=source.listings(), trail=trail,
    )  # fmt: skip


def journaled_ledger(dsn: str, root: Path, run_id: str) -> tuple[Ledger, LedgerJournal]:
    ledger = Ledger(dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    evidence = root / run_id
    evidence.mkdir()
    journal = LedgerJournal(evidence, root, run_id)
    ledger.attach_journal(journal)
    return ledger, journal


@pytest.mark.allow_log("ERROR", "ledger journal unwritable", count=1)
@pytest.mark.allow_log("WARNING", r"kept in memory \(journal unwritable\)", count=1)
def test_no_order_is_sent_while_its_record_can_be_neither_committed_nor_journaled(
    controlled_pg: ControlledPostgres, small_tmpfs: Path, sim: SimProcess, source: CcxtSource
) -> None:
    ledger, journal = journaled_ledger(controlled_pg.dsn, small_tmpfs, "run_nowhere")
    live = trail_executor(sim, source, ledger, "run_nowhere")
    try:
        fill_to_enospc(small_tmpfs / ".filler")
        controlled_pg.stop()
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
        controlled_pg.start()
        assert ledger.drain(20.0) == 0
    finally:
        live.close()
        ledger.close()
        journal.close()
    assert isinstance(result, Rejected) and result.kind == "refused", result
    assert NOT_RECORDED in result.reason
    assert sim.stats()["orders"] == [] and "POST /api/v3/order" not in sim.private_requests()
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT event_type, payload->>'fate' FROM event_log WHERE run_id = 'run_nowhere' ORDER BY id"
        ).fetchall()
    assert rows == [("ORDER_SENT", None), ("ORDER_DONE", "refused")], (
        "kept in memory, committed once it was back"
    )


@pytest.mark.allow_log("WARNING", r"not acknowledged")
def test_a_journaled_record_lets_the_order_go_while_postgres_is_down(
    controlled_pg: ControlledPostgres, tmp_path: Path, sim: SimProcess, source: CcxtSource
) -> None:
    ledger, journal = journaled_ledger(controlled_pg.dsn, tmp_path, "run_journaled")
    live = trail_executor(sim, source, ledger, "run_journaled")
    try:
        controlled_pg.stop()
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
        controlled_pg.start()
        assert ledger.drain(20.0) == 0
    finally:
        live.close()
        ledger.close()
        journal.close()
    assert isinstance(result, PairFill), result
    booked = sim.stats()["orders"]
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT event_type, payload->>'venue', payload->>'order_id' FROM event_log"
            " WHERE run_id = 'run_journaled' ORDER BY id"
        ).fetchall()
    assert rows == [
        ("ORDER_SENT", "binance", None), ("ORDER_DONE", "binance", booked[0]["id"]),
        ("ORDER_SENT", "upbit", None), ("ORDER_DONE", "upbit", booked[1]["id"]),
    ]  # fmt: skip
