"""The write-ahead journal's cost: journal + insert per leg against insert alone, and tick latency.

Both sides run in one process against the same embedded PostgreSQL (or POSTGRES_DSN), in
alternating rounds so that drift in the machine's load hits both alike:

- per leg: `Ledger.record_leg` with a journal attached against the same ledger without one;
- per tick: the engine's own Trader (seeded synthetic market, paper fills, real ledger) over the
  same snapshots, with and without the journal; p50/p99 of the ticks that wrote to the ledger.

Goals (issue "Nothing lost"): journal + insert at most 1.2x insert alone; tick p99 within 10 %.

    python bench/bench_journal.py [--legs 1000] [--ticks 1500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from arbitrage.config import StrategyConfig
from arbitrage.execution import PaperExecutor
from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger, LegRow
from arbitrage.market.model import MarketModel
from arbitrage.market.universe import top_n
from arbitrage.portfolio import Portfolio
from arbitrage.services import EmbeddedServices
from arbitrage.strategy import Strategy
from arbitrage.trader import Trader


def leg(run_id: str, number: int) -> LegRow:
    return LegRow(
        run_id=run_id, trade_id=f"T{number:07d}", leg="entry", correlation_id=f"{run_id}:{number}",
        symbol="BTC", direction="upbit_rich", qty=0.001, upbit_side="sell", upbit_vwap_krw=140_000_000.0,
        upbit_fee_krw=70.0, binance_side="buy", binance_vwap_usdt=98_000.0, binance_fee_usdt=0.098,
        krw_per_usdt=1380.0, premium_net_pct=2.5, pnl_krw=None, pnl_usd=None, reason="threshold", tick=number,
    )  # fmt: skip


def ledger_for(dsn: str, work: Path, run_id: str, journaled: bool) -> tuple[Ledger, LedgerJournal | None]:
    ledger = Ledger(dsn)
    ledger.open()
    if not journaled:
        return ledger, None
    evidence = work / run_id
    evidence.mkdir()
    journal = LedgerJournal(evidence, work, run_id)
    ledger.attach_journal(journal)
    return ledger, journal


def per_leg_us(dsn: str, work: Path, tag: str, legs: int, journaled: bool) -> float:
    ledger, journal = ledger_for(dsn, work, tag, journaled)
    started = time.perf_counter()
    for number in range(legs):
        ledger.record_leg(leg(tag, number))
    elapsed = time.perf_counter() - started
    ledger.close()
    if journal is not None:
        journal.close()
    return elapsed / legs * 1e6


def tick_latencies_ms(dsn: str, work: Path, tag: str, ticks: int, journaled: bool) -> list[float]:
    """Latency of each tick that wrote to the ledger (an entry or an exit)."""
    ledger, journal = ledger_for(dsn, work, tag, journaled)
    model = MarketModel(seed=7, symbols=top_n(10))
    config = StrategyConfig(entry_threshold_pct=2.2, exit_threshold_pct=2.1)
    trader = Trader(tag, Strategy(config, 0.5), PaperExecutor(config, 7), Portfolio(), ledger)
    snapshots = [model.step(now_ms=tick * 500) for tick in range(ticks)]
    writing: list[float] = []
    for snapshot in snapshots:
        before = ledger.db_inserts_ok
        started = time.perf_counter()
        trader.on_snapshot(snapshot)
        elapsed = (time.perf_counter() - started) * 1000.0
        if ledger.db_inserts_ok != before:
            writing.append(elapsed)
    ledger.close()
    if journal is not None:
        journal.close()
    return writing


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(0.99 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        work = Path(tmp)
        services = EmbeddedServices(work / "svc")
        dsn = os.environ.get("POSTGRES_DSN") or services.resolve(None, "redis://unused").postgres_dsn
        try:
            plain, journaled = [], []
            ticks_plain: list[float] = []
            ticks_journaled: list[float] = []
            stamp = f"{os.getpid()}_{int(time.time())}"
            for n in range(args.rounds):
                plain.append(per_leg_us(dsn, work, f"bp_{stamp}_{n}", args.legs, False))
                journaled.append(per_leg_us(dsn, work, f"bj_{stamp}_{n}", args.legs, True))
                ticks_plain += tick_latencies_ms(dsn, work, f"tp_{stamp}_{n}", args.ticks, False)
                ticks_journaled += tick_latencies_ms(dsn, work, f"tj_{stamp}_{n}", args.ticks, True)
        finally:
            services.stop()

    base, ours = statistics.median(plain), statistics.median(journaled)
    print(f"legs per round: {args.legs}, rounds: {args.rounds} (alternating), PostgreSQL on a Unix socket")
    print(f"insert alone             : {base:8.1f} us/leg (median of rounds)")
    print(f"journal + insert         : {ours:8.1f} us/leg (median of rounds)")
    print(f"ratio journal+insert/alone: {ours / base:7.3f}  (goal <= 1.2)")
    tp50, tj50 = statistics.median(ticks_plain), statistics.median(ticks_journaled)
    tp99, tj99 = p99(ticks_plain), p99(ticks_journaled)
    print(f"ticks that wrote legs    : {len(ticks_plain)} without journal, {len(ticks_journaled)} with")
    print(f"tick p50 without / with  : {tp50:8.3f} / {tj50:8.3f} ms")
    print(f"tick p99 without / with  : {tp99:8.3f} / {tj99:8.3f} ms  (ratio {tj99 / tp99:.3f}, goal <= 1.10)")


if __name__ == "__main__":
    main()
