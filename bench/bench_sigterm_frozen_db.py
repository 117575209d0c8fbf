"""SIGTERM -> exit of `arbitrage run` with its PostgreSQL backends frozen, side by side with a healthy one.

Each trial is a real engine subprocess against a PostgreSQL the bench controls (the chaos rig's
`ControlledPostgres`), signalled after it has traded for a few seconds. In the frozen trials every
backend serving the engine is SIGSTOPped a second before the SIGTERM, so the engine's next
database call can never be answered: only its client-side deadlines let it stop. Healthy and
frozen trials alternate. The protocol allows 10 s; the goal with a frozen database is under 6 s.

    python bench/bench_sigterm_frozen_db.py [--trials 3] [--after 6]
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
from pathlib import Path

from arbitrage.ledger import APPLICATION_NAME
from arbitrage.services import EmbeddedRedis
from gates.chaos.postgres import ControlledPostgres

FAST_TRADING = {"ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "2.2", "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "2.1"}


def trial(
    pg: ControlledPostgres, redis_url: str, root: Path, after: float, frozen: bool
) -> tuple[float, int]:
    command = [
        sys.executable, "-m", "arbitrage", "run", "--duration", "60s", "--heartbeat-interval", "2",
        "--evidence-root", str(root), "--postgres-dsn", pg.admin_dsn, "--redis-url", redis_url,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **FAST_TRADING}
    )
    started = time.monotonic()
    while time.monotonic() - started < after and proc.poll() is None:
        time.sleep(0.05)
    if frozen:
        pg.freeze_backends(APPLICATION_NAME, database="postgres")
        time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    finally:
        pg.thaw()
    return time.monotonic() - sent, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--after", type=float, default=6.0, help="seconds of trading before the fault")
    args = parser.parse_args()
    healthy: list[float] = []
    frozen: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-frozen-") as tmp:
        root = Path(tmp)
        pg = ControlledPostgres.create()
        redis = EmbeddedRedis(root / "redis")
        redis_url = redis.start()
        try:
            for n in range(args.trials):
                for is_frozen, times in ((False, healthy), (True, frozen)):
                    elapsed, code = trial(pg, redis_url, root / f"ev{n}", args.after, is_frozen)
                    times.append(elapsed)
                    label = "frozen " if is_frozen else "healthy"
                    print(f"trial {n + 1} {label}: SIGTERM -> exit {elapsed:6.3f} s  exit={code}")
                    if code != 1:
                        raise SystemExit(f"unexpected exit code {code}")
        finally:
            redis.stop()
            pg.close()
    print(f"healthy database: median {statistics.median(healthy):.3f} s, max {max(healthy):.3f} s")
    print(f"frozen database : median {statistics.median(frozen):.3f} s, max {max(frozen):.3f} s"
          f"  (goal < 6 s, protocol limit 10 s)")  # fmt: skip


if __name__ == "__main__":
    main()
