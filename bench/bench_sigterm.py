"""SIGTERM -> process exit time of `arbitrage run`, over N runs: median and max.

The protocol allows 10 s for the final flush; the target is under 1 s. Each run is a real
engine subprocess with a 90 s duration, signalled after it has traded for a few seconds. By
default the bench starts one embedded PostgreSQL and Redis and passes them to every run, so
the figure is the engine's own stop; `--embedded` lets each run start and stop its own
servers instead, which adds their shutdown to the time.

    python bench/bench_sigterm.py [--runs 10] [--after 5] [--embedded]
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

from arbitrage.services import EmbeddedServices
from evidence import names
from evidence.reader import read_json


def one_run(root: Path, after: float, service_args: list[str]) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_DSN", "REDIS_URL")}
    env["ARB_SERVICES__DATA_DIR"] = str(root / "own-services")
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbitrage", "run", "--duration", "90s", "--heartbeat-interval", "10",
         "--evidence-root", str(root / "evidence"), *service_args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("evidence: "):
        proc.kill()
        raise SystemExit(f"engine did not start: {line!r}")
    evidence = Path(line.removeprefix("evidence: ").strip())
    deadline = time.monotonic() + after
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    elapsed = time.monotonic() - sent
    return elapsed, code, str(read_json(evidence / names.CHAIN_SUMMARY)["stop_reason"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--after", type=float, default=5.0, help="seconds of trading before SIGTERM")
    parser.add_argument("--embedded", action="store_true", help="each run starts its own servers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sigterm-") as tmp:
        root = Path(tmp)
        services = EmbeddedServices(root / "shared-services")
        service_args: list[str] = []
        if not args.embedded:
            endpoints = services.resolve(None, None)
            service_args = ["--postgres-dsn", endpoints.postgres_dsn, "--redis-url", endpoints.redis_url]
        times = []
        try:
            for i in range(args.runs):
                elapsed, code, reason = one_run(root, args.after, service_args)
                times.append(elapsed)
                print(f"run {i + 1:2d}: SIGTERM -> exit {elapsed:6.3f} s  exit={code} stop_reason={reason}")
                if code != 1 or reason != "SIGTERM":
                    raise SystemExit("unexpected exit code or stop reason")
        finally:
            services.stop()
    mode = "own embedded servers per run" if args.embedded else "shared servers"
    print(f"{mode}: median {statistics.median(times):.3f} s, max {max(times):.3f} s over {len(times)} runs "
          f"(goal: median < 1 s; protocol limit 10 s)")  # fmt: skip


if __name__ == "__main__":
    main()
