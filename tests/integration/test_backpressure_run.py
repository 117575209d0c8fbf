"""One `arbitrage run --market ccxt` while the simulator bans it: no request, no entry, the wait reported.

The simulator's own counters say whether the engine asked during the ban, PostgreSQL says
whether it traded, and the engine's metrics endpoint and kpi.json must show the wait. The run is
started through the harness and stopped by SIGTERM once the ban is over; its duration is only an
upper bound.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.engine import EngineLauncher, EngineProcess
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.engine_runs import leg_times, wait_while_alive

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

RUN_SECONDS = 180
"""Only an upper bound: the run is stopped as soon as the ban has been waited out."""
FIRST_ENTRY_SEC = 90.0
"""On a loaded 2-core machine the ccxt start-up alone can take tens of seconds."""
RETRY_AFTER_SEC = 4
TICK_MARGIN_SEC = 1.0
"""A tick already in flight when the ban starts may still trade on the books it fetched before it."""
ROUTES = ("/v1/orderbook", "/api/v3/depth")


def entry_times(dsn: str, run_id: str | None) -> list[float]:
    return [t for _, t in leg_times(dsn, run_id, "entry")]


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not served")


WAIT = "arbitrage_rate_limit_wait_seconds"
TICKS = "arbitrage_loop_latency_seconds_count"
ERRORS = "arbitrage_exchange_errors_total"


def asked(sim: SimProcess) -> dict[str, int]:
    requests: dict[str, Any] = sim.stats()["requests"]
    return {route: int(requests.get(route, 0)) for route in ROUTES}


@pytest.mark.allow_log("WARNING", r"^market data unavailable \(DDoSProtection")
@pytest.mark.allow_log("WARNING", r"^watchdog \S+ -> WARN: ")
def test_engine_waits_out_a_ban_without_asking_or_trading(engine: EngineLauncher, postgres_dsn: str) -> None:
    env = {
        "ARB_WARN_POLICY": "continue",
        "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "2.6",
        "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "2.4",
    }
    with start_exchange_sim(
        "--seed", "3", "--premium-half-life-sec", "1", "--retry-after-sec", str(RETRY_AFTER_SEC)
    ) as sim:  # fmt: skip
        run = engine(env=env).start(
            ["--market", "ccxt", "--exchange-url", sim.url, "--duration", f"{RUN_SECONDS}s", "--seed", "3",
             "--heartbeat-interval", "5", "--metrics-port", "0"]
        )  # fmt: skip
        t_on, t_hit, at_ban, during = ban(run, sim, postgres_dsn)
        exit_code = run.terminate()

    assert during == at_ban, f"asked during the ban: {at_ban} -> {during}"
    assert exit_code == 1, run.describe()
    summary, kpi = run.evidence.chain_summary, run.evidence.kpi
    assert summary is not None and kpi is not None, run.describe()
    assert (summary["stop_reason"], summary["warnings_count"] >= 1) == ("SIGTERM", True), summary
    assert not any("Traceback" in line for line in run.logs)
    upbit = kpi["rate_limit"]["upbit"]
    assert upbit["hits"] >= 1 and upbit["backoffs"] >= 1 and upbit["last_status"] == 418, kpi["rate_limit"]
    assert upbit["last_retry_after_sec"] == RETRY_AFTER_SEC, kpi["rate_limit"]
    assert upbit["wait_seconds"] >= RETRY_AFTER_SEC - 0.5, kpi["rate_limit"]
    assert upbit["refused_requests"] >= 4, kpi["rate_limit"]
    assert kpi["market_errors"].get("DDoSProtection", 0) >= upbit["refused_requests"], kpi["market_errors"]
    inside = [
        round(t - t_on, 2)
        for t in entry_times(postgres_dsn, run.run_id)
        if t_on + TICK_MARGIN_SEC <= t <= t_hit + RETRY_AFTER_SEC
    ]
    assert not inside, f"entries {inside} s into the ban"


def ban(run: EngineProcess, sim: SimProcess, dsn: str) -> tuple[float, float, dict[str, int], dict[str, int]]:
    """After a first entry, ban the engine at Upbit until its Retry-After has passed (a ban of both
    venues would leave it to chance which one the engine meets first), then lift the ban and
    wait for two more ticks, so that the stop finds books fresh enough to flatten on.

    Returns when the ban began, when the engine first met it, and the requests per route at that
    moment and at the end of the wait.
    """

    def alive() -> bool:
        return run.exit_code is None

    metrics_url = run.wait_for_metrics_url(60)
    run_id = run.wait_for_evidence_dir(60).name
    assert wait_while_alive(lambda: bool(entry_times(dsn, run_id)), FIRST_ENTRY_SEC, alive), (
        "no entry before the ban"
    )
    assert metric(metrics_url, WAIT) == 0.0
    errors_before = metric(metrics_url, ERRORS)

    sim.configure({"faults": ["ban"], "venues": ["upbit"]})
    t_on = time.time()
    assert wait_while_alive(lambda: sim.stats()["faulted"].get("ban", 0) > 0, 5, alive), (
        "the engine never asked"
    )
    t_hit = time.time()
    assert wait_while_alive(lambda: metric(metrics_url, WAIT) > 0.0, 2, alive)
    assert metric(metrics_url, WAIT) <= RETRY_AFTER_SEC
    assert wait_while_alive(lambda: metric(metrics_url, ERRORS) > errors_before, 2, alive), (
        "the banned tick never ended"
    )
    at_ban = asked(sim)
    assert not wait_while_alive(
        lambda: asked(sim) != at_ban, t_hit + RETRY_AFTER_SEC - 0.3 - time.time(), alive
    )
    during = asked(sim)
    sim.configure({"faults": [], "venues": None})
    lifted = metric(metrics_url, TICKS)
    assert wait_while_alive(lambda: metric(metrics_url, TICKS) >= lifted + 2, 60, alive), (
        "no tick after the ban"
    )
    return t_on, t_hit, at_ban, during
