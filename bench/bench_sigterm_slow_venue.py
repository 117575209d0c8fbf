"""SIGTERM -> exit of an armed live run while the venues answer slowly, beside the same stop on a
prompt venue.

The protocol allows 10 s for a stop, and `docker/docker-compose.yml` 30 s before its SIGKILL. Each
round starts `arbitrage sim` with the live acceptance tests' trading seed, and an armed live run
against it (top5, the tests' arming and thresholds). As soon as PostgreSQL holds an open entry of
the run, the simulator's latency is set to `--latency-ms` (0 for the baseline) and the run gets
SIGTERM. The figures per venue speed: SIGTERM -> exit (median and max), the exit codes, the
positions the ledger still holds open afterwards, and the runs whose evidence was sealed.

    python bench/bench_sigterm_slow_venue.py [--rounds 2] [--latency-ms 12000]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from side_by_side import database_for, redis_db, running_servers

from evidence import names
from harness.exchange_sim.client import start_exchange_sim
from tests.support.live_runs import TRADING_SIM, armed_env, open_entries, release_kill_switch

BUDGET_SEC = 10.0
COMPOSE_GRACE_SEC = 30.0
OPEN_WITHIN_SEC = 90.0
MAX_ROUNDS = 7
"""Redis has 16 databases: 0 is left alone, and each round takes two."""


@dataclass(frozen=True)
class Stop:
    """One signalled run: how long it took to exit, and what it left."""

    seconds: float
    exit_code: int
    left_open: int
    sealed: bool


def one_stop(server_dsn: str, server_url: str, index: int, root: Path, latency_ms: float) -> Stop:
    """One round on a PostgreSQL and a Redis database of its own: a live run's preflight refuses to
    start while an earlier run's positions are open, which the slow venue leaves behind."""
    dsn = database_for(server_dsn, f"bench_slow_venue_{index}")
    url = redis_db(server_url, index)
    release_kill_switch(dsn, "bench: SIGTERM with a slow venue", "bench_sigterm_slow_venue")
    with start_exchange_sim(*TRADING_SIM, "--universe", "top5") as sim:
        env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_DSN", "REDIS_URL")}
        env |= armed_env() | {"ARB_SYMBOLS__UNIVERSE": "top5"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "arbitrage", "run", "--mode", "live", "--market", "ccxt",
             "--exchange-url", sim.url, "--duration", "120s", "--seed", "3", "--evidence-root", str(root),
             "--postgres-dsn", dsn, "--redis-url", url],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and not line.startswith("evidence: "):
            line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise SystemExit(f"the live run exited {proc.wait()} before naming its evidence")
        evidence = Path(line.removeprefix("evidence: ").strip())
        deadline = time.monotonic() + OPEN_WITHIN_SEC
        while not open_entries(dsn, evidence.name):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"the live run opened no position within {OPEN_WITHIN_SEC:.0f}s")
            time.sleep(0.05)
        if latency_ms:
            sim.configure({"latency_ms": latency_ms})
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=300)
        seconds = time.monotonic() - sent
        proc.stdout.read()
        left_open = len(open_entries(dsn, evidence.name))
        return Stop(seconds, code, left_open, (evidence / names.MANIFEST).exists())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=12_000.0, help="the slow venues' reply delay")
    args = parser.parse_args()
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds {args.rounds}: expected 1 to {MAX_ROUNDS} (two Redis databases per round)")
    speeds = {"prompt venue (0 ms)": 0.0, f"slow venue ({args.latency_ms:.0f} ms)": args.latency_ms}
    stops: dict[str, list[Stop]] = {name: [] for name in speeds}
    with running_servers() as (dsn, url), tempfile.TemporaryDirectory(prefix="bench-slow-venue-") as tmp:
        for i in range(args.rounds):
            for j, (name, latency) in enumerate(speeds.items()):
                index = 1 + 2 * i + j
                stops[name].append(one_stop(dsn, url, index, Path(tmp) / str(index), latency))
    print(f"rounds: {args.rounds}; budget {BUDGET_SEC:.0f} s (protocol), {COMPOSE_GRACE_SEC:.0f} s (compose)")
    print(f"{'':24} {'median s':>9} {'max s':>7}  exit codes  left open  sealed")
    for name, runs in stops.items():
        seconds = [s.seconds for s in runs]
        print(
            f"{name:24} {statistics.median(seconds):9.1f} {max(seconds):7.1f}  "
            f"{','.join(str(s.exit_code) for s in runs):10}  {sum(s.left_open for s in runs):9}  "
            f"{sum(s.sealed for s in runs)}/{len(runs)}"
        )
    print(f"goal: every stop within {BUDGET_SEC:.0f} s, whatever the venues do")


if __name__ == "__main__":
    main()
