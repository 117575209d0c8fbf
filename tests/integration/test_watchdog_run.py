"""A venue that slows down drives the watchdog OK -> WARN -> ERROR -> CRITICAL, and the run stops itself.

The real engine trades over real ccxt against the local exchange simulator; the test raises the
simulator's latency in two steps and reads the verdicts back from the heartbeat lines.
"""

from __future__ import annotations

import json
import time

import pytest

from evidence.names import HEARTBEAT, METRICS_SNAPSHOT
from evidence.reader import read_jsonl
from harness.assertions import assert_db_invariant, assert_evidence_complete, assert_heartbeat_density
from harness.engine import EngineLauncher, EngineProcess
from harness.exchange_sim.client import SimProcess

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(180)]

LEVELS = ("OK", "WARN", "ERROR", "CRITICAL")
WARN_MS, ERROR_MS = 1000, 3000
"""The loop-latency thresholds, a third of the defaults, so the escalation takes seconds, not tens."""
SLOW_MS, SLOWER_MS = 1500, 4000
"""The two latency steps: a tick takes them plus 0.5 s (ccxt spaces the ten Binance requests), so the
first lands 1 s on either side of the thresholds' gap and the second 1.5 s past ERROR_MS, still under
the 5 s client timeout."""


def wait_for_level(run: EngineProcess, level: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    evidence = run.wait_for_evidence_dir(timeout)
    while time.monotonic() < deadline:
        beats = read_jsonl(evidence / HEARTBEAT).records
        if any(beat["watchdog"] == level for beat in beats):
            return
        run.wait_for_heartbeats(len(beats) + 1, timeout=max(1.0, deadline - time.monotonic()))
    pytest.fail(f"no heartbeat with watchdog {level} within {timeout:.0f}s\n{run.describe()}")


@pytest.mark.allow_log("WARNING", r"^watchdog OK -> WARN: loop_latency_ms")
@pytest.mark.allow_log("WARNING", r"^market data unavailable \(RequestTimeout")
@pytest.mark.allow_log("ERROR", r"^watchdog WARN -> ERROR")
@pytest.mark.allow_log("ERROR", r"left open at stop: last usable book is [\d.]+s old")
@pytest.mark.allow_log("CRITICAL", r"^watchdog ERROR -> CRITICAL after 3 consecutive ERROR")
def test_slow_venue_escalates_the_watchdog_to_a_graceful_stop(
    engine: EngineLauncher, exchange_sim: SimProcess, postgres_dsn: str
) -> None:
    env = {
        "ARB_WARN_POLICY": "continue",
        "ARB_WATCHDOG__EVALUATE_INTERVAL_SEC": "0.5",
        "ARB_WATCHDOG__LOOP_LATENCY_WARN_MS": str(WARN_MS),
        "ARB_WATCHDOG__LOOP_LATENCY_ERROR_MS": str(ERROR_MS),
    }
    run = engine(env=env).start(
        ["--market", "ccxt", "--exchange-url", exchange_sim.url, "--duration", "120s",
         "--heartbeat-interval", "1", "--seed", "7"]
    )  # fmt: skip
    run.wait_for_heartbeats(2, timeout=60)
    exchange_sim.set_faults(latency_ms=SLOW_MS)
    wait_for_level(run, "WARN", timeout=30)
    exchange_sim.set_faults(latency_ms=SLOWER_MS)
    assert run.wait(timeout=90) == 1, run.describe()

    bundle = run.evidence
    assert bundle.chain_summary is not None and bundle.kpi is not None
    assert bundle.chain_summary["stop_reason"] == "WATCHDOG_CRITICAL"
    seen = [beat["watchdog"] for beat in bundle.heartbeats]
    firsts = [seen.index(level) for level in LEVELS]
    assert firsts == sorted(firsts), f"levels out of order in the heartbeat: {seen}"
    assert seen[-1] == "CRITICAL"
    assert bundle.kpi["watchdog"]["max_level"] == "CRITICAL"
    assert_evidence_complete(bundle)
    assert_heartbeat_density(bundle)
    assert_db_invariant(bundle, postgres_dsn)
    scrape = (bundle.path / METRICS_SNAPSHOT).read_text()
    assert "arbitrage_watchdog_level 3.0" in scrape, scrape
    assert json.dumps(bundle.chain_summary["invariants"]["wallclock"]["passed"]) == "false"
