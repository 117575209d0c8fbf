"""Acceptance: an armed live run SIGKILLed while an entry's second leg is under way.

The simulator holds every Upbit order request unanswered and unbooked ("held_order"), so the run
dies after Binance filled an entry's first leg and before any leg of that entry was booked. Only the
order trail knows of it. Checked from PostgreSQL and the simulator, never from the engine: the venue
holds the Binance fill and no trade leg shows it; the next live preflight replays the run's journal
and refuses arming (`open_positions`), naming the Binance order as filled and not booked and the Upbit
order as in flight, until POSITIONS_RECONCILED is recorded for the run. `arbitrage reconcile` tells
the operator which of the two the venue has.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbitrage.ledger import connect
from evidence.run_closure import NOTHING_LEFT_OPEN
from harness.engine import EngineLauncher
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.engine_process import wait_for
from tests.support.live_runs import (
    TRADING_SIM,
    arbitrage,
    armed_env,
    events_of,
    problems,
    reconcile,
    record_reconciled,
    release_kill_switch,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

HELD_RUN = {
    "ARB_RUN__DEBUG_TICK_DELAY_SEC": "0.4",
    "ARB_ANOMALY__LOOP_LATENCY__ENABLED": "false",
    "ARB_SYMBOLS__UNIVERSE": "top5",
}
"""The entry's tick waits on the held Upbit order (up to the client's 10 s) until the kill: the
anomaly table's loop-latency row is off, as that tick is slow by design."""


@pytest.fixture
def holding_sim() -> Iterator[SimProcess]:
    with start_exchange_sim(*TRADING_SIM) as server:
        server.configure({"faults": ["held_order"], "venues": ["upbit"]})
        yield server


def booked_binance_order(sim: SimProcess) -> dict[str, Any] | None:
    """The simulator's Binance order, once it has booked one while an Upbit order is held."""
    stats = sim.stats()
    binance = [order for order in stats["orders"] if order["venue"] == "binance"]
    held = stats["faulted"].get("held_order", 0)
    return binance[0] if binance and held else None


def preflight_lines(tmp_path: Path, evidence_root: Path, dsn: str, redis_url: str) -> tuple[int, list[str]]:
    """`arbitrage preflight --mode live` as an operator runs it after the crash, on the run's evidence
    root (where its pending journal is): exit code and output lines."""
    done = arbitrage(
        "preflight", "--mode", "live", "--postgres-dsn", dsn, "--redis-url", redis_url,
        env=armed_env() | {"ARB_RUN__EVIDENCE_ROOT": str(evidence_root)}, cwd=tmp_path, timeout=90,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, (done.stdout + done.stderr).splitlines()


def test_a_fill_a_killed_run_never_booked_blocks_arming_until_reconciled(
    holding_sim: SimProcess, engine: EngineLauncher, postgres_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    release_kill_switch(postgres_dsn, "held order crash acceptance run", "test_live_crash_orders")
    run = engine(env=armed_env() | HELD_RUN)
    run.start(["--mode", "live", "--market", "ccxt", "--exchange-url", holding_sim.url, "--ticks", "200",
               "--heartbeat-interval", "5", "--seed", "3"])  # fmt: skip
    filled = wait_for(
        lambda: booked_binance_order(holding_sim), 90, "a Binance fill with an Upbit order held"
    )
    assert run.kill() == -9
    holding_sim.configure({"faults": [], "venues": None})
    assert run.run_id is not None and run.evidence_dir is not None
    run_id, evidence_root = run.run_id, run.evidence_dir.parent

    try:
        code, lines = preflight_lines(tmp_path, evidence_root, postgres_dsn, redis_url)
        with connect(postgres_dsn, 5.0, 5000) as conn:
            legs = conn.execute("SELECT count(*) FROM trade_legs WHERE run_id = %s", (run_id,)).fetchone()
            status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        trail = events_of(postgres_dsn, run_id, "ORDER_SENT", "ORDER_DONE", NOTHING_LEFT_OPEN)
        assert legs == (0,), "no leg of the entry was booked"
        assert status == ("crashed",)
        sent = {p["venue"]: p for kind, p in trail if kind == "ORDER_SENT"}
        assert sent["binance"]["client_order_id"] == filled["client_id"]
        assert NOTHING_LEFT_OPEN not in [kind for kind, _ in trail], "a killed run never says so"
        assert [(p["venue"], p["fate"], p["order_id"]) for kind, p in trail if kind == "ORDER_DONE"] == [
            ("binance", "filled", filled["id"])
        ]
        assert [o["venue"] for o in holding_sim.stats()["orders"]] == ["binance"], "the Upbit order was held"

        binance, upbit = sent["binance"], sent["upbit"]
        assert (binance["side"], binance["symbol"]) == (filled["side"], filled["symbol"])
        assert code == 1, lines
        assert lines[-2:] == [
            f"arbitrage: recovered crashed run {run_id} (pid {run.pid}): live, 2 sent order(s) never"
            " booked; live arming is refused until they are reconciled on the exchanges and"
            " POSITIONS_RECONCILED is recorded",
            "arbitrage: preflight failed: open_positions: 2 live order(s) sent, never booked, in 1 earlier"
            f" run(s): {run_id} binance {binance['side']} {binance['symbol']} client order id"
            f" {filled['client_id']} (filled as order {filled['id']}, not booked), {run_id} upbit"
            f" {upbit['side']} {upbit['symbol']} client order id {upbit['client_order_id']} (in flight);"
            " reconcile on the exchanges, then record POSITIONS_RECONCILED for each run in event_log",
        ]

        code, out, _ = reconcile(run_id, holding_sim, evidence_root, postgres_dsn, redis_url, HELD_RUN)
        assert code == 1, out
        assert [line for line in out.splitlines() if line.startswith("order trail: ")] == [
            f"order trail: binance {binance['side']} {binance['symbol']} client order id"
            f" {filled['client_id']} (filled as order {filled['id']}, not booked): on the venue as order"
            f" {filled['id']}",
            f"order trail: upbit {upbit['side']} {upbit['symbol']} client order id"
            f" {upbit['client_order_id']} (in flight): not on the venue: nothing was booked",
        ]
        assert [p for p in problems(out) if filled["id"] in p and "missing in the ledger" in p], out
    finally:
        record_reconciled(postgres_dsn, run_id, "test_live_crash_orders")
    _, after = preflight_lines(tmp_path, evidence_root, postgres_dsn, redis_url)
    assert [line for line in after if " open_positions " in line] == [
        "PASS  open_positions   no live positions left open by earlier runs"
    ], after
