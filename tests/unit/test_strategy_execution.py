"""Strategy decisions, paper fills and PnL on hand-built books with hand-computed numbers."""

from __future__ import annotations

import pytest

from arbitrage.config import StrategyConfig, VenueMinimums
from arbitrage.execution import LegFailure, PairFill, PaperExecutor, Rejected
from arbitrage.market.book import Level, MarketSnapshot, OrderBook
from arbitrage.portfolio import Portfolio
from arbitrage.strategy import EntryIntent, ExitIntent, OpenPosition, Strategy, entry_quote, exit_quote

FEE_U, FEE_B = 0.0005, 0.001


def book(venue: str, quote: str, bids: list[Level], asks: list[Level], symbol: str = "BTC") -> OrderBook:
    return OrderBook(venue, symbol, quote, tuple(bids), tuple(asks), 0)


def snapshot(
    upbit_bid: float, upbit_ask: float, binance_bid: float, binance_ask: float, tick: int = 0
) -> MarketSnapshot:
    fx = book("upbit", "KRW", [(1379.5, 1e6)], [(1380.5, 1e6)], symbol="USDT")
    upbit = book("upbit", "KRW", [(upbit_bid, 0.001), (upbit_bid - 100_000, 1.0)],
                 [(upbit_ask, 0.001), (upbit_ask + 100_000, 1.0)])  # fmt: skip
    binance = book("binance", "USDT", [(binance_bid, 1.0)], [(binance_ask, 1.0)])
    return MarketSnapshot(tick, fx, {"BTC": upbit}, {"BTC": binance})


def test_upbit_rich_entry_walks_two_levels_and_nets_fees() -> None:
    snap = snapshot(134_000_000, 134_100_000, 94_990, 95_000)
    quote = entry_quote(snap, "BTC", "upbit_rich", 0.002, (FEE_U, FEE_B))
    assert quote is not None
    upbit_vwap = (0.001 * 134_000_000 + 0.001 * 133_900_000) / 0.002
    assert quote.upbit_vwap_krw == pytest.approx(upbit_vwap)
    upbit_usd = upbit_vwap / 1380.0
    assert quote.gross_pct == pytest.approx((upbit_usd / 95_000 - 1) * 100)
    assert quote.net_pct == pytest.approx((upbit_usd * (1 - FEE_U) / (95_000 * (1 + FEE_B)) - 1) * 100)


def test_binance_rich_direction_is_priced_from_the_other_sides() -> None:
    snap = snapshot(125_000_000, 125_100_000, 95_000, 95_010)
    quote = entry_quote(snap, "BTC", "binance_rich", 0.001, (FEE_U, FEE_B))
    assert quote is not None
    upbit_usd = 125_100_000 / 1380.0
    assert quote.net_pct == pytest.approx((95_000 * (1 - FEE_B) / (upbit_usd * (1 + FEE_U)) - 1) * 100)


def test_entry_quote_is_none_when_depth_cannot_fill() -> None:
    snap = snapshot(134_000_000, 134_100_000, 94_990, 95_000)
    assert entry_quote(snap, "BTC", "upbit_rich", 5.0, (FEE_U, FEE_B)) is None


def make_strategy(**overrides: object) -> Strategy:
    return Strategy(StrategyConfig.model_validate(overrides), tick_interval_sec=0.5)


def test_entry_above_threshold_counts_an_opportunity() -> None:
    strategy = make_strategy(entry_threshold_pct=3.0, order_notional_usd=95.0)
    rich = snapshot(136_000_000, 136_100_000, 94_990, 95_000)  # ~3.7 % gross
    exits, entries = strategy.decide(rich, {})
    assert exits == []
    assert [e.quote.direction for e in entries] == ["upbit_rich"]
    assert strategy.opportunities_generated == 1


def test_no_entry_below_threshold_and_none_while_holding() -> None:
    strategy = make_strategy(entry_threshold_pct=3.0, exit_threshold_pct=-10.0, order_notional_usd=95.0)
    flat = snapshot(131_100_000, 131_200_000, 94_990, 95_000)  # ~0 % premium
    assert strategy.decide(flat, {}) == ([], [])
    rich = snapshot(136_000_000, 136_100_000, 94_990, 95_000)
    held = {"BTC": OpenPosition("BTC", "upbit_rich", 0.001, entry_tick=0)}
    assert strategy.decide(rich, held) == ([], [])


def test_exit_on_reversion_and_on_max_hold() -> None:
    strategy = make_strategy(exit_threshold_pct=2.0, max_hold_sec=10.0)
    held = {"BTC": OpenPosition("BTC", "upbit_rich", 0.001, entry_tick=0)}
    reverted = snapshot(132_000_000, 132_100_000, 94_990, 95_000, tick=3)
    exits, _ = strategy.decide(reverted, held)
    assert [(e.reason, e.position.symbol) for e in exits] == [("threshold", "BTC")]
    still_rich = snapshot(136_000_000, 136_100_000, 94_990, 95_000, tick=19)
    assert strategy.decide(still_rich, held)[0] == []
    timed_out = snapshot(136_000_000, 136_100_000, 94_990, 95_000, tick=20)  # 20 ticks x 0.5 s = 10 s
    assert [e.reason for e in strategy.decide(timed_out, held)[0]] == ["max_hold"]


def entry_intent(snap: MarketSnapshot, qty: float) -> EntryIntent:
    quote = entry_quote(snap, "BTC", "upbit_rich", qty, (FEE_U, FEE_B))
    assert quote is not None
    return EntryIntent(quote)


@pytest.mark.parametrize(
    ("minimums", "expected"),
    [
        # 0.00003 BTC: 4,080 KRW on Upbit, 2.85 USDT on Binance
        (VenueMinimums(upbit_krw=5000, binance_usdt=0), "upbit notional 4080 KRW < minimum 5000 KRW"),
        (VenueMinimums(upbit_krw=0, binance_usdt=5), "binance notional 2.85 USDT < minimum 5.00 USDT"),
    ],
)
def test_venue_minimum_rejects_before_any_leg(minimums: VenueMinimums, expected: str) -> None:
    executor = PaperExecutor(StrategyConfig(min_order=minimums), seed=1)
    snap = snapshot(136_000_000, 136_100_000, 94_990, 95_000)
    result = executor.enter(entry_intent(snap, 0.00003), snap)
    assert isinstance(result, Rejected)
    assert result.reason == expected


def test_refused_second_leg_unwinds_the_first() -> None:
    executor = PaperExecutor(StrategyConfig(paper_leg_fail_rate=1.0), seed=1)
    snap = snapshot(136_000_000, 136_100_000, 94_990, 95_000)
    result = executor.enter(entry_intent(snap, 0.001), snap)
    assert isinstance(result, LegFailure)
    assert (result.filled.venue, result.filled.side) == ("binance", "buy")
    assert result.unwind is not None
    assert (result.unwind.side, result.unwind.qty, result.unwind.vwap) == ("sell", 0.001, 94_990)


def test_round_trip_pnl_in_both_currencies() -> None:
    executor = PaperExecutor(StrategyConfig(), seed=1)
    open_snap = snapshot(136_000_000, 136_100_000, 94_990, 95_000)
    entry = executor.enter(entry_intent(open_snap, 0.001), open_snap)
    assert isinstance(entry, PairFill)
    portfolio = Portfolio()
    position = portfolio.open("T000001", "run:T000001", entry, tick=0)
    close_snap = snapshot(132_000_000, 132_100_000, 95_490, 95_500, tick=4)
    quote = exit_quote(close_snap, position.view(), (FEE_U, FEE_B))
    assert quote is not None
    closed = portfolio.close(
        position, executor.exit(ExitIntent(position.view(), quote, "threshold")), "threshold"
    )
    krw = 0.001 * 136_000_000 * (1 - FEE_U) - 0.001 * 132_100_000 * (1 + FEE_U)
    usdt = -0.001 * 95_000 * (1 + FEE_B) + 0.001 * 95_490 * (1 - FEE_B)
    assert closed.pnl_usd == pytest.approx(krw / 1380.0 + usdt)
    assert closed.pnl_krw == pytest.approx((krw / 1380.0 + usdt) * 1380.0)
    assert (portfolio.closed_trades, portfolio.wins, portfolio.losses) == (1, 1, 0)
    assert portfolio.positions == {}
