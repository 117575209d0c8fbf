"""The stop-time flatten on real PostgreSQL: it closes on the last usable books or reports the
position open (log, kpi list, event_log), and never raises, whatever the books."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest

from arbitrage.config import StrategyConfig
from arbitrage.execution import PaperExecutor
from arbitrage.ledger import Ledger
from arbitrage.market.book import Level, MarketSnapshot, OrderBook
from arbitrage.market.last_books import LastUsableBooks
from arbitrage.portfolio import Portfolio
from arbitrage.run_evidence import new_run_id
from arbitrage.services import ServiceEndpoints
from arbitrage.strategy import Strategy
from arbitrage.trader import Trader
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration

MAX_AGE_MS = 3000


def _snapshot(ts: int, depth: float = 1.0, tick: int = 1) -> MarketSnapshot:
    def book(venue: str, quote: str, symbol: str, bids: list[Level], asks: list[Level]) -> OrderBook:
        return OrderBook(venue, symbol, quote, tuple(bids), tuple(asks), ts)

    fx = book("upbit", "KRW", "USDT", [(1379.5, 1e6)], [(1380.5, 1e6)])
    upbit = book("upbit", "KRW", "BTC", [(136_000_000, depth)], [(136_100_000, depth)])
    binance = book("binance", "USDT", "BTC", [(94_990, depth)], [(95_000, depth)])
    return MarketSnapshot(tick, fx, {"BTC": upbit}, {"BTC": binance})


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "flatten")


def _trader(ledger: Ledger) -> Trader:
    run_id = new_run_id("smoke")
    ledger.record_run_start(run_id, "smoke", "paper", datetime.now(UTC), 0, None, "0" * 64)
    config = StrategyConfig(entry_threshold_pct=3.0, exit_threshold_pct=-10.0, order_notional_usd=95.0)
    return Trader(run_id, Strategy(config, 0.5), PaperExecutor(config, seed=1), Portfolio(), ledger)


@pytest.mark.allow_log("ERROR", "^position BTC .* left open at stop", count=1)
@pytest.mark.parametrize(
    ("remembered", "stop_after_ms", "reason"),
    [
        ("full", 100, None),
        ("full", MAX_AGE_MS + 500, "older than run.book_max_age_sec 3s"),
        ("thin", 100, "book too thin to exit"),
        ("none", 100, "no usable book was ever seen"),
    ],
)
def test_flatten_closes_or_reports_and_never_raises(
    ledger: Ledger, dsn: str, remembered: str, stop_after_ms: int, reason: str | None
) -> None:
    trader = _trader(ledger)
    now_ms = int(time.time() * 1000)
    trader.on_snapshot(_snapshot(now_ms))
    assert list(trader.portfolio.positions) == ["BTC"]
    books = LastUsableBooks(MAX_AGE_MS)
    if remembered != "none":
        books.remember(_snapshot(now_ms, depth=1.0 if remembered == "full" else 1e-6, tick=2))

    closed = trader.flatten(books, now_ms + stop_after_ms)

    with psycopg.connect(dsn, autocommit=True) as conn:
        legs = conn.execute("SELECT leg, reason, tick FROM trade_legs WHERE run_id = %s ORDER BY id",
                            (trader.run_id,)).fetchall()  # fmt: skip
        events = conn.execute(
            "SELECT payload FROM event_log WHERE run_id = %s AND event_type = 'POSITION_LEFT_OPEN'",
            (trader.run_id,),
        ).fetchall()
    if reason is None:
        assert closed == 1 and trader.left_open == [] and events == []
        assert legs[1:] == [("exit", "flatten", 2)]
        assert trader.final_kpi()["open_positions"] == []
        return
    assert closed == 0 and legs[1:] == []
    [entry] = trader.left_open
    assert (entry["symbol"], entry["trade_id"]) == ("BTC", "T000001") and reason in entry["reason"], entry
    assert [payload for (payload,) in events] == [entry]
    assert trader.final_kpi()["open_positions"] == [entry]
