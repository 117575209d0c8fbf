"""The engine's loop time per tick against ccxt's own `parse_order_book` for the books a tick reads,
at top5, top10 and top20, for this tree and a base revision, side by side in one run.

The engine side is a real `arbitrage run --ticks N` on the synthetic market (fetch, screen,
strategy, paper fills and the ledger, as a run does them), against one embedded PostgreSQL and
Redis started for the bench; its figure is the run's own p50 `tick_duration_ms` from kpi.json (the
whole tick, the model's snapshot included), or `loop_latency_ms` from a base tree that predates it.
The floor is ccxt parsing the same books (the run's seed and universe, replayed through the
model) from the raw shape Binance sends, strings included: KRW-USDT plus one book per venue and
symbol, per tick.

    python bench/bench_tick_floor.py [--ticks 3000] [--rounds 3] [--base-rev main | --base-path DIR]

Goal: this tree's loop/floor ratio at most 1.0 at every universe.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ccxt
from side_by_side import HERE, add_base_options, base_tree, describe, running_servers, tree_env

from arbitrage.market.book import OrderBook
from arbitrage.market.model import MarketModel
from arbitrage.market.universe import top_n

UNIVERSES = (5, 10, 20)
SEED = 7
TICK_INTERVAL_SEC = 0.5
"""The run's defaults (run.seed, run.tick_interval_sec), which the replayed model must match."""


def raw_depth(book: OrderBook) -> dict[str, object]:
    """The book as Binance's /api/v3/depth sends it: prices and sizes as strings."""
    return {
        "lastUpdateId": 1,
        "bids": [[repr(p), repr(q)] for p, q in book.bids],
        "asks": [[repr(p), repr(q)] for p, q in book.asks],
    }


def floor_us_per_tick(universe: int, ticks: int, repeat: int) -> float:
    """ccxt's parse time for one tick's books, median over `repeat` passes over `ticks` ticks."""
    model = MarketModel(SEED, top_n(universe), dt_sec=TICK_INTERVAL_SEC)
    raws = []
    for _ in range(ticks):
        snapshot = model.step(now_ms=0)
        for book in (snapshot.fx, *snapshot.upbit.values(), *snapshot.binance.values()):
            raws.append((raw_depth(book), f"{book.symbol}/{book.quote}"))
    exchange = ccxt.binance()
    passes = []
    for _ in range(repeat):
        started = time.perf_counter()
        for raw, symbol in raws:
            exchange.parse_order_book(raw, symbol, 0)
        passes.append((time.perf_counter() - started) / ticks * 1e6)
    return statistics.median(passes)


def engine_us_per_tick(tree: Path, universe: int, ticks: int, services: list[str], root: Path) -> float:
    """p50 loop latency of one `arbitrage run --ticks` from `tree`, in microseconds."""
    env = tree_env(tree) | {"ARB_SYMBOLS__UNIVERSE": f"top{universe}", "ARB_RUN__SEED": str(SEED)}
    done = subprocess.run(
        [sys.executable, "-m", "arbitrage", "run", "--ticks", str(ticks), *services,
         "--evidence-root", str(root)],
        capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), check=False,
    )  # fmt: skip
    kpis = sorted(root.glob("*/kpi.json"))
    if done.returncode != 0 or len(kpis) != 1:
        raise RuntimeError(f"run from {tree} at top{universe} exited {done.returncode}: {done.stderr[-600:]}")
    kpi = json.loads(kpis[0].read_text())
    p50_ms: float = kpi.get("tick_duration_ms", kpi["loop_latency_ms"])["p50"]
    return p50_ms * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="engine runs per tree and universe")
    add_base_options(parser)
    args = parser.parse_args()

    with base_tree(args) as base, running_servers() as (dsn, url), tempfile.TemporaryDirectory() as tmp:
        trees = {"base": base, "this": HERE}
        labels = f"base: {describe(base)}  this: {describe(HERE)}"
        services = ["--postgres-dsn", dsn, "--redis-url", url]
        engine: dict[tuple[str, int], list[float]] = {}
        floor: dict[int, list[float]] = {}
        for i in range(args.rounds):
            for universe in UNIVERSES:
                floor.setdefault(universe, []).append(floor_us_per_tick(universe, min(args.ticks, 1000), 3))
                for name, tree in trees.items():
                    root = Path(tmp) / f"{name}-{universe}-{i}"
                    took = engine_us_per_tick(tree, universe, args.ticks, services, root)
                    engine.setdefault((name, universe), []).append(took)

    print(f"{labels}  ticks/run: {args.ticks}  rounds: {args.rounds} (medians, us per tick)")
    head = ("universe", "books", "ccxt floor", "base loop", "ratio", "this loop", "ratio")
    print("{:>8} {:>6} {:>11} {:>10} {:>6} {:>10} {:>6}".format(*head))
    for universe in UNIVERSES:
        floor_us = statistics.median(floor[universe])
        before = statistics.median(engine[("base", universe)])
        after = statistics.median(engine[("this", universe)])
        print(
            f"{'top' + str(universe):>8} {1 + 2 * universe:>6} {floor_us:11.1f} "
            f"{before:10.1f} {before / floor_us:6.2f} {after:10.1f} {after / floor_us:6.2f}"
        )


if __name__ == "__main__":
    main()
