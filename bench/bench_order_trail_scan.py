"""The order trail query of live preflight and recovery on a long ledger, this tree against a base.

`unbooked_by_run` reads the order trails of earlier live runs on every live preflight and every
start after a live crash. Each tree gets its own database on one embedded PostgreSQL, migrated by
its own ledger, and the same history: `--runs` ended live runs of `--orders` orders each (every
order sent, done and booked, ten events per round trip) and one crashed run with an order in
flight. Each clean run is then ended the way that tree's engine ends it: `seal_trail` when the
tree has it. The figure is the median wall time of `unbooked_by_run` over `--rounds` calls, for
each history size; both trees must find the crashed run's order and nothing else.

    python bench/bench_order_trail_scan.py --base-rev 9099d99 [--runs 25,100] [--orders 400] [--rounds 5]

Goal: the query's time stays flat as the history of ended runs grows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from side_by_side import HERE, add_base_options, base_tree, database_for, describe, running_servers, tree_env

_TREE_PROGRAM = r"""
import json, statistics, sys, time
import psycopg
from arbitrage import order_trail
from arbitrage.ledger import Ledger

dsn, runs, orders, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ledger = Ledger(dsn)
ledger.open()

def sent(run, n):
    cid = f"{run}_c{n}"
    return {"venue": "binance", "symbol": "BTC", "side": "buy", "amount": 0.01, "client_order_id": cid}

with psycopg.connect(dsn, autocommit=True) as conn:
    clean = [f"live_{r:05d}" for r in range(runs)]
    for run in [*clean, "live_crashed"]:
        status = "crashed" if run == "live_crashed" else "passed"
        conn.execute(
            "INSERT INTO runs (run_id, phase, mode, started_at, status, config_hash, schema_version)"
            " VALUES (%s, 'smoke', 'live', now(), %s, 'h', 1)", (run, status))
    with conn.cursor() as cur, cur.copy("COPY event_log (run_id, event_type, payload) FROM STDIN") as copy:
        for run in clean:
            for n in range(0, orders, 4):
                ids = [f"{run}_c{n + i}" for i in range(4)]
                for i, cid in enumerate(ids):
                    copy.write_row((run, "ORDER_SENT", json.dumps(sent(run, n + i))))
                    done = {"venue": "binance", "client_order_id": cid, "fate": "filled",
                            "order_id": "o" + cid}
                    copy.write_row((run, "ORDER_DONE", json.dumps(done)))
                for kind, (u, b) in (("TRADE_OPEN", ids[:2]), ("TRADE_CLOSE", ids[2:])):
                    ids_of = {"upbit": "o" + u, "binance": "o" + b, "upbit_qty": 0.01}
                    booked = {"symbol": "BTC", "order_ids": ids_of}
                    copy.write_row((run, kind, json.dumps(booked)))
        copy.write_row(("live_crashed", "ORDER_SENT", json.dumps(sent("live_crashed", 0))))
    seal = getattr(order_trail, "seal_trail", None)
    sealed = sum(1 for run in clean if seal is not None and isinstance(seal(ledger, run), int))
    assert ledger.drain(60.0) == 0
    conn.execute("ANALYZE")
    times, found = [], {}
    for _ in range(rounds):
        started = time.perf_counter()
        found = order_trail.unbooked_by_run(conn, None)
        times.append((time.perf_counter() - started) * 1000.0)
    events = conn.execute("SELECT count(*) FROM event_log").fetchone()[0]
ledger.close()
listed = {run: [o.client_order_id for o in unbooked] for run, unbooked in found.items()}
print(json.dumps({"ms": statistics.median(times), "found": listed, "sealed": sealed, "events": events}))
"""


def measure(tree_name: str, tree: Path, dsn: str, runs: int, orders: int, rounds: int) -> dict[str, object]:
    """One tree's figure for one history size, on a database of its own."""
    db = database_for(dsn, f"bench_trail_{tree_name}_{runs}")
    done = subprocess.run(
        [sys.executable, "-c", _TREE_PROGRAM, db, str(runs), str(orders), str(rounds)],
        capture_output=True, text=True, env=tree_env(tree), cwd=tempfile.gettempdir(), check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{tree_name} tree failed ({done.returncode}): {done.stderr[-800:]}")
    figure: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="25,100", help="comma-separated history sizes (ended live runs)")
    parser.add_argument("--orders", type=int, default=400, help="orders per run (a multiple of 4)")
    parser.add_argument("--rounds", type=int, default=5)
    add_base_options(parser)
    args = parser.parse_args()
    sizes = [int(size) for size in args.runs.split(",")]

    with base_tree(args) as base, running_servers() as (dsn, _):
        print(f"base: {describe(base)}  this: {describe(HERE)}  orders per run: {args.orders}")
        print(f"{'runs':>6} {'events':>9} {'base ms':>9} {'this ms':>9} {'this/base':>9} {'sealed':>7}")
        for runs in sizes:
            figures = {name: measure(name, tree, dsn, runs, args.orders, args.rounds)
                       for name, tree in (("base", base), ("this", HERE))}  # fmt: skip
            base_fig, this_fig = figures["base"], figures["this"]
            expected = {"live_crashed": ["live_crashed_c0"]}
            if base_fig["found"] != expected or this_fig["found"] != expected:
                raise SystemExit(f"the trees disagree on what is unbooked: {figures}")
            base_ms, this_ms = float(str(base_fig["ms"])), float(str(this_fig["ms"]))
            print(
                f"{runs:>6} {this_fig['events']:>9} {base_ms:>9.1f} {this_ms:>9.1f} {this_ms / base_ms:>9.3f}"
                f" {this_fig['sealed']:>7}"
            )


if __name__ == "__main__":
    main()
