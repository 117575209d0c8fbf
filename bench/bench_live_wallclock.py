"""A live run's wallclock against its duration, stop-time flatten included: this tree against a base.

Each round runs one armed live run of `--duration` from each tree, alternately, against a fresh
`arbitrage sim` seeded by the round, with the live chaos campaign's thresholds (positions open every
few seconds and many are still open at the end); each tree on its own database, its kill switch
released by its own code. From each run's
`chain_summary.json`: how far its wall time was off the duration (the wallclock invariant allows
5 %), whether that invariant passed, and how many positions the stop-time flatten closed.

    python bench/bench_live_wallclock.py --base-rev 7ebbcb6 [--duration 10s] [--rounds 3]

Goal: a live run whose flatten closes several positions still ends within 5 % of its duration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from side_by_side import (
    HERE,
    add_base_options,
    base_tree,
    database_for,
    describe,
    redis_db,
    running_servers,
    tree_env,
)

from arbitrage.run_summary import split_closed
from gates.chaos.live_campaign import armed_env
from gates.chaos.runner import ENGINE_ENV
from harness.exchange_sim.client import start_exchange_sim

_RELEASE = (
    "import sys; from gates.chaos.live_campaign import release_kill_switch; release_kill_switch(sys.argv[1])"
)


def live_run(tree: Path, dsn: str, url: str, duration: str, root: Path, seed: int) -> dict[str, Any]:
    """One armed live run from `tree` against a fresh simulator of `seed`: its chain summary."""
    env = tree_env(tree)
    subprocess.run([sys.executable, "-c", _RELEASE, dsn], env=env, check=True, cwd=tempfile.gettempdir())
    with start_exchange_sim("--seed", str(seed)) as sim:
        done = subprocess.run(
            [sys.executable, "-m", "arbitrage", "run", "--mode", "live", "--market", "ccxt", "--exchange-url",
             sim.url, "--duration", duration, "--heartbeat-interval", "2", "--postgres-dsn", dsn,
             "--redis-url", url],
            env={**env, **armed_env(), **ENGINE_ENV, "ARB_RUN__EVIDENCE_ROOT": str(root)},
            capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False,
        )  # fmt: skip
    line = next((x for x in done.stdout.splitlines() if x.startswith("evidence: ")), None)
    if line is None:
        raise RuntimeError(f"run from {tree} exited {done.returncode}: {done.stderr[-600:]}")
    summary: dict[str, Any] = json.loads((Path(line.split(" ", 1)[1]) / "chain_summary.json").read_text())
    return summary


def flattened(summary: dict[str, Any]) -> int:
    """Positions the stop-time flatten closed."""
    return sum(split_closed(summary.get("closed_by_reason") or {})[1].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--rounds", type=int, default=3)
    add_base_options(parser)
    args = parser.parse_args()

    with base_tree(args) as base, running_servers() as (dsn, url), tempfile.TemporaryDirectory() as tmp:
        trees = {"base": base, "this": HERE}
        dsns = {name: database_for(dsn, f"bench_live_wallclock_{name}") for name in trees}
        urls = {name: redis_db(url, index) for index, name in enumerate(trees, start=1)}
        print(f"base: {describe(base)}  this: {describe(HERE)}  duration {args.duration}")
        header = ("tree", "round", "off by s", "limit s", "wallclock", "flattened")
        print("{:<5} {:>5} {:>9} {:>8} {:>9} {:>9} exit".format(*header))
        off: dict[str, list[float]] = {name: [] for name in trees}
        for index in range(args.rounds):
            for name, tree in trees.items():
                root = Path(tmp) / f"{name}-{index}"
                summary = live_run(tree, dsns[name], urls[name], args.duration, root, index + 1)
                wallclock = summary["invariants"]["wallclock"]
                off[name].append(summary["duration_seconds"] - summary["expected_duration_seconds"])
                print(
                    f"{name:<5} {index:>5} {off[name][-1]:>+9.2f} {wallclock['limit']:>8.2f}"
                    f" {'pass' if wallclock['passed'] else 'FAIL':>9} {flattened(summary):>9}"
                    f" {summary['exit_code']:>4}"
                )
        for name in trees:
            print(f"{name}: median off by {statistics.median(off[name]):+.2f} s over {args.rounds} runs")


if __name__ == "__main__":
    main()
