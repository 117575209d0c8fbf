"""Acceptance: an armed `arbitrage run --mode live` against `arbitrage sim` places signed orders
that the simulator accepts, and the ledger matches them.

Everything is real: the engine subprocess, ccxt over HTTP to a simulator subprocess that verifies
every signature and keeps every order it filled, PostgreSQL and Redis. Each trade_legs row is
matched to its two venue orders through the order ids of its TRADE_OPEN/TRADE_CLOSE event.
The run is bounded by its trades: it is stopped by SIGTERM as soon as the ledger holds
`CLOSED_TRADES` round trips (the flatten at stop places any further orders, matched like the rest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from arbitrage.ledger import connect
from arbitrage.ops.kill_switch import KillSwitch
from harness.engine import EngineLauncher
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.live_runs import (
    TRADING_SIM,
    armed_env,
    release_kill_switch,
    run_until_closed_trades,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CLOSED_TRADES = 2
ORDER_ROUTES = {"upbit": "POST /v1/orders", "binance": "POST /api/v3/order"}
SIGNED_ROUTES = {*ORDER_ROUTES.values(), "GET /v1/order", "GET /v1/accounts", "GET /api/v3/account"}


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with start_exchange_sim(*TRADING_SIM) as server:
        yield server


def test_armed_live_run_places_signed_orders_the_ledger_matches(
    sim: SimProcess, engine: EngineLauncher, postgres_dsn: str
) -> None:
    release_kill_switch(postgres_dsn, "live acceptance run against arbitrage sim", "test_live_run")
    run = engine(env=armed_env())
    args = ["--mode", "live", "--market", "ccxt", "--exchange-url", sim.url, "--heartbeat-interval", "5"]
    code = run_until_closed_trades(run, postgres_dsn, [*args, "--seed", "3"], CLOSED_TRADES)
    assert code == 1, run.describe()
    summary = run.evidence.chain_summary
    assert summary is not None and (summary["stop_reason"], summary["warnings_count"]) == ("SIGTERM", 0)
    stats = sim.stats()
    with connect(postgres_dsn, 5.0, 5000) as conn:
        legs = conn.execute(
            "SELECT correlation_id, leg, qty, upbit_side, upbit_vwap_krw, binance_side, binance_vwap_usdt"
            " FROM trade_legs WHERE run_id = %s ORDER BY id",
            (run.run_id,),
        ).fetchall()
        events = conn.execute(
            "SELECT event_type, correlation_id, payload FROM event_log WHERE run_id = %s ORDER BY id",
            (run.run_id,),
        ).fetchall()
        closed = conn.execute("SELECT closed_trades FROM runs WHERE run_id = %s", (run.run_id,)).fetchone()

    assert closed is not None and closed[0] >= CLOSED_TRADES, run.describe()
    orders: list[dict[str, Any]] = stats["orders"]
    assert len(orders) == 2 * len(legs) == 4 * closed[0], (len(orders), len(legs), closed)
    by_id = {order["id"]: order for order in orders}
    assert len(by_id) == len(orders)
    order_ids = {
        (corr, "entry" if kind == "TRADE_OPEN" else "exit"): payload["order_ids"]
        for kind, corr, payload in events
        if kind in ("TRADE_OPEN", "TRADE_CLOSE")
    }
    matched: set[str] = set()
    upbit_qty: dict[str, list[tuple[str, float]]] = {}
    for corr, leg, qty, upbit_side, upbit_vwap, binance_side, binance_vwap in legs:
        ids = order_ids[(corr, leg)]
        upbit, binance = by_id[ids["upbit"]], by_id[ids["binance"]]
        matched |= {ids["upbit"], ids["binance"]}
        assert (upbit["venue"], upbit["side"]) == ("upbit", upbit_side)
        assert (binance["venue"], binance["side"]) == ("binance", binance_side)
        assert binance["qty"] == pytest.approx(float(qty), rel=1e-9)
        assert upbit["qty"] == pytest.approx(ids["upbit_qty"], rel=1e-9)
        assert upbit["qty"] == pytest.approx(float(qty), rel=0.05)
        upbit_qty.setdefault(corr, []).append((upbit["side"], upbit["qty"]))
        assert upbit["avg_price"] == pytest.approx(float(upbit_vwap), rel=1e-9)
        assert binance["avg_price"] == pytest.approx(float(binance_vwap), rel=1e-9)
    assert matched == set(by_id), "every simulator order belongs to one ledger leg"
    for corr, ((_, entered), (exit_side, exited)) in upbit_qty.items():
        # An Upbit market sell sells the entry's filled quantity; a market buy spends KRW, so its
        # quantity follows the price it filled at.
        tolerance = 1e-9 if exit_side == "sell" else 0.05
        assert exited == pytest.approx(entered, rel=tolerance), f"{corr}: the Upbit exit closes the entry"

    private = stats["private_requests"]
    assert set(private) <= SIGNED_ROUTES, private
    for venue, route in ORDER_ROUTES.items():
        placed = sum(order["venue"] == venue for order in orders)
        assert private.get(route, 0) == placed, (venue, private)
    kinds = [kind for kind, _, _ in events]
    assert "EXIT_FAILED" not in kinds and "LEG_UNWOUND" not in kinds, kinds
    live_end = next(payload for kind, _, payload in events if kind == "LIVE_END")
    assert live_end["kill_switch_blocks"] == 0
    assert live_end["kill_switch_checks"] >= 2 * closed[0], live_end
    preflight = next(payload for kind, _, payload in events if kind == "PREFLIGHT")
    switch_check = next(check for check in preflight["checks"] if check["name"] == "kill_switch")
    assert switch_check["status"] == "PASS", switch_check


@pytest.mark.allow_log(
    "ERROR", r"^one-legged exposure: binance \S+ \S+ \S+ \(order \S+\) not unwound ", count=1
)
@pytest.mark.allow_log("ERROR", r"^unwind of \S+ \S+ failed: ", count=1)
@pytest.mark.allow_log("ERROR", r"^one-legged exposure on \S+: its unwind failed ", count=1)
def test_an_unwind_the_venue_refuses_stops_the_run_and_trips_the_kill_switch(
    sim: SimProcess, engine: EngineLauncher, postgres_dsn: str
) -> None:
    """Upbit refuses the second leg and Binance the unwind of the first (`reject_after`): the run holds
    a Binance leg no position carries. It stops (UNHEDGED_LEG) with the kill switch ACTIVE, naming
    the order, and event_log keeps the leg (LEG_UNWOUND with no unwind)."""
    release_kill_switch(postgres_dsn, "unhedged leg acceptance run", "test_live_run")
    sim.configure({"reject_orders": ["upbit"], "reject_after": {"binance": 1}})
    run = engine(env=armed_env())
    run.start(
        ["--mode", "live", "--market", "ccxt", "--exchange-url", sim.url, "--ticks", "20", "--seed", "3"]
    )
    assert run.wait(timeout=90) == 1, run.describe()
    with connect(postgres_dsn, 5.0, 5000) as conn:
        row = conn.execute(
            "SELECT stop_reason, exit_code FROM runs WHERE run_id = %s", (run.run_id,)
        ).fetchone()
        switch = KillSwitch(conn).status()
        unwound = conn.execute(
            "SELECT payload FROM event_log WHERE run_id = %s AND event_type = 'LEG_UNWOUND'", (run.run_id,)
        ).fetchall()
    [first] = sim.stats()["orders"]
    assert row == ("UNHEDGED_LEG", 1), run.describe()
    assert [(p["filled"]["order_id"], p["unwind"]) for (p,) in unwound] == [(first["id"], None)]
    assert (switch.active, switch.by, switch.run_id) == (True, "live", run.run_id)
    assert f"(order {first['id']})" in switch.reason, switch.reason
