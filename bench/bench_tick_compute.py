"""Tick compute per book (strategy + paper fill, no I/O) against ccxt's own parse_order_book.

Both sides work on the same books from the seeded model, in one process: ccxt parses each
book from the venue's raw JSON shape (strings, as Binance sends them), and the engine prices
both premium directions with depth walks and paper-fills every intent. The goal is that the
engine's per-book cost stays at or below ccxt's per-book parse cost.

    python bench/bench_tick_compute.py [--ticks 400] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import ccxt

from arbitrage.config import StrategyConfig
from arbitrage.execution import PaperExecutor
from arbitrage.market.book import MarketSnapshot, OrderBook
from arbitrage.market.model import MarketModel
from arbitrage.market.universe import top_n
from arbitrage.strategy import EntryIntent, Strategy, entry_quote


def raw_depth(book: OrderBook) -> dict[str, object]:
    """The book as Binance's /api/v3/depth sends it: prices and sizes as strings."""
    return {
        "lastUpdateId": 1,
        "bids": [[repr(p), repr(q)] for p, q in book.bids],
        "asks": [[repr(p), repr(q)] for p, q in book.asks],
    }


def engine_tick(strategy: Strategy, executor: PaperExecutor, snapshot: MarketSnapshot) -> int:
    """Decide on every symbol and paper-fill an entry for every symbol, as if each qualified."""
    strategy.decide(snapshot, {})
    fills = 0
    for symbol in snapshot.symbols():
        qty = round(strategy.config.order_notional_usd / snapshot.binance[symbol].mid, 8)
        quote = entry_quote(snapshot, symbol, "upbit_rich", qty, strategy.fees)
        if quote is not None:
            executor.enter(EntryIntent(quote), snapshot)
            fills += 1
    return fills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    model = MarketModel(seed=7, symbols=top_n(10))
    snapshots = [model.step(now_ms=0) for _ in range(args.ticks)]
    books = [b for s in snapshots for b in (*s.upbit.values(), *s.binance.values())]
    raws = [(raw_depth(b), f"{b.symbol}/{b.quote}") for b in books]
    exchange = ccxt.binance()
    strategy = Strategy(StrategyConfig(entry_threshold_pct=-49.0), tick_interval_sec=0.5)
    executor = PaperExecutor(StrategyConfig(), seed=7)

    ours, theirs = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        for raw, symbol in raws:
            exchange.parse_order_book(raw, symbol, 0)
        theirs.append((time.perf_counter() - started) / len(raws) * 1e6)
        started = time.perf_counter()
        for snapshot in snapshots:
            engine_tick(strategy, executor, snapshot)
        ours.append((time.perf_counter() - started) / len(books) * 1e6)

    ours_us, theirs_us = statistics.median(ours), statistics.median(theirs)
    print(f"books: {len(books)} ({args.ticks} ticks x {len(snapshots[0].symbols())} symbols x 2 venues), "
          f"levels/side: {len(books[0].bids)}, repeats: {args.repeat}")  # fmt: skip
    print(f"ccxt parse_order_book      : {theirs_us:8.2f} us/book (median)")
    print(f"engine strategy+paper fill : {ours_us:8.2f} us/book (median)")
    print(f"ratio engine/ccxt          : {ours_us / theirs_us:8.3f}  (goal <= 1.0)")


if __name__ == "__main__":
    main()
