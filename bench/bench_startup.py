"""Start-up of the `arbitrage` command, this tree against a base revision, side by side in one run.

Three figures per tree, each the median of `--rounds` alternating measurements:
- `import arbitrage.cli`: its cumulative time as `python -X importtime` reports it;
- `arbitrage --help`: wall time of the whole process;
- `arbitrage run --ticks 1` against one embedded PostgreSQL and Redis started once for the bench
  (passed as --postgres-dsn and --redis-url; each tree its own database and Redis keyspace), wall
  time of the whole process.

Beside them, the floor any run stands on: a process that only imports the libraries a run cannot
do without (pydantic, psycopg, redis-py), builds one model, connects once to each server and
fsyncs one file. The last line is the engine's own share, `run --ticks 1` less that floor.

    python bench/bench_startup.py [--rounds 7] [--base-rev main | --base-path DIR]

Goals: `import arbitrage.cli` under 120 ms; `run --ticks 1` at most half of the base's time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

_IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| arbitrage\.cli$")


def import_cli_ms(tree: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import arbitrage.cli"],
        capture_output=True, text=True, env=tree_env(tree), cwd=tempfile.gettempdir(), check=True,
    )  # fmt: skip
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line.strip())
        if match:
            return int(match.group(1)) / 1000.0
    raise RuntimeError(f"no importtime line for arbitrage.cli from {tree}")


_FLOOR_PROGRAM = """
import gc, os, sys
gc.disable()
import pydantic, psycopg, redis
class Probe(pydantic.BaseModel):
    name: str = "probe"
    size: int = 1
Probe()
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    conn.execute("SELECT 1").fetchone()
client = redis.Redis.from_url(sys.argv[2])
client.ping()
client.close()
fd = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"probe")
os.fsync(fd)
os.close(fd)
os._exit(0)
"""


def floor_ms(dsn: str, url: str, scratch: Path) -> float:
    """Wall time of the library floor (`_FLOOR_PROGRAM`), one process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _FLOOR_PROGRAM, dsn, url, str(scratch)],
        env=tree_env(HERE), cwd=tempfile.gettempdir(), check=True,
    )  # fmt: skip
    return (time.perf_counter() - started) * 1000.0


def wall_ms(tree: Path, argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "arbitrage", *argv],
        capture_output=True, text=True, env=tree_env(tree), cwd=tempfile.gettempdir(), check=False,
    )  # fmt: skip
    elapsed = (time.perf_counter() - started) * 1000.0
    if done.returncode != 0:
        raise RuntimeError(
            f"arbitrage {' '.join(argv)} from {tree} exited {done.returncode}: {done.stderr[-400:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    add_base_options(parser)
    args = parser.parse_args()

    with base_tree(args) as base, running_servers() as (dsn, url), tempfile.TemporaryDirectory() as tmp:
        trees = {"base": base, "this": HERE}
        labels = f"base: {describe(base)}  this: {describe(HERE)}"
        figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
        dsns = {name: database_for(dsn, f"bench_startup_{name}") for name in trees}
        urls = {name: redis_db(url, index) for index, name in enumerate(trees, start=1)}

        def run_argv(name: str, i: int) -> list[str]:
            root = Path(tmp) / f"{name}-{i}"
            return [
                "run",
                "--ticks",
                "1",
                "--postgres-dsn",
                dsns[name],
                "--redis-url",
                urls[name],
                "--evidence-root",
                str(root),
            ]

        for name, tree in trees.items():
            wall_ms(tree, run_argv(name, -1))
        floors: list[float] = []
        for i in range(args.rounds):
            floors.append(floor_ms(dsn, url, Path(tmp) / "floor-probe"))
            for name, tree in trees.items():
                got = figures[name]
                got.setdefault("import arbitrage.cli (cumulative)", []).append(import_cli_ms(tree))
                got.setdefault("arbitrage --help (process)", []).append(wall_ms(tree, ["--help"]))
                got.setdefault("arbitrage run --ticks 1 (process)", []).append(
                    wall_ms(tree, run_argv(name, i))
                )

    medians = {name: {what: statistics.median(got) for what, got in figures[name].items()} for name in trees}
    floor = statistics.median(floors)
    print(f"{labels}  rounds: {args.rounds} (median ms)")
    print(f"{'':38} {'base':>9} {'this':>9} {'this/base':>10}")
    for what, after in medians["this"].items():
        before = medians["base"][what]
        print(f"{what:38} {before:9.1f} {after:9.1f} {after / before:10.2f}")
    run = "arbitrage run --ticks 1 (process)"
    print(f"{'library floor (process)':38} {floor:9.1f} {floor:9.1f} {'':>10}")
    print(f"{'  floor / base run':38} {floor / medians['base'][run]:9.2f}")
    before, after = medians["base"][run] - floor, medians["this"][run] - floor
    print(f"{'run --ticks 1 less the floor':38} {before:9.1f} {after:9.1f} {after / before:10.2f}")


if __name__ == "__main__":
    main()
