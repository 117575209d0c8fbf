"""Chaos throughput and checker overhead: the same schedule on one worker, then on two.

Both campaigns run in one process, one after the other, on the same seeded schedule, each with
its own rigs (PostgreSQL, Redis, fault proxies, exchange simulator, evidence disk per worker).
Printed side by side: runs per hour with `--workers 1` and `--workers 2` (goal: at least 1.6x on
this 2-core machine), and the checker's time as a share of each run's own wallclock (goal: under
10 %; the next start that a kill or a pending journal calls for is reported apart).

    python bench/bench_chaos.py [--runs 6] [--seed 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gates.chaos.model import ChaosOptions, RunOutcome
from gates.chaos.runner import run_campaign
from gates.chaos.schedule import build_schedule


def campaign(
    runs: int, seed: int, duration: float, workers: int, root: Path
) -> tuple[float, list[RunOutcome]]:
    schedule = build_schedule(seed, runs, duration)
    started = time.monotonic()
    outcomes = run_campaign(schedule, ChaosOptions(workers=workers, output_root=root), lambda outcome: None)
    return time.monotonic() - started, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
        one_sec, one = campaign(args.runs, args.seed, args.duration, 1, Path(tmp) / "w1")
        two_sec, two = campaign(args.runs, args.seed, args.duration, 2, Path(tmp) / "w2")
    outcomes = one + two
    shares = [100.0 * o.checker_sec / o.wallclock_sec for o in outcomes if o.wallclock_sec > 0]
    per_hour_one, per_hour_two = 3600.0 * len(one) / one_sec, 3600.0 * len(two) / two_sec
    next_starts = [o.next_start_sec for o in outcomes if o.next_start_sec]
    print(f"schedule: seed {args.seed}, {args.runs} runs of {args.duration:g}s, the same plans in both")
    print(f"--workers 1             : {one_sec:7.1f} s, {per_hour_one:6.1f} runs/hour (rig start included)")
    print(f"--workers 2             : {two_sec:7.1f} s, {per_hour_two:6.1f} runs/hour")
    print(f"ratio workers 2 / 1     : {per_hour_two / per_hour_one:7.2f}  (goal >= 1.6)")
    median, worst = statistics.median(shares), max(shares)
    print(f"checker / run wallclock : median {median:5.2f} %, max {worst:5.2f} %  (goal < 10 %)")
    typical = statistics.median(next_starts or [0.0])
    print(f"next starts             : {len(next_starts)} runs, median {typical:.1f} s")
    print(f"classifications         : {sorted({o.classification for o in outcomes})}")


if __name__ == "__main__":
    main()
