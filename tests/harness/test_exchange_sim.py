"""The ``exchange_sim`` fixture against the real ``arbitrage sim`` process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from harness.exchange_sim.client import SimProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _orderbook(sim: SimProcess) -> tuple[int, dict[str, object] | list[object]]:
    try:
        with urllib.request.urlopen(f"{sim.url}/v1/orderbook?markets=KRW-BTC", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_faults_are_reachable_from_a_test(exchange_sim: SimProcess) -> None:
    assert exchange_sim.url.startswith("http://127.0.0.1:")
    before = exchange_sim.stats()
    assert before["faults"] == []
    # The worker's simulator is shared: earlier tests on this worker may have read books from it.
    served_before = before["requests"].get("/v1/orderbook", 0)
    status, _ = _orderbook(exchange_sim)
    assert status == 200
    exchange_sim.set_faults(["rate_limit"], markets=["BTC"])
    status, body = _orderbook(exchange_sim)
    assert status == 429 and isinstance(body, dict) and "error" in body
    stats = exchange_sim.stats()
    assert stats["faults"] == ["rate_limit"]
    assert stats["requests"]["/v1/orderbook"] == served_before + 2
    exchange_sim.clear()
    assert _orderbook(exchange_sim)[0] == 200


def test_each_test_starts_with_a_healthy_exchange(
    exchange_sim_server: SimProcess, request: pytest.FixtureRequest
) -> None:
    exchange_sim_server.set_faults(["server_error"], latency_ms=5, error_rate=0.5)
    assert exchange_sim_server.stats()["error_rate"] == 0.5
    sim: SimProcess = request.getfixturevalue("exchange_sim")
    assert sim is exchange_sim_server
    stats = sim.stats()
    assert (stats["faults"], stats["latency_ms"], stats["error_rate"]) == ([], 0, 0.0)
