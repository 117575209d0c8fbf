"""The seeded market model: determinism, book sanity, and premium dynamics the engine can trade."""

from __future__ import annotations

import gc
import itertools
import math
import statistics

import psutil
import pytest

from arbitrage.market.book import MarketSnapshot, OrderBook, walk_depth
from arbitrage.market.model import MarketModel, upbit_price_ladders
from arbitrage.market.source import book_rejection
from arbitrage.market.synthetic import SyntheticSource
from arbitrage.market.universe import (
    UNIVERSE,
    UPBIT_USDT_KRW_TICK,
    top_n,
    upbit_krw_tick,
)

TOP10 = top_n(10)
UPBIT_FEE = 0.0005
BINANCE_FEE = 0.0010
ORDER_USD = 200.0


def _on_grid(price: float, tick: float) -> bool:
    units = price / tick
    return abs(units - round(units)) < 1e-6


def _prices(snap: MarketSnapshot) -> list[tuple[float, ...]]:
    books = [snap.fx, *snap.upbit.values(), *snap.binance.values()]
    return [tuple(p for p, _ in (*b.bids, *b.asks)) + tuple(s for _, s in (*b.bids, *b.asks)) for b in books]


def _check_sorted_uncrossed(book: OrderBook, min_levels: int = 15) -> None:
    assert len(book.bids) >= min_levels and len(book.asks) >= min_levels
    assert book_rejection(book, now_ms=book.timestamp_ms, max_age_ms=0) is None
    bid_prices = [p for p, _ in book.bids]
    ask_prices = [p for p, _ in book.asks]
    assert all(a > b for a, b in itertools.pairwise(bid_prices))
    assert all(a < b for a, b in itertools.pairwise(ask_prices))
    assert all(math.isfinite(s) and s > 0.0 for _, s in (*book.bids, *book.asks))


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (130_000_000.0, 1000.0),
        (1_500_000.0, 1000.0),
        (780_000.0, 500.0),
        (190_000.0, 100.0),
        (60_000.0, 50.0),
        (19_000.0, 10.0),
        (7_000.0, 5.0),
        (2_900.0, 1.0),
        (210.0, 1.0),
        (45.0, 0.01),
        (3.0, 0.001),
        (0.5, 0.0001),
        (0.012, 0.00001),
        (0.0000123, 0.00000001),
    ],
)
def test_upbit_krw_tick_table(price: float, tick: float) -> None:
    assert upbit_krw_tick(price) == tick


def test_top_n_ranks_by_upbit_volume() -> None:
    assert top_n(1) == ["XRP"]
    assert len(top_n(len(UNIVERSE))) == len(UNIVERSE)
    volumes = [UNIVERSE[s].upbit_krw_volume for s in TOP10]
    assert volumes == sorted(volumes, reverse=True)
    with pytest.raises(ValueError):
        top_n(0)
    with pytest.raises(ValueError):
        top_n(len(UNIVERSE) + 1)


def test_same_seed_same_books_different_seed_differs() -> None:
    a, b, c = MarketModel(7, TOP10), MarketModel(7, TOP10), MarketModel(8, TOP10)
    differs = False
    for i in range(500):
        sa, sb, sc = a.step(now_ms=i), b.step(now_ms=10**12 + 3 * i), c.step(now_ms=i)
        assert _prices(sa) == _prices(sb)
        differs = differs or _prices(sa) != _prices(sc)
    assert differs


def test_books_at_current_does_not_advance() -> None:
    model = MarketModel(3, TOP10)
    stepped = model.step(now_ms=1_000)
    again = model.books_at_current(now_ms=5_000)
    assert model.tick == again.tick == stepped.tick == 1
    assert _prices(again) == _prices(stepped)
    assert again.fx.timestamp_ms == again.upbit["BTC"].timestamp_ms == 5_000


def test_books_are_sane_and_on_venue_grids() -> None:
    model = MarketModel(11, top_n(len(UNIVERSE)), levels=20)
    for _ in range(300):
        snap = model.step(now_ms=42)
        assert snap.symbols() == sorted(UNIVERSE)
        _check_sorted_uncrossed(snap.fx)
        assert (snap.fx.venue, snap.fx.symbol, snap.fx.quote) == ("upbit", "USDT", "KRW")
        assert all(_on_grid(p, UPBIT_USDT_KRW_TICK) for p, _ in (*snap.fx.bids, *snap.fx.asks))
        for sym in snap.symbols():
            coin = UNIVERSE[sym]
            up, bn = snap.upbit[sym], snap.binance[sym]
            _check_sorted_uncrossed(up)
            _check_sorted_uncrossed(bn)
            assert (up.venue, up.quote, bn.venue, bn.quote) == ("upbit", "KRW", "binance", "USDT")
            assert all(_on_grid(p, upbit_krw_tick(p)) for p, _ in (*up.bids, *up.asks))
            assert all(_on_grid(p, coin.binance_tick) for p, _ in (*bn.bids, *bn.asks))
            assert all(_on_grid(s, coin.binance_step) for _, s in (*bn.bids, *bn.asks))
            assert _on_grid(bn.best_ask - bn.best_bid, coin.binance_tick)
            assert round((bn.best_ask - bn.best_bid) / coin.binance_tick) == 1
            spread_ticks = (up.best_ask - up.best_bid) / upbit_krw_tick(up.mid)
            assert 0.5 < spread_ticks <= max(1, coin.upbit_spread_ticks[1]) + 1e-6
            top_usd = bn.best_bid * bn.bids[0][1]
            assert 500.0 < top_usd < 5_000.0
            assert bn.bids[-1][0] * bn.bids[-1][1] > top_usd


def test_minimum_levels_enforced() -> None:
    assert len(MarketModel(0, ["BTC"], levels=15).step(now_ms=0).upbit["BTC"].bids) == 15
    with pytest.raises(ValueError):
        MarketModel(0, ["BTC"], levels=14)
    with pytest.raises(ValueError):
        MarketModel(0, ["NOPE"])


@pytest.mark.parametrize("target", [999_700.0, 1_000_300.0, 100_020.0, 99_990.0, 1_000.4, 100.02, 99.99])
def test_upbit_ladders_cross_price_bands_on_grid(target: float) -> None:
    bids, asks = upbit_price_ladders(target, 2, 20)
    assert bids[0] < asks[0]
    assert all(a > b for a, b in itertools.pairwise(bids))
    assert all(a < b for a, b in itertools.pairwise(asks))
    assert all(_on_grid(p, upbit_krw_tick(p)) for p in (*bids, *asks))
    assert abs((bids[0] + asks[0]) / 2.0 - target) <= upbit_krw_tick(target) * 1.5


def test_fx_mid_stays_in_band() -> None:
    model = MarketModel(5, TOP10)
    mids = [model.step(now_ms=0).krw_per_usdt for _ in range(2000)]
    assert min(mids) >= 1300.0 and max(mids) <= 1460.0


def test_premium_mean_and_book_premium_track_model() -> None:
    model = MarketModel(2, TOP10)
    premia: list[float] = []
    for _ in range(4000):
        snap = model.step(now_ms=0)
        for sym in TOP10:
            book_premium = 100.0 * (snap.upbit[sym].mid / (snap.krw_per_usdt * snap.binance[sym].mid) - 1.0)
            premia.append(book_premium)
            tolerance = 100.0 * upbit_krw_tick(snap.upbit[sym].mid) / snap.upbit[sym].mid + 1e-3
            assert abs(book_premium - model.premium_pct(sym)) <= tolerance
    assert 2.0 <= statistics.fmean(premia) <= 3.0
    assert 0.4 <= statistics.pstdev(premia) <= 0.9


def _executable(snap: MarketSnapshot, sym: str) -> tuple[float, float]:
    """Fee-net entry (sell Upbit bid, buy Binance ask) and exit (reverse) premia for ORDER_USD, in %."""
    up, bn = snap.upbit[sym], snap.binance[sym]
    step = UNIVERSE[sym].binance_step
    qty = round(ORDER_USD / bn.best_ask / step) * step
    sell_up, buy_bn = walk_depth(up, "sell", qty), walk_depth(bn, "buy", qty)
    buy_up, sell_bn = walk_depth(up, "buy", qty), walk_depth(bn, "sell", qty)
    assert sell_up and buy_bn and buy_up and sell_bn
    fx = snap.krw_per_usdt
    entry = (sell_up.vwap * (1 - UPBIT_FEE) / fx) / (buy_bn.vwap * (1 + BINANCE_FEE)) - 1.0
    exit_ = (buy_up.vwap * (1 + UPBIT_FEE) / fx) / (sell_bn.vwap * (1 - BINANCE_FEE)) - 1.0
    return 100.0 * entry, 100.0 * exit_


@pytest.mark.parametrize("seed", range(10))
def test_smoke_run_length_sees_entries_and_exits(seed: int) -> None:
    model = MarketModel(seed, TOP10, dt_sec=0.5)
    open_since: dict[str, int] = {}
    entries = closes = 0
    for tick in range(180):
        snap = model.step(now_ms=tick * 500)
        for sym in TOP10:
            entry, exit_ = _executable(snap, sym)
            if sym in open_since and exit_ <= 2.0:
                del open_since[sym]
                closes += 1
            elif sym not in open_since and entry >= 3.0:
                open_since[sym] = tick
                entries += 1
    assert entries >= 1
    assert closes >= 1


def test_synthetic_source_wraps_the_model() -> None:
    source = SyntheticSource(seed=4, symbols=["BTC", "ETH"], dt_sec=0.5)
    assert source.name == "synthetic"
    first = source.snapshot()
    reference = MarketModel(4, ["BTC", "ETH"], dt_sec=0.5).step(now_ms=0)
    assert first.tick == 1 and first.symbols() == ["BTC", "ETH"]
    assert _prices(first) == _prices(reference)
    assert abs(first.fx.timestamp_ms - reference.fx.timestamp_ms) > 10**9
    source.close()


def test_the_models_memory_stays_flat_over_a_long_run() -> None:
    """4,000 steps are 33 minutes of 0.5 s ticks; past a warm-up, the process must not grow with
    them (a cache of 4,096 ladders grew it by about 8 MB here, which every soak reads as a leak)."""
    model = MarketModel(11, TOP10, levels=20)
    process = psutil.Process()
    for step in range(4_000):
        model.step(now_ms=1_800_000_000_000 + step * 500)
        if step == 300:
            gc.collect()
            warm = process.memory_info().rss
    gc.collect()
    growth = process.memory_info().rss - warm
    assert growth < 3 * 2**20, f"the process grew {growth / 2**20:.1f} MB over 3,700 steps"
