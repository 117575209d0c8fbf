"""Acceptance: `arbitrage reconcile` after an armed live run against `arbitrage sim`.

Everything is real: the engine and `reconcile` as subprocesses, ccxt over HTTP to a simulator that
verifies every signature, PostgreSQL and Redis. One run, then, in order: each trade's hedge
residual checked against the simulator's own fills; a clean reconcile (exit 0, report sealed as an
addendum, event_log row, every balance change matched) and `verify` judging it (the residual bound
set below the measured total fails its criterion); a trade_legs row removed as the owner (exit 1,
the leg's venue orders reported), then put back (exit 0 again); an open limit order left on Upbit
(exit 1, reported as the only finding); a foreign market order on Binance (exit 1, reported as
missing in the ledger and as a drift of both Binance balances it moved), and `verify` then failing
the reconciliation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbitrage.ledger import connect
from arbitrage.market.ccxt_source import VenuePair
from evidence import names
from evidence.addendum import addendum_problems
from evidence.completeness import completeness_problems
from evidence.run_closure import NOTHING_LEFT_OPEN
from evidence.writer import file_digest
from harness.cli_process import run_cli
from harness.engine import EngineLauncher
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support import live_runs
from tests.support.live_runs import (
    CREDENTIALS,
    TRADING_SIM,
    armed_env,
    events_of,
    problems,
    release_kill_switch,
    run_until_closed_trades,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

CLOSED_TRADES = 2
RESIDUAL_PCT_BELOW = 1e-6
"""A bound far below any measured residual: verify must fail the criterion."""
UNIVERSE = {"ARB_SYMBOLS__UNIVERSE": "top5"}
"""The run's universe, and so the operator's when reconciling it: every reconcile asks Binance for
the orders and trades of each symbol in it, each request paced by ccxt's rate limiter (about 0.2 s),
so top5 halves what the five reconciles below wait. XRP, of the foreign orders, is in it."""


SLIPPAGE_BPS = "5"
"""Every market order fills 5 bps worse than the quote, so each Upbit buy by KRW amount gets less
than the Binance leg's quantity: the residual the checks below measure, on every trade and not only
when the book happens to move between quote and fill."""


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with start_exchange_sim(*TRADING_SIM, "--universe", "top5", "--slippage-bps", SLIPPAGE_BPS) as server:
        yield server


def reconcile(run_id: str, sim: SimProcess, evidence: Path, dsn: str, redis_url: str) -> tuple[int, str, str]:
    """`arbitrage reconcile` of the run, under the run's universe."""
    return live_runs.reconcile(run_id, sim, evidence, dsn, redis_url, UNIVERSE)


def place(sim: SimProcess, venue: str, *order: Any) -> str:
    """Place one order on the simulator with the account's keys, as someone else would."""
    pair = VenuePair(5.0, sim.url, CREDENTIALS)
    try:
        client = getattr(pair, venue)

        async def go() -> str:
            await client.load_markets()
            placed = await client.create_order(*order)
            return str(placed["id"])

        return pair.run(go())
    finally:
        pair.close()


def verify(evidence: Path) -> tuple[int, dict[str, dict[str, Any]], str]:
    """`arbitrage verify` as a subprocess: exit code, criteria by name (analysis_result.json), stdout."""
    done = run_cli("verify", str(evidence), timeout=120)
    result = json.loads((evidence / names.ANALYSIS_RESULT).read_text())
    return done.returncode, {c["name"]: c for c in result["criteria"]}, done.stdout + done.stderr


def check_residuals(sim: SimProcess, dsn: str, run_id: str, evidence: Path) -> float:
    """Each trade's residual against the simulator's own order records; returns the run's total (USD)."""
    orders = {o["id"]: o for o in sim.stats()["orders"]}
    with connect(dsn, 5.0, 5000) as conn:
        events = conn.execute(
            "SELECT event_type, correlation_id, payload FROM event_log WHERE run_id = %s"
            " AND event_type IN ('TRADE_OPEN', 'TRADE_CLOSE') ORDER BY id",
            (run_id,),
        ).fetchall()
        booked = dict(
            conn.execute(
                "SELECT correlation_id || ':' || leg, upbit_qty FROM trade_legs WHERE run_id = %s", (run_id,)
            ).fetchall()
        )
    entries: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    upbit_buys: list[float] = []
    total = 0.0
    for kind, corr, payload in events:
        upbit, binance = orders[payload["order_ids"]["upbit"]], orders[payload["order_ids"]["binance"]]
        leg = "entry" if kind == "TRADE_OPEN" else "exit"
        assert float(booked[f"{corr}:{leg}"]) == pytest.approx(upbit["qty"], rel=1e-12), (corr, leg)
        if leg == "entry":
            entries[corr] = (upbit, binance)
            qty = upbit["qty"] - binance["qty"]
            usd = qty * binance["avg_price"]
            assert payload["residual_qty"] == pytest.approx(qty, abs=1e-9), (corr, payload)
            assert payload["residual_usd"] == pytest.approx(usd, abs=1e-9), (corr, payload)
        else:
            upbit_in, binance_in = entries[corr]
            qty = (upbit_in["qty"] - upbit["qty"]) - (binance_in["qty"] - binance["qty"])
            usd = qty * binance["avg_price"]
            assert payload["remainder_qty"] == pytest.approx(qty, abs=1e-9), (corr, payload)
            assert payload["remainder_usd"] == pytest.approx(usd, abs=1e-9), (corr, payload)
        if upbit["side"] == "buy":
            upbit_buys.append(usd)
        total += abs(usd)
    residuals = [
        e for e in json.loads((evidence / names.KPI).read_text())["trade_events"] if e["event"] == "entry"
    ]
    assert len(residuals) == len(entries) >= 1
    kpi = json.loads((evidence / names.KPI).read_text())["residual"]
    assert kpi["trades"] == len(entries)
    assert kpi["total_abs_usd"] == pytest.approx(total, abs=1e-5)
    assert upbit_buys and all(abs(usd) > 0.0 for usd in upbit_buys), (
        "slipped Upbit buys leave a residual",
        upbit_buys,
    )
    return total


def test_reconcile_after_an_armed_live_run(
    sim: SimProcess, engine: EngineLauncher, postgres_dsn: str, redis_url: str
) -> None:
    release_kill_switch(postgres_dsn, "reconcile acceptance run against arbitrage sim", "test_reconcile")
    run = engine(env=armed_env() | UNIVERSE | {"ARB_RESIDUAL__MAX_PCT_OF_NOTIONAL": str(RESIDUAL_PCT_BELOW)})
    args = ["--mode", "live", "--market", "ccxt", "--exchange-url", sim.url, "--heartbeat-interval", "5"]
    assert run_until_closed_trades(run, postgres_dsn, [*args, "--seed", "3"], CLOSED_TRADES) == 1, (
        run.describe()
    )
    assert run.run_id is not None and run.evidence_dir is not None
    run_id, evidence = run.run_id, run.evidence_dir
    manifest_before = file_digest(evidence / names.MANIFEST)
    measured = check_residuals(sim, postgres_dsn, run_id, evidence)

    code, out, err = reconcile(run_id, sim, evidence.parent, postgres_dsn, redis_url)
    assert (code, problems(out), err) == (0, [], ""), out + err
    report = json.loads((evidence / names.RECONCILIATION).read_text())
    assert report["ok"] and report["run_id"] == run_id
    trades = report["trades"]
    assert trades and all(t["status"] == "closed" for t in trades), trades
    drifts = [abs(t["legs"][leg]["upbit_qty_drift_rel"]) for t in trades for leg in ("entry", "exit")]
    assert max(drifts) <= report["tolerances"]["upbit_drift_rel"], drifts
    assert report["pnl"]["reported_usd"] == pytest.approx(report["pnl"]["ledger_usd"], abs=0.01)
    assert report["pnl"]["venues_usd"] == pytest.approx(report["pnl"]["ledger_usd"], abs=0.01 * len(trades))
    assert report["venues"]["binance"]["matched"] == report["venues"]["upbit"]["matched"] == 2 * len(trades)
    assert file_digest(evidence / names.MANIFEST) == manifest_before, "the original seal is untouched"
    assert addendum_problems(evidence, names.RECONCILIATION, names.RECONCILIATION_SEAL) == []
    assert completeness_problems(evidence) == []
    with connect(postgres_dsn, 5.0, 5000) as conn:
        rows = conn.execute(
            "SELECT payload FROM event_log WHERE run_id = %s AND event_type = 'RECONCILIATION'", (run_id,)
        ).fetchall()
    assert [row[0]["ok"] for row in rows] == [True]
    trail = events_of(postgres_dsn, run_id, "ORDER_SENT", NOTHING_LEFT_OPEN)
    sent = {p["client_order_id"] for kind, p in trail if kind == "ORDER_SENT"}
    assert {order["client_id"] for order in sim.stats()["orders"]} <= sent
    assert [p["orders"] for kind, p in trail if kind == NOTHING_LEFT_OPEN] == [len(sent)], (
        "the run ended with every position closed and every order booked, and said so"
    )
    for venue, quote in (("upbit", "KRW"), ("binance", "USDT")):
        balances = report["venues"][venue]["balance_check"]
        assert all(row["ok"] for row in balances.values()), balances
        moved = [a for a, row in balances.items() if row["change"] != 0.0]
        assert quote in moved and len(moved) >= 2, (venue, balances)
        for row in balances.values():
            assert row["change"] == pytest.approx(row["now"] - row["start"])

    code, criteria, out = verify(evidence)
    assert criteria["reconciliation"]["verdict"] == "pass", out
    assert criteria["reconciled"]["verdict"] == "pass", out
    residual = criteria["hedge_residual"]
    assert residual["verdict"] == "fail" and residual["observed"] == pytest.approx(measured, abs=1e-5), out
    assert residual["limit"] < residual["observed"], residual
    assert code != 0 and "hedge_residual" in out, out

    with connect(postgres_dsn, 5.0, 5000) as conn:
        removed = conn.execute(
            "DELETE FROM trade_legs WHERE id = (SELECT max(id) FROM trade_legs WHERE run_id = %s)"
            " RETURNING *",
            (run_id,),
        ).fetchone()
    assert removed is not None
    code, out, _ = reconcile(run_id, sim, evidence.parent, postgres_dsn, redis_url)
    found = problems(out)
    assert code == 1, out
    assert sum("has no trade_legs row" in line for line in found) == 2, found
    with connect(postgres_dsn, 5.0, 5000) as conn:
        columns = [c.name for c in conn.execute("SELECT * FROM trade_legs LIMIT 0").description or []]
        conn.execute(
            f"INSERT INTO trade_legs ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
            removed,
        )
    code, out, _ = reconcile(run_id, sim, evidence.parent, postgres_dsn, redis_url)
    assert (code, problems(out)) == (0, []), out

    resting = place(sim, "upbit", "XRP/KRW", "limit", "sell", 10, 9000, {"clientOrderId": "left-open-1"})
    code, out, _ = reconcile(run_id, sim, evidence.parent, postgres_dsn, redis_url)
    assert code == 1, out
    assert problems(out) == [f"upbit: open order {resting} (sell XRP, client order id left-open-1)"], out

    foreign = place(sim, "binance", "XRP/USDT", "market", "buy", 10, None, {"clientOrderId": "foreign-1"})
    code, out, _ = reconcile(run_id, sim, evidence.parent, postgres_dsn, redis_url)
    assert code == 1, out
    new = [line for line in problems(out) if "open order" not in line]
    assert (
        new[0] == f"binance: order {foreign} (buy 10.0 XRP, client order id foreign-1) missing in the ledger"
    )
    drifts = [line.split(":")[0] for line in new[1:]]
    assert drifts == ["binance USDT", "binance XRP"], out
    assert "drift +9.99000000" in new[2], out  # 10 XRP bought, Binance's 0.1 % fee taken from the coin
    final = json.loads((evidence / names.RECONCILIATION).read_text())
    assert not final["ok"] and [o["id"] for o in final["venues"]["binance"]["missing_in_ledger"]] == [foreign]
    assert addendum_problems(evidence, names.RECONCILIATION, names.RECONCILIATION_SEAL) == []
    with connect(postgres_dsn, 5.0, 5000) as conn:
        verdicts = conn.execute(
            "SELECT payload->>'ok' FROM event_log WHERE run_id = %s AND event_type = 'RECONCILIATION'"
            " ORDER BY id",
            (run_id,),
        ).fetchall()
    assert [v[0] for v in verdicts] == ["true", "false", "true", "false", "false"]
    code, criteria, out = verify(evidence)
    assert code == 1 and criteria["reconciliation"]["verdict"] == "fail", out
    assert "missing in the ledger" in criteria["reconciliation"]["detail"], out
