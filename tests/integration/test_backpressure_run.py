"""One `arbitrage run --market ccxt` while the simulator bans it: no request, no entry, the wait reported.

The simulator's own counters say whether the engine asked during the ban, PostgreSQL says
whether it traded, and the engine's metrics endpoint and kpi.json must show the wait.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage.services import EmbeddedServices, ServiceEndpoints
from harness.exchange_sim.client import SimProcess, start_exchange_sim

pytestmark = [pytest.mark.slow, pytest.mark.integration]

RUN_SECONDS = 24
RETRY_AFTER_SEC = 4
TICK_MARGIN_SEC = 1.0
"""A tick already in flight when the ban starts may still trade on the books it fetched before it."""
ROUTES = ("/v1/orderbook", "/api/v3/depth")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoints]:
    embedded = EmbeddedServices(tmp_path_factory.mktemp("backpressure_run") / "svc")
    try:
        yield embedded.resolve(None, None)
    finally:
        embedded.stop()


def wait_for(condition: Callable[[], bool], seconds: float, alive: Callable[[], bool]) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and alive():
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def entry_times(dsn: str) -> list[float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT created_at FROM trade_legs WHERE leg = 'entry'").fetchall()
    return [created.timestamp() for (created,) in rows if isinstance(created, datetime)]


def printed(out: Path, prefix: str) -> str | None:
    for line in out.read_text().splitlines():
        if line.startswith(prefix):
            return line.removeprefix(prefix)
    return None


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not served")


WAIT = "arbitrage_rate_limit_wait_seconds"
ERRORS = "arbitrage_exchange_errors_total"


def asked(sim: SimProcess) -> dict[str, int]:
    requests: dict[str, Any] = sim.stats()["requests"]
    return {route: int(requests.get(route, 0)) for route in ROUTES}


def test_engine_waits_out_a_ban_without_asking_or_trading(services: ServiceEndpoints, tmp_path: Path) -> None:
    sim = start_exchange_sim(
        "--seed", "3", "--premium-half-life-sec", "1", "--retry-after-sec", str(RETRY_AFTER_SEC)
    )
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [
        sys.executable, "-m", "arbitrage", "run", "--market", "ccxt", "--exchange-url", sim.url,
        "--duration", f"{RUN_SECONDS}s", "--seed", "3", "--heartbeat-interval", "5", "--metrics-port", "0",
        "--evidence-root", str(tmp_path / "evidence"), "--postgres-dsn", services.postgres_dsn,
        "--redis-url", services.redis_url,
    ]  # fmt: skip
    env = {
        **os.environ,
        "ARB_WARN_POLICY": "continue",
        "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "2.6",
        "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "2.4",
    }
    with stdout.open("wb") as out, stderr.open("wb") as err:
        engine = subprocess.Popen(command, stdout=out, stderr=err, env=env)
    alive = lambda: engine.poll() is None  # noqa: E731
    try:
        assert wait_for(lambda: printed(stdout, "metrics: ") is not None, 30, alive), stderr.read_text()
        metrics_url = printed(stdout, "metrics: ")
        assert metrics_url is not None
        assert wait_for(lambda: bool(entry_times(services.postgres_dsn)), 30, alive), (
            "no entry before the ban"
        )
        assert metric(metrics_url, WAIT) == 0.0
        errors_before = metric(metrics_url, ERRORS)

        sim.configure({"faults": ["ban"]})
        t_on = time.time()
        assert wait_for(lambda: sim.stats()["faulted"].get("ban", 0) > 0, 5, alive), "the engine never asked"
        t_hit = time.time()
        assert wait_for(lambda: metric(metrics_url, WAIT) > 0.0, 2, alive)
        assert metric(metrics_url, WAIT) <= RETRY_AFTER_SEC
        assert wait_for(lambda: metric(metrics_url, ERRORS) > errors_before, 2, alive), (
            "the banned tick never ended"
        )
        at_ban = asked(sim)
        assert not wait_for(lambda: asked(sim) != at_ban, t_hit + RETRY_AFTER_SEC - 0.3 - time.time(), alive)
        during = asked(sim)
        sim.configure({"faults": []})
        engine.wait(timeout=RUN_SECONDS + 60)
    finally:
        if engine.poll() is None:
            engine.kill()
        sim.stop()

    assert during == at_ban, f"asked during the ban: {at_ban} -> {during}"
    assert engine.returncode == 1, stderr.read_text()[-2000:]
    assert "Traceback" not in stderr.read_text()
    evidence = Path(printed(stdout, "evidence: ") or "")
    kpi = json.loads((evidence / "kpi.json").read_text())
    upbit = kpi["rate_limit"]["upbit"]
    assert upbit["hits"] >= 1 and upbit["backoffs"] >= 1 and upbit["last_status"] == 418, kpi["rate_limit"]
    assert upbit["last_retry_after_sec"] == RETRY_AFTER_SEC, kpi["rate_limit"]
    assert upbit["wait_seconds"] >= RETRY_AFTER_SEC - 0.5, kpi["rate_limit"]
    assert upbit["refused_requests"] >= 4, kpi["rate_limit"]
    assert kpi["market_errors"].get("DDoSProtection", 0) >= upbit["refused_requests"], kpi["market_errors"]
    inside = [
        round(t - t_on, 2)
        for t in entry_times(services.postgres_dsn)
        if t_on + TICK_MARGIN_SEC <= t <= t_hit + RETRY_AFTER_SEC
    ]
    assert not inside, f"entries {inside} s into the ban"
