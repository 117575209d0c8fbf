"""The simulator's slippage: market orders fill worse than the served book by the set basis points.

A live run's hedge residual comes from an Upbit buy by KRW amount that gets less than the quote's
quantity, which is what a book that moved between quote and fill does. `--slippage-bps` makes that
happen on every buy instead of by chance, so a test can count on a residual.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbitrage.market.book import OrderBook
from harness.exchange_sim.exchange import ExchangeSim
from harness.exchange_sim.orders import binance_order, slipped, upbit_order

START = 1_800_000_000.0
BPS = 25.0
QTY = Decimal("0.002")


def sim(bps: float) -> ExchangeSim:
    return ExchangeSim(11, ("BTC",), clock=lambda: START, slippage_bps=bps)


def served(exchange: ExchangeSim, venue: str) -> OrderBook:
    book = exchange.live_book(venue, "BTC")
    assert book is not None
    return book


def test_a_slipped_book_moves_every_price_against_the_taker_and_keeps_the_sizes() -> None:
    book = OrderBook("upbit", "BTC", "KRW", ((99.0, 1.0), (98.0, 2.0)), ((100.0, 1.0), (101.0, 2.0)), 0)
    moved = slipped(book, 50.0)
    assert [p for p, _ in moved.asks] == pytest.approx([100.5, 101.505])
    assert [p for p, _ in moved.bids] == pytest.approx([98.505, 97.51])
    assert [q for _, q in moved.asks + moved.bids] == [1.0, 2.0, 1.0, 2.0]
    assert (moved.venue, moved.symbol, moved.quote, moved.timestamp_ms) == ("upbit", "BTC", "KRW", 0)


@pytest.mark.parametrize("bps", [0.0, BPS])
def test_an_upbit_buy_by_krw_amount_gets_the_quote_quantity_less_the_slippage(bps: float) -> None:
    exchange = sim(bps)
    ask = served(exchange, "upbit").best_ask
    spend = format(float(QTY) * ask, ".8f")
    params = {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": spend}
    order = upbit_order(params, exchange.fill_book, False, 0).order
    assert order is not None
    assert float(order.qty) == pytest.approx(float(QTY) / (1.0 + bps / 10_000.0), abs=1e-8)
    assert float(order.cost) <= float(spend)
    if bps:
        assert QTY - order.qty > QTY * Decimal("0.002"), "a residual of about 25 bps of the quantity"


def test_a_binance_buy_and_an_upbit_sell_fill_their_quantity_at_the_slipped_price() -> None:
    exchange = sim(BPS)
    ask, bid = served(exchange, "binance").best_ask, served(exchange, "upbit").best_bid
    buy = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": str(QTY)}
    bought = binance_order(buy, exchange.fill_book, False, lambda: "1", 0).order
    sell = {"market": "KRW-BTC", "side": "ask", "ord_type": "market", "volume": str(QTY)}
    sold = upbit_order(sell, exchange.fill_book, False, 0).order
    assert bought is not None and sold is not None
    assert bought.qty == sold.qty == QTY
    assert float(bought.cost / bought.qty) == pytest.approx(ask * (1 + BPS / 10_000.0), rel=1e-12)
    assert float(sold.cost / sold.qty) == pytest.approx(bid * (1 - BPS / 10_000.0), rel=1e-12)
