"""The depth walk every paper fill relies on, and the book screen the engine applies each tick."""

from __future__ import annotations

import math

import pytest

from arbitrage.market.book import OrderBook, walk_depth
from arbitrage.market.source import MarketDataError, book_rejection


def _book(
    bids: tuple[tuple[float, float], ...] = ((100.0, 1.0), (99.0, 2.0), (98.0, 5.0)),
    asks: tuple[tuple[float, float], ...] = ((101.0, 1.5), (102.0, 2.0), (104.0, 4.0)),
    timestamp_ms: int = 10_000,
) -> OrderBook:
    return OrderBook("binance", "BTC", "USDT", bids, asks, timestamp_ms)


def test_walk_depth_buy_vwap_matches_hand_computation() -> None:
    fill = walk_depth(_book(), "buy", 3.0)
    assert fill is not None
    assert fill.levels_used == 2
    assert fill.notional == pytest.approx(1.5 * 101.0 + 1.5 * 102.0)
    assert fill.vwap == pytest.approx((151.5 + 153.0) / 3.0)


def test_walk_depth_sell_consumes_bids_best_first() -> None:
    fill = walk_depth(_book(), "sell", 4.0)
    assert fill is not None
    assert fill.levels_used == 3
    assert fill.vwap == pytest.approx((100.0 + 2 * 99.0 + 98.0) / 4.0)


def test_walk_depth_exact_top_level() -> None:
    fill = walk_depth(_book(), "sell", 1.0)
    assert fill is not None
    assert (fill.vwap, fill.levels_used) == (100.0, 1)


@pytest.mark.parametrize(("side", "qty"), [("buy", 7.5001), ("sell", 8.01), ("buy", 0.0), ("sell", -1.0)])
def test_walk_depth_returns_none_when_book_cannot_fill(side: str, qty: float) -> None:
    assert walk_depth(_book(), side, qty) is None  # type: ignore[arg-type]


def test_walk_depth_rejects_non_finite_qty() -> None:
    assert walk_depth(_book(), "buy", math.nan) is None
    assert walk_depth(_book(), "buy", math.inf) is None


def test_book_rejection_accepts_a_sound_fresh_book() -> None:
    assert book_rejection(_book(), now_ms=10_500, max_age_ms=1_000) is None


@pytest.mark.parametrize(
    ("book", "reason"),
    [
        (_book(bids=()), "empty"),
        (_book(asks=()), "empty"),
        (_book(bids=((100.0, 1.0), (math.nan, 1.0))), "non_finite"),
        (_book(asks=((101.0, math.inf),)), "non_finite"),
        (_book(asks=((0.0, 1.0),)), "non_finite"),
        (_book(bids=((-5.0, 1.0),)), "non_finite"),
        (_book(bids=((100.0, -0.1),)), "non_finite"),
        (_book(bids=((101.0, 1.0),)), "crossed"),
        (_book(bids=((102.0, 1.0),)), "crossed"),
        (_book(timestamp_ms=8_000), "stale"),
    ],
)
def test_book_rejection_reasons(book: OrderBook, reason: str) -> None:
    assert book_rejection(book, now_ms=10_500, max_age_ms=1_000) == reason


@pytest.mark.parametrize(
    "book",
    [
        _book(bids=((100.0, 0.0), (99.0, 2.0))),
        _book(asks=((101.0, -0.0),)),
        _book(bids=((1e308, 1.0), (1e308, 1.0)), asks=((1.7e308, 1.0),)),
        _book(asks=((101.0, 1e308), (102.0, 1e308))),
    ],
)
def test_book_rejection_accepts_what_the_bulk_check_cannot_clear(book: OrderBook) -> None:
    """A size of zero, or finite values whose sum overflows, are judged level by level, and pass."""
    assert book_rejection(book, now_ms=10_500, max_age_ms=1_000) is None


@pytest.mark.parametrize(
    "levels",
    [
        ((math.inf, 1.0), (-math.inf, 1.0)),
        ((100.0, math.inf), (99.0, -math.inf)),
        ((1e308, -1.0), (1e308, 1.0)),
    ],
)
def test_book_rejection_refuses_bad_values_a_sum_would_hide(levels: tuple[tuple[float, float], ...]) -> None:
    assert book_rejection(_book(bids=levels), now_ms=10_500, max_age_ms=1_000) == "non_finite"


def test_book_rejection_checks_in_documented_order() -> None:
    stale_crossed = _book(bids=((101.0, 1.0),), timestamp_ms=0)
    assert book_rejection(stale_crossed, now_ms=10_500, max_age_ms=1_000) == "crossed"
    stale_nan_crossed = _book(bids=((200.0, math.nan),), timestamp_ms=0)
    assert book_rejection(stale_nan_crossed, now_ms=10_500, max_age_ms=1_000) == "non_finite"
    assert book_rejection(_book(bids=(), timestamp_ms=0), now_ms=10_500, max_age_ms=1_000) == "empty"


def test_book_rejection_age_at_limit_is_fresh() -> None:
    assert book_rejection(_book(timestamp_ms=9_500), now_ms=10_500, max_age_ms=1_000) is None


def test_market_data_error_carries_kind() -> None:
    err = MarketDataError("RateLimitExceeded", "429 from upbit")
    assert err.kind == "RateLimitExceeded"
    assert "429 from upbit" in str(err)
