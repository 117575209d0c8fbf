"""A live exit whose Binance leg filled and whose Upbit leg was refused, retried.

The position stays open after such an exit (EXIT_FAILED), but its Binance side is already closed.
The retry must place only the Upbit leg: sending the Binance leg again would leave a Binance
position of the opposite sign that the engine believes flat. Checked against the orders the
simulator booked, the trade_legs and event_log rows in PostgreSQL, and what `reconcile`'s balance
check counts from them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from arbitrage.config import StrategyConfig
from arbitrage.ledger import Ledger, connect
from arbitrage.live_execution import LiveExecutor
from arbitrage.market.ccxt_source import CcxtSource
from arbitrage.market.last_books import LastUsableBooks
from arbitrage.ops.live_arm import LiveKeys
from arbitrage.portfolio import Portfolio
from arbitrage.reconcile.balances import implied_changes
from arbitrage.reconcile.ledger_side import load_run
from arbitrage.run_evidence import new_run_id
from arbitrage.services import ServiceEndpoints
from arbitrage.strategy import Strategy
from arbitrage.trader import Trader
from harness.exchange_sim.client import SimProcess
from tests.integration.test_live_executor import TEST_KEYS, sim
from tests.support.databases import fresh_database

__all__ = ["sim"]

pytestmark = pytest.mark.integration

ALWAYS_ENTER = StrategyConfig(entry_threshold_pct=-49.0, exit_threshold_pct=-49.9, order_notional_usd=150.0)
"""Enter BTC on the first snapshot, and never exit on the premium: only the flatten closes."""


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "exit_retry")


def binance_btc(orders: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(o["side"], o["qty"]) for o in orders if o["venue"] == "binance"]


@pytest.mark.allow_log(
    "ERROR", "^(exit of BTC failed, position kept open|position BTC .* left open at stop)", count=4
)
def test_a_retried_exit_places_only_the_leg_that_did_not_fill(
    sim: SimProcess, ledger: Ledger, dsn: str
) -> None:
    source = CcxtSource(["BTC"], sim.url)
    live = LiveExecutor(
        ALWAYS_ENTER, LiveKeys.from_env(TEST_KEYS), lambda: False, exchange_url=sim.url,
        listings=source.listings(),
    )  # fmt: skip
    run_id = new_run_id("smoke")
    ledger.record_run_start(run_id, "smoke", "live", datetime.now(UTC), 0, None, "0" * 64)
    trader = Trader(run_id, Strategy(ALWAYS_ENTER, 0.5), live, Portfolio(), ledger)
    books = LastUsableBooks(10_000)
    try:
        snapshot = source.snapshot()
        trader.on_snapshot(snapshot)
        assert list(trader.portfolio.positions) == ["BTC"]
        sim.configure({"reject_orders": ["upbit"]})
        for _ in range(2):
            books.remember(source.snapshot())
            assert trader.flatten(books, int(time.time() * 1000)) == 0
        sim.configure({"reject_orders": []})
        books.remember(source.snapshot())
        assert trader.flatten(books, int(time.time() * 1000)) == 1
    finally:
        live.close()
        source.close()
    ledger.drain(10.0)
    orders = sim.stats()["orders"]
    [(entry_side, entry_qty), *exits] = binance_btc(orders)
    assert exits == [("sell" if entry_side == "buy" else "buy", entry_qty)], "one Binance exit, not two"
    assert [o["venue"] for o in orders].count("upbit") == 2, "the Upbit entry and the retried Upbit exit"
    with connect(dsn, 5.0, 5000) as conn:
        rows = conn.execute(
            "SELECT leg, binance_side, qty FROM trade_legs WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
        events = conn.execute(
            "SELECT event_type, payload FROM event_log WHERE run_id = %s"
            " AND event_type IN ('EXIT_FAILED', 'POSITION_LEFT_OPEN', 'TRADE_CLOSE') ORDER BY id",
            (run_id,),
        ).fetchall()
    assert [(leg, side) for leg, side, _ in rows] == [("entry", entry_side), ("exit", exits[0][0])]
    [exit_id] = [o["id"] for o in orders if o["venue"] == "binance"][1:]
    assert [kind for kind, _ in events] == [
        "EXIT_FAILED", "POSITION_LEFT_OPEN", "EXIT_FAILED", "POSITION_LEFT_OPEN", "TRADE_CLOSE",
    ]  # fmt: skip
    first, _, second, left_open, close = (payload for _, payload in events)
    assert (first["filled"]["order_id"], first["filled_earlier"]) == (exit_id, None)
    assert (second["filled"], second["filled_earlier"]["order_id"]) == (None, exit_id)
    assert left_open["reason"] == f"exit failed; its binance leg is closed (order {exit_id})"
    assert close["order_ids"]["binance"] == exit_id
    run = load_run(dsn, run_id)
    implied = implied_changes(run.legs, run.side_orders).of("binance", "BTC")
    assert implied.fills == 2, "reconcile counts the Binance exit once, as the venue booked it"
