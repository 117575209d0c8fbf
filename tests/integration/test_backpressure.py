"""Venue back-pressure over real ccxt and real HTTP against an `arbitrage sim` subprocess.

The simulator's own request counters are the witness: while a venue is backed off after a 429
or 418, not one request reaches it, however often the engine ticks; after the wait the venue
is asked again. The waits show up in the back-off state's KPI and in the Prometheus gauge,
and an executor sharing that state places no order on a banned venue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage.config import RateLimitConfig, StrategyConfig
from arbitrage.execution import Rejected
from arbitrage.live_execution import LiveExecutor
from arbitrage.market.backoff import RateLimits
from arbitrage.market.ccxt_source import CcxtSource
from arbitrage.market.source import MarketDataError
from arbitrage.ops.live_arm import LiveKeys
from arbitrage.ops.metrics import EngineMetrics
from arbitrage.strategy import EntryIntent, entry_quote
from harness.exchange_sim.client import SimProcess, start_exchange_sim

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC", "ETH", "XRP"]
TICK_SEC = 0.1
"""The pace tests call `snapshot()` at: five times the engine's default, so a leak would show."""
ROUTES = ("/v1/orderbook", "/api/v3/depth", "/v1/market/all", "/api/v3/exchangeInfo")
SIM_KEYS = {
    "UPBIT_ACCESS_KEY": "sim-upbit-access",
    "UPBIT_SECRET_KEY": "sim-upbit-secret",
    "BINANCE_API_KEY": "sim-binance-key",
    "BINANCE_API_SECRET": "sim-binance-secret",
}


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimProcess]:
    with start_exchange_sim("--seed", "5", "--symbols", ",".join(SYMBOLS)) as started:
        yield started


@pytest.fixture
def sim(shared_sim: SimProcess) -> SimProcess:
    """The module's simulator, healthy again: each test brings its own source and back-off state."""
    shared_sim.configure({"faults": [], "venues": None, "retry_after_sec": 60})
    return shared_sim


def served(sim: SimProcess) -> dict[str, int]:
    requests = sim.stats()["requests"]
    return {route: int(requests.get(route, 0)) for route in ROUTES}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {route: after[route] - before[route] for route in ROUTES}


def poll(source: CcxtSource, keep_going: Callable[[], bool], deadline_sec: float) -> list[str]:
    """Tick like the engine, every TICK_SEC, while `keep_going()` (at most `deadline_sec`): each outcome."""
    outcomes: list[str] = []
    deadline = time.monotonic() + deadline_sec
    while keep_going() and time.monotonic() < deadline:
        try:
            source.snapshot()
            outcomes.append("ok")
        except MarketDataError as exc:
            outcomes.append(exc.kind)
        time.sleep(TICK_SEC)
    return outcomes


def for_seconds(seconds: float) -> Callable[[], bool]:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() < end


def wait_gauge(metrics: EngineMetrics) -> float:
    for family in text_string_to_metric_families(metrics.scrape()):
        for sample in family.samples:
            if sample.name == "arbitrage_rate_limit_wait_seconds":
                return float(sample.value)
    raise AssertionError("arbitrage_rate_limit_wait_seconds not exposed")


def test_429_then_418_are_waited_out_without_a_single_request(sim: SimProcess) -> None:
    limits = RateLimits(RateLimitConfig(base_sec=0.5, max_sec=10.0))
    metrics = EngineMetrics()
    metrics.follow_rate_limit_wait(limits.longest_wait)
    source = CcxtSource(SYMBOLS, sim.url, timeout_sec=2.0, rate_limits=limits)
    try:
        source.snapshot()
        assert wait_gauge(metrics) == 0.0

        sim.configure({"faults": ["rate_limit"], "retry_after_sec": 1})
        before = served(sim)
        limited = poll(source, for_seconds(2.5), 10.0)
        asked = delta(served(sim), before)
        rounds = asked["/v1/orderbook"]
        assert 1 <= rounds <= 3, (asked, limited)
        assert rounds <= asked["/api/v3/depth"] <= len(SYMBOLS) * rounds, asked
        assert len(limited) >= rounds + 3 and set(limited) == {"RateLimitExceeded"}, limited
        kpi = limits.kpi()
        assert kpi["upbit"]["hits"] == rounds and kpi["binance"]["hits"] == asked["/api/v3/depth"], kpi
        assert kpi["upbit"]["backoffs"] == kpi["binance"]["backoffs"] == rounds, kpi
        refused = kpi["upbit"]["refused_requests"] + kpi["binance"]["refused_requests"]
        assert refused >= len(limited) - rounds, kpi
        assert kpi["upbit"]["last_retry_after_sec"] == 1.0 and kpi["upbit"]["longest_wait_seconds"] == 1.0

        poll(source, lambda: limits.longest_wait() > 0.0, 5.0)
        assert limits.longest_wait() == 0.0
        sim.configure({"faults": ["ban"], "retry_after_sec": 3})
        with pytest.raises(MarketDataError) as banned:
            source.snapshot()
        assert banned.value.kind == "DDoSProtection", banned.value.message
        banned_at, at_ban = time.monotonic(), served(sim)
        assert 2.0 < wait_gauge(metrics) <= 3.0
        during = poll(source, lambda: limits.wait_left("upbit") > TICK_SEC, 10.0)
        held = time.monotonic() - banned_at
        assert delta(served(sim), at_ban) == dict.fromkeys(ROUTES, 0), (held, during)
        assert held >= 2.5 and len(during) >= 15 and set(during) == {"DDoSProtection"}, (held, during)
        assert "418" in banned.value.message, banned.value.message
        kpi = limits.kpi()
        assert kpi["upbit"]["last_status"] == kpi["binance"]["last_status"] == 418, kpi
        assert kpi["upbit"]["longest_wait_seconds"] == 3.0, kpi

        sim.configure({"faults": []})
        poll(source, lambda: limits.longest_wait() > 0.0, 5.0)
        before = served(sim)
        source.snapshot()
        assert delta(served(sim), before)["/v1/orderbook"] == 1
        kpi = limits.kpi()
        assert kpi["upbit"]["wait_seconds"] >= 3.0 + rounds * 1.0 - 0.5, kpi
        assert kpi["upbit"]["wait_left_seconds"] == 0.0 and wait_gauge(metrics) == 0.0
    finally:
        source.close()
        metrics.close()


def test_the_cap_bounds_a_long_retry_after_and_only_the_limited_venue_is_counted(sim: SimProcess) -> None:
    limits = RateLimits(RateLimitConfig(base_sec=0.2, max_sec=1.0))
    source = CcxtSource(SYMBOLS, sim.url, timeout_sec=2.0, rate_limits=limits)
    try:
        source.snapshot()
        sim.configure({"faults": ["ban"], "venues": ["binance"], "retry_after_sec": 30})
        before = served(sim)
        outcomes = poll(source, for_seconds(2.6), 10.0)
        asked = delta(served(sim), before)
        rounds = asked["/v1/orderbook"]
        assert 2 <= rounds <= 3, (asked, outcomes)
        assert rounds <= asked["/api/v3/depth"] <= len(SYMBOLS) * rounds
        assert set(outcomes) == {"DDoSProtection"}, outcomes
        kpi = limits.kpi()
        assert kpi["binance"]["last_retry_after_sec"] == 30.0, kpi
        assert kpi["binance"]["longest_wait_seconds"] == 1.0, kpi
        assert kpi["upbit"]["hits"] == 0 and kpi["upbit"]["refused_requests"] == 0, kpi
    finally:
        source.close()


def test_without_retry_after_the_waits_grow_exponentially(sim: SimProcess) -> None:
    limits = RateLimits(RateLimitConfig(base_sec=0.3, factor=2.0, max_sec=10.0))
    source = CcxtSource(SYMBOLS, sim.url, timeout_sec=2.0, rate_limits=limits)
    try:
        source.snapshot()
        sim.configure({"faults": ["rate_limit"], "venues": ["upbit"], "retry_after_sec": None})
        waits: list[float] = []
        deadline = time.monotonic() + 10.0
        while len(waits) < 3 and time.monotonic() < deadline:
            poll(source, lambda: limits.wait_left("upbit") > 0.0, 5.0)
            with pytest.raises(MarketDataError):
                source.snapshot()
            waits.append(limits.kpi()["upbit"]["longest_wait_seconds"])
        assert waits == [0.3, 0.6, 1.2]
        assert limits.kpi()["upbit"]["last_retry_after_sec"] is None
    finally:
        source.close()


def test_an_executor_sharing_the_state_places_no_order_on_a_banned_venue(sim: SimProcess) -> None:
    limits = RateLimits(RateLimitConfig(max_sec=5.0))
    source = CcxtSource(SYMBOLS, sim.url, timeout_sec=2.0, rate_limits=limits)
    live = LiveExecutor(
        StrategyConfig(), LiveKeys.from_env(SIM_KEYS), lambda: False, exchange_url=sim.url,
        listings=source.listings() if source.upbit.markets else None, rate_limits=limits,
    )  # fmt: skip
    try:
        snapshot = source.snapshot()
        quote = entry_quote(snapshot, "BTC", "upbit_rich", 0.002, (0.0005, 0.001))
        assert quote is not None
        sim.configure({"faults": ["ban"], "venues": ["binance"], "retry_after_sec": 5})
        with pytest.raises(MarketDataError):
            source.snapshot()
        orders_before = sim.private_calls()
        refused = live.enter(EntryIntent(quote), snapshot)
        assert isinstance(refused, Rejected), refused
        assert "binance: backing off" in refused.reason, refused.reason
        assert sim.private_calls() == orders_before
    finally:
        live.close()
        source.close()
