"""Preflight's look at earlier runs on a long ledger, this tree against a base, side by side.

`check_open_positions` reads the ledger for what earlier runs of the mode left open: entry legs
without an exit leg and, in live mode, orders sent and never booked (the order trail). Every run
start and every `arbitrage preflight` calls it. Each tree gets its own database on one embedded
PostgreSQL, migrated by its own ledger, and the same history: `--runs` ended runs of each mode with
`--trades` round trips each (live: four orders, their ORDER_SENT and ORDER_DONE, TRADE_OPEN and
TRADE_CLOSE per round trip; both: an entry and an exit leg), and one crashed run of each mode that
left something open (a live order in flight, a paper entry without its exit). Each ended run is
then closed the way that tree's engine closes it (`arbitrage.run_closure.record_closure`, when the
tree has it). The figure is the median wall time of the check over `--rounds` calls, per mode and
history size; both trees must report the same findings.

    python bench/bench_preflight_history.py --base-rev 9099d99 [--runs 25,100] [--trades 100] [--rounds 5]

Goal: the check's time stays flat as the history of ended runs grows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from side_by_side import HERE, add_base_options, base_tree, database_for, describe, running_servers, tree_env

_TREE_PROGRAM = r"""
import importlib, json, statistics, sys, time
import psycopg
from arbitrage.ledger import Ledger
from arbitrage.ops.preflight import check_open_positions

dsn, runs, trades, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ledger = Ledger(dsn)
ledger.open()
LEG_COLUMNS = ("run_id, trade_id, leg, correlation_id, symbol, direction, qty, upbit_side, upbit_vwap_krw,"
               " upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt, krw_per_usdt,"
               " premium_net_pct, reason, tick")

def leg(run, trade, which):
    return (run, trade, which, f"{run}:{trade}", "BTC", "upbit_rich", 0.01, "sell", 1e8, 1, "buy", 7e4, 1,
            1380, 2.5, "threshold", 1)

def sent(cid):
    order = {"venue": "binance", "symbol": "BTC", "side": "buy", "amount": 0.01, "client_order_id": cid}
    return json.dumps(order)

ended = {mode: [f"{mode}_{r:05d}" for r in range(runs)] for mode in ("live", "paper")}
with psycopg.connect(dsn, autocommit=True) as conn:
    for mode, names in ended.items():
        for run in [*names, f"{mode}_crashed"]:
            status = "crashed" if run.endswith("crashed") else "passed"
            conn.execute(
                "INSERT INTO runs (run_id, phase, mode, started_at, status, config_hash, schema_version)"
                " VALUES (%s, 'smoke', %s, now(), %s, 'h', 1)", (run, mode, status))
    with conn.cursor() as cur, cur.copy(f"COPY trade_legs ({LEG_COLUMNS}) FROM STDIN") as copy:
        for run in [*ended["live"], *ended["paper"]]:
            for t in range(trades):
                copy.write_row(leg(run, f"t{t}", "entry"))
                copy.write_row(leg(run, f"t{t}", "exit"))
        copy.write_row(leg("paper_crashed", "t0", "entry"))
    with conn.cursor() as cur, cur.copy("COPY event_log (run_id, event_type, payload) FROM STDIN") as copy:
        for run in ended["live"]:
            for t in range(trades):
                ids = [f"{run}_t{t}_{i}" for i in range(4)]
                for cid in ids:
                    copy.write_row((run, "ORDER_SENT", sent(cid)))
                    done = {"venue": "binance", "client_order_id": cid, "fate": "filled",
                            "order_id": "o" + cid}
                    copy.write_row((run, "ORDER_DONE", json.dumps(done)))
                for kind, (u, b) in (("TRADE_OPEN", ids[:2]), ("TRADE_CLOSE", ids[2:])):
                    order_ids = {"upbit": "o" + u, "binance": "o" + b, "upbit_qty": 0.01}
                    copy.write_row((run, kind, json.dumps({"symbol": "BTC", "order_ids": order_ids})))
        copy.write_row(("live_crashed", "ORDER_SENT", sent("live_crashed_c0")))
    try:
        record_closure = importlib.import_module("arbitrage.run_closure").record_closure
    except ModuleNotFoundError:
        record_closure = None
    closed = 0 if record_closure is None else sum(
        1 for run in [*ended["live"], *ended["paper"]] if not isinstance(record_closure(ledger, run), str))
    assert ledger.drain(60.0) == 0
    conn.execute("ANALYZE")
    figures = {}
    for mode in ("live", "paper"):
        times, detail = [], ""
        for _ in range(rounds):
            started = time.perf_counter()
            detail = check_open_positions(mode, conn, None).detail
            times.append((time.perf_counter() - started) * 1000.0)
        figures[mode] = {"ms": statistics.median(times), "detail": detail}
    legs = conn.execute("SELECT count(*) FROM trade_legs").fetchone()[0]
    events = conn.execute("SELECT count(*) FROM event_log").fetchone()[0]
ledger.close()
print(json.dumps({"figures": figures, "closed": closed, "legs": legs, "events": events}))
"""


def measure(tree_name: str, tree: Path, dsn: str, runs: int, trades: int, rounds: int) -> dict[str, Any]:
    """One tree's figures for one history size, on a database of its own."""
    db = database_for(dsn, f"bench_history_{tree_name}_{runs}")
    done = subprocess.run(
        [sys.executable, "-c", _TREE_PROGRAM, db, str(runs), str(trades), str(rounds)],
        capture_output=True, text=True, env=tree_env(tree), cwd=tempfile.gettempdir(), check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{tree_name} tree failed ({done.returncode}): {done.stderr[-800:]}")
    figure: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", default="25,100", help="comma-separated history sizes (ended runs per mode)"
    )
    parser.add_argument("--trades", type=int, default=100, help="round trips per run")
    parser.add_argument("--rounds", type=int, default=5)
    add_base_options(parser)
    args = parser.parse_args()
    sizes = [int(size) for size in args.runs.split(",")]

    with base_tree(args) as base, running_servers() as (dsn, _):
        print(f"base: {describe(base)}  this: {describe(HERE)}  round trips per run: {args.trades}")
        print("{:>5} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7}".format(
            "mode", "runs", "legs", "events", "base ms", "this ms", "this/base", "closed"))  # fmt: skip
        for runs in sizes:
            base_fig = measure("base", base, dsn, runs, args.trades, args.rounds)
            this_fig = measure("this", HERE, dsn, runs, args.trades, args.rounds)
            for mode in ("live", "paper"):
                before = base_fig["figures"][mode]
                after = this_fig["figures"][mode]
                if before["detail"] != after["detail"]:
                    raise SystemExit(
                        f"the trees disagree on {mode}: {before['detail']!r} / {after['detail']!r}"
                    )
                print(
                    f"{mode:>5} {runs:>6} {this_fig['legs']:>8} {this_fig['events']:>8} {before['ms']:>9.1f}"
                    f" {after['ms']:>9.1f} {after['ms'] / before['ms']:>9.3f} {this_fig['closed']:>7}"
                )


if __name__ == "__main__":
    main()
