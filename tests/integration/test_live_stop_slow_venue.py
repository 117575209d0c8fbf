"""A live run stopped while both venues answer slowly: the stop keeps its budget, and loses nothing.

An armed live run trades against `arbitrage sim` until PostgreSQL holds an open position; then the
venues start answering after 8 s, and the run gets SIGTERM. Every order it still had under way, or
would send for its close-out, would wait on them; the stop must end within the protocol's 10 s
all the same. Checked from PostgreSQL, the simulator's own order records and the evidence files:
the run ended on SIGTERM with exit 1 and sealed evidence; every order the venues booked is named
in the run's event_log (as a booked leg, or as an order whose outcome is unknown); the kill switch
is active exactly when an outcome is unknown or a first leg was left without its unwind; and each
position the ledger still holds open is reported open in the evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from arbitrage.ledger import connect
from arbitrage.ops.kill_switch import KillSwitch
from evidence import names
from evidence.completeness import completeness_problems
from harness.engine import EngineLauncher
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.engine_process import wait_for
from tests.support.live_runs import TRADING_SIM, armed_env, open_entries, release_kill_switch

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]
"""The run's WARNINGs (slow market data, the watchdog) and the ERRORs of a stop that leaves orders
unknown and positions open are what this test provokes; each such outcome is checked below."""

SLOW_MS = 8_000
"""Longer than what a stopping run may wait on the venues (`live.stop_venue_sec`, 4 s), shorter
than ccxt's 10 s timeout: without the stop's deadline, each order would wait for its answer."""
STOP_BUDGET_SEC = 10.0
UNIVERSE = {"ARB_SYMBOLS__UNIVERSE": "top5"}


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with start_exchange_sim(*TRADING_SIM, "--universe", "top5") as server:
        yield server


def events(dsn: str, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    with connect(dsn, 5.0, 5000) as conn:
        rows = conn.execute(
            "SELECT event_type, payload FROM event_log WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
    return [(str(kind), payload) for kind, payload in rows]


def booked_orders(sim: SimProcess) -> list[dict[str, Any]]:
    """Every order the simulator booked, once each order request it received has been answered."""
    posted = sum(sim.private_requests().get(route, 0) for route in ("POST /api/v3/order", "POST /v1/orders"))
    wait_for(lambda: len(sim.stats()["orders"]) >= posted, SLOW_MS / 1000.0 + 15.0, "the held orders booked")
    orders: list[dict[str, Any]] = sim.stats()["orders"]
    return orders


@pytest.mark.allow_log("WARNING", r".")
@pytest.mark.allow_log("ERROR", r"^order outcome unknown: ")
@pytest.mark.allow_log("ERROR", r"^unwind of \S+ \S+ failed: ")
@pytest.mark.allow_log("ERROR", r"^one-legged exposure on ")
@pytest.mark.allow_log("ERROR", r"^one-legged exposure: ")
@pytest.mark.allow_log("ERROR", r"^exit of \S+ failed, position kept open: ")
@pytest.mark.allow_log("ERROR", r"^position \S+ \(\S+\) left open at stop: ")
def test_a_stop_with_slow_venues_keeps_its_budget_and_names_every_booked_order(
    sim: SimProcess, engine: EngineLauncher, postgres_dsn: str
) -> None:
    release_kill_switch(postgres_dsn, "slow venue stop acceptance run", "test_live_stop_slow_venue")
    run = engine(env=armed_env() | UNIVERSE)
    run.start(
        ["--mode", "live", "--market", "ccxt", "--exchange-url", sim.url, "--seed", "3", "--duration", "120s"]
    )
    run_id = run.wait_for_evidence_dir(90).name
    wait_for(lambda: open_entries(postgres_dsn, run_id) or run.exit_code is not None, 90, "an open position")
    assert run.exit_code is None, run.describe()
    sim.configure({"latency_ms": SLOW_MS})
    signalled = time.monotonic()
    code = run.terminate(grace=60)
    stopped_after = time.monotonic() - signalled

    assert code == 1, run.describe()
    assert stopped_after <= STOP_BUDGET_SEC, f"SIGTERM to exit took {stopped_after:.1f}s\n{run.describe()}"
    evidence = run.evidence_dir
    assert evidence is not None
    assert completeness_problems(evidence) == []
    assert json.loads((evidence / names.CHAIN_SUMMARY).read_text())["stop_reason"] == "SIGTERM"
    with connect(postgres_dsn, 5.0, 5000) as conn:
        row = conn.execute("SELECT stop_reason, exit_code FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        switch = KillSwitch(conn).status()
    assert row == ("SIGTERM", 1)

    logged = events(postgres_dsn, run_id)
    text = json.dumps([payload for _, payload in logged])
    orders = booked_orders(sim)
    assert orders, "the run traded before the stop"
    unnamed = [o for o in orders if o["id"] not in text and o["client_id"] not in text]
    assert unnamed == [], f"orders the venues booked that the run's event_log never names: {unnamed}"
    unknown = [p for kind, p in logged if kind == "ORDER_LOOKUP" and p["outcome"] == "unknown"]
    unhedged = [p for kind, p in logged if kind == "LEG_UNWOUND" and p["unwind"] is None]
    assert switch.active == bool(unknown or unhedged), (switch, unknown, unhedged)
    left_open = {p["trade_id"] for kind, p in logged if kind == "POSITION_LEFT_OPEN"}
    assert open_entries(postgres_dsn, run_id) <= left_open, (open_entries(postgres_dsn, run_id), left_open)
