"""Ticks per second over `--market ccxt` against `arbitrage sim`, next to ccxt's rate-limiter bound.

One tick is one Upbit multi-market orderbook request plus one Binance depth request per
symbol. ccxt's rate limiter alone caps how fast those can go; the goal is that the real
source, and the whole engine, reach at least 90% of that cap. Measured in one invocation:

1. limiter only: the same ccxt clients' `throttle(cost)` for the same requests, no HTTP;
2. source: `CcxtSource.snapshot()` back to back against the simulator;
3. engine: `arbitrage run --market ccxt --ticks N` against the simulator (loop_count / loop time).

    python bench/bench_ccxt_tick_rate.py [--ticks 40] [--symbols 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async

from arbitrage.market.ccxt_source import BOOK_LEVELS, CcxtSource
from arbitrage.market.universe import top_n
from arbitrage.services import EmbeddedServices
from harness.exchange_sim.client import start_exchange_sim


def request_costs(upbit: Any, binance: Any, symbols: int) -> tuple[float, list[float]]:
    """ccxt's own limiter cost of one tick's requests: Upbit's orderbook call and each Binance depth."""
    orderbook = upbit.api["public"]["get"]["orderbook"]
    depth = binance.api["public"]["get"]["depth"]
    upbit_cost = float(upbit.calculate_rate_limiter_cost("public", "GET", "orderbook", {}, orderbook))
    binance_cost = float(
        binance.calculate_rate_limiter_cost("public", "GET", "depth", {"limit": BOOK_LEVELS}, depth)
    )
    return upbit_cost, [binance_cost] * symbols


async def limiter_only(ticks: int, symbols: int) -> tuple[float, float]:
    """Ticks per second when each request only waits for ccxt's throttle, and the analytic cap.

    The clients are configured as `CcxtSource` configures its own; the cap is the slower
    venue's summed request cost times its `rateLimit`.
    """
    loop = asyncio.get_running_loop()
    upbit = ccxt_async.upbit({"enableRateLimit": True, "asyncio_loop": loop})
    binance = ccxt_async.binance({"enableRateLimit": True, "asyncio_loop": loop})
    try:
        upbit_cost, binance_costs = request_costs(upbit, binance, symbols)
        per_tick_ms = max(upbit_cost * upbit.rateLimit, sum(binance_costs) * binance.rateLimit)
        started = time.perf_counter()
        for _ in range(ticks):
            await asyncio.gather(upbit.throttle(upbit_cost), *(binance.throttle(c) for c in binance_costs))
        return ticks / (time.perf_counter() - started), 1000.0 / per_tick_ms
    finally:
        await asyncio.gather(upbit.close(), binance.close())


def measure_source(url: str, symbols: list[str], ticks: int) -> float:
    source = CcxtSource(symbols, url)
    try:
        source.snapshot()
        started = time.perf_counter()
        for _ in range(ticks):
            source.snapshot()
        return ticks / (time.perf_counter() - started)
    finally:
        source.close()


def measure_engine(url: str, symbols: int, ticks: int, root: Path) -> tuple[float, dict[str, Any]]:
    endpoints = EmbeddedServices(root / "svc")
    services = endpoints.resolve(None, None)
    try:
        command = [
            sys.executable, "-m", "arbitrage", "run", "--market", "ccxt", "--exchange-url", url,
            "--ticks", str(ticks), "--seed", "3", "--evidence-root", str(root / "evidence"),
            "--postgres-dsn", services.postgres_dsn, "--redis-url", services.redis_url,
        ]  # fmt: skip
        env_universe = {"ARB_SYMBOLS__UNIVERSE": f"top{symbols}"}
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=ticks * 5 + 60, env={**_env(), **env_universe}
        )
    finally:
        endpoints.stop()
    line = next((x for x in done.stdout.splitlines() if x.startswith("evidence: ")), None)
    if line is None:
        raise SystemExit(f"engine run failed (exit {done.returncode}): {done.stderr[-2000:]}")
    evidence = Path(line.removeprefix("evidence: "))
    summary = json.loads((evidence / "chain_summary.json").read_text())
    kpi = json.loads((evidence / "kpi.json").read_text())
    return kpi["loop_count"] / summary["duration_seconds"], {
        "exit": done.returncode,
        **kpi["loop_latency_ms"],
        "tick_p50": (kpi.get("tick_duration_ms") or {}).get("p50"),
    }


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("POSTGRES_DSN", "REDIS_URL")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--symbols", type=int, choices=[5, 10, 20], default=10)
    args = parser.parse_args()
    symbols = top_n(args.symbols)
    sim = start_exchange_sim("--seed", "3", "--symbols", ",".join(symbols))
    url = sim.url
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ccxt-") as tmp:
            limiter, bound = asyncio.run(limiter_only(args.ticks, len(symbols)))
            source = measure_source(url, symbols, args.ticks)
            engine, latency = measure_engine(url, args.symbols, args.ticks, Path(tmp))
    finally:
        sim.stop()
    print(f"ccxt tick rate, {args.symbols} symbols, {args.ticks} ticks each, simulator at {url}")
    print(f"  limiter bound (analytic)      {bound:6.3f} ticks/s")
    print(f"  limiter only (throttle, no IO) {limiter:6.3f} ticks/s")
    print(
        f"  CcxtSource.snapshot()          {source:6.3f} ticks/s  = {100 * source / limiter:5.1f}% of limiter"
    )
    print(
        f"  engine run --market ccxt       {engine:6.3f} ticks/s  = {100 * engine / limiter:5.1f}% of limiter"
    )
    print(f"  engine loop latency ms         {latency}")
    goal = min(source, engine) >= 0.9 * limiter
    print(f"  goal >= 90% of the limiter's bound: {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
