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
from arbitrage.execution import LegFailure, PairFill, Rejected
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


def entry_while_postgres_is_down(
    pg: ControlledPostgres, root: Path, sim: SimProcess, source: CcxtSource, run_id: str,
    fill_disk: bool = False,
) -> PairFill | LegFailure | Rejected:  # fmt: skip
    """One entry by an executor whose order trail is the run's journaled ledger, sent while
    PostgreSQL is stopped (and the journal's disk full, with `fill_disk`); the server is started
    again and the ledger drained before it returns."""
    ledger = Ledger(pg.dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    (root / run_id).mkdir()
    journal = LedgerJournal(root / run_id, root, run_id)
    ledger.attach_journal(journal)
    trail = OrderTrail(partial(ledger.record_durable_event, run_id))
    live = LiveExecutor(
        StrategyConfig(), LiveKeys.from_env(TEST_KEYS), lambda: False, exchange_url=sim.url,
        listings=source.listings(), trail=trail,
    )  # fmt: skip
    try:
        if fill_disk:
            fill_to_enospc(root / ".filler")
        pg.stop()
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
        pg.start()
        assert ledger.drain(20.0) == 0
        return result
    finally:
        live.close()
        ledger.close()
        journal.close()


@pytest.mark.allow_log("ERROR", "ledger journal unwritable", count=1)
@pytest.mark.allow_log("WARNING", r"kept in memory \(journal unwritable\)", count=1)
def test_no_order_is_sent_while_its_record_can_be_neither_committed_nor_journaled(
    controlled_pg: ControlledPostgres, small_tmpfs: Path, sim: SimProcess, source: CcxtSource
) -> None:
    result = entry_while_postgres_is_down(controlled_pg, small_tmpfs, sim, source, "run_nowhere", True)
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
    result = entry_while_postgres_is_down(controlled_pg, tmp_path, sim, source, "run_journaled")
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
