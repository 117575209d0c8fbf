"""`CcxtSource` over real ccxt and real HTTP against an `arbitrage sim` subprocess.

Every failure a venue can produce must reach the engine as `MarketDataError` named after the
ccxt exception class, and every bad book must reach it as a book `book_rejection` refuses, so
the engine can count both and never trade on either. (ccxt's async client reports refused and
reset connections as ExchangeNotAvailable; it raises a bare NetworkError for nothing the
simulator can provoke, so that class is covered by the same by-name mapping, not by a case here.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from arbitrage.market.ccxt_source import CcxtSource
from arbitrage.market.source import MarketDataError, book_rejection
from arbitrage.market.universe import FX_SYMBOL, top_n
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.ports import refused_port

pytestmark = pytest.mark.integration

SYMBOLS = top_n(10)
FEW = ("BTC", "ETH")
"""The fault cases' universe: ccxt's rate limiter spaces Binance's per-symbol depth requests 50 ms
apart, so a tick of ten symbols takes 0.5 s and one of two 0.1 s; what a fault turns into does not
depend on how many symbols share the tick."""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with start_exchange_sim("--seed", "5") as started:
        yield started


HEALTHY: dict[str, Any] = {
    "faults": [], "latency_ms": 0, "error_rate": 0.0, "markets": None, "venues": None, "retry_after_sec": 0,
}  # fmt: skip
"""A healthy simulator; its 429/418 ask for no wait, so these tests see every answer's class
(back-off itself is tested in test_backpressure.py)."""


@pytest.fixture
def source(sim: SimProcess) -> Iterator[CcxtSource]:
    sim.configure(HEALTHY)
    src = CcxtSource(FEW, sim.url, timeout_sec=1.0, tick_interval_sec=0.5)
    try:
        yield src
    finally:
        src.close()
        sim.configure(HEALTHY)


def _rejections(snapshot: Any, max_age_ms: int = 5000) -> dict[str, str | None]:
    now_ms = int(time.time() * 1000)
    books = {f"upbit:{FX_SYMBOL}": snapshot.fx}
    books.update({f"upbit:{s}": b for s, b in snapshot.upbit.items()})
    books.update({f"binance:{s}": b for s, b in snapshot.binance.items()})
    return {name: book_rejection(book, now_ms, max_age_ms) for name, book in books.items()}


def test_healthy_ticks_one_upbit_request_and_one_depth_per_symbol(sim: SimProcess) -> None:
    sim.configure(HEALTHY)
    source = CcxtSource(SYMBOLS, sim.url, timeout_sec=1.0, tick_interval_sec=0.5)
    try:
        before = sim.stats()["requests"]
        snapshots = [source.snapshot() for _ in range(3)]
        after = sim.stats()["requests"]
    finally:
        source.close()

    def delta(route: str) -> int:
        return int(after.get(route, 0) - before.get(route, 0))

    assert delta("/v1/orderbook") == 3
    assert delta("/api/v3/depth") == 3 * len(SYMBOLS)
    assert delta("/v1/market/all") == 1 and delta("/api/v3/exchangeInfo") == 1
    assert [s.tick for s in snapshots] == sorted({s.tick for s in snapshots})
    for snapshot in snapshots:
        assert set(snapshot.upbit) == set(snapshot.binance) == set(SYMBOLS)
        assert all(reason is None for reason in _rejections(snapshot).values())
        assert 1300.0 < snapshot.krw_per_usdt < 1460.0


def test_cached_listing_skips_loading_markets(sim: SimProcess, source: CcxtSource) -> None:
    source.snapshot()
    before = sim.stats()["requests"]
    second = CcxtSource(FEW, sim.url, timeout_sec=1.0, listings=source.listings())
    try:
        assert set(second.snapshot().upbit) == set(FEW)
    finally:
        second.close()
    after = sim.stats()["requests"]
    for route in ("/v1/market/all", "/api/v3/exchangeInfo"):
        assert after[route] == before[route], route


@pytest.mark.parametrize(
    ("update", "kind"),
    [
        ({"faults": ["rate_limit"]}, "RateLimitExceeded"),
        ({"faults": ["rate_limit"], "venues": ["binance"]}, "DDoSProtection"),
        ({"faults": ["ban"]}, "DDoSProtection"),
        ({"faults": ["ban"], "venues": ["binance"]}, "DDoSProtection"),
        ({"faults": ["server_error"]}, "ExchangeNotAvailable"),
        ({"error_rate": 1.0}, "ExchangeNotAvailable"),
        ({"faults": ["timeout"]}, "RequestTimeout"),
        ({"faults": ["timeout"], "venues": ["binance"]}, "RequestTimeout"),
        ({"faults": ["bad_json"]}, "BadResponse"),
        ({"faults": ["bad_json"], "venues": ["binance"]}, "BadResponse"),
    ],
)
def test_venue_failures_raise_market_data_error_by_ccxt_class(
    update: dict[str, Any], kind: str, sim: SimProcess, source: CcxtSource
) -> None:
    source.snapshot()
    sim.configure(update)
    for _ in range(2):
        with pytest.raises(MarketDataError) as failure:
            source.snapshot()
        assert failure.value.kind == kind, failure.value.message
        assert "\n" not in failure.value.message
    sim.configure({"faults": [], "error_rate": 0.0, "venues": None})
    assert all(reason is None for reason in _rejections(source.snapshot()).values())


def test_failure_while_loading_markets_is_retried_next_tick(sim: SimProcess) -> None:
    sim.configure({"faults": ["server_error"]})
    src = CcxtSource(FEW, sim.url, timeout_sec=1.0)
    try:
        with pytest.raises(MarketDataError) as failure:
            src.snapshot()
        assert failure.value.kind == "ExchangeNotAvailable"
        sim.configure({"faults": []})
        assert set(src.snapshot().binance) == set(FEW)
    finally:
        src.close()
        sim.configure({"faults": []})


def test_unreachable_exchange_is_exchange_not_available() -> None:
    src = CcxtSource(FEW, f"http://127.0.0.1:{refused_port()}", timeout_sec=1.0)
    try:
        with pytest.raises(MarketDataError) as failure:
            src.snapshot()
        assert failure.value.kind == "ExchangeNotAvailable"
    finally:
        src.close()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("crossed", "crossed"),
        ("empty", "empty"),
        ("nan", "non_finite"),
        ("negative", "non_finite"),
        ("halted", "empty"),
    ],
)
def test_bad_books_surface_for_rejection(
    fault: str, reason: str, sim: SimProcess, source: CcxtSource
) -> None:
    source.snapshot()
    sim.configure({"faults": [fault], "markets": ["BTC", FX_SYMBOL]})
    rejections = _rejections(source.snapshot())
    bad = {name for name, why in rejections.items() if why is not None}
    assert bad == {"upbit:BTC", "binance:BTC", f"upbit:{FX_SYMBOL}"}
    assert {rejections[name] for name in bad} == {reason}


def test_stale_books_age_from_the_freeze(sim: SimProcess, source: CcxtSource) -> None:
    source.snapshot()
    sim.configure({"faults": ["stale"], "markets": ["ETH"]})
    frozen_at = time.time()
    deadline = frozen_at + 10.0
    rejections = _rejections(source.snapshot(), max_age_ms=1500)
    while rejections["binance:ETH"] is None and time.time() < deadline:
        rejections = _rejections(source.snapshot(), max_age_ms=1500)
    assert time.time() - frozen_at >= 1.0
    assert rejections["upbit:ETH"] == rejections["binance:ETH"] == "stale"
    assert sum(why is not None for why in rejections.values()) == 2


def test_sim_prints_its_url_first_and_exits_0_on_sigterm() -> None:
    server = start_exchange_sim(
        "--seed", "1", "--symbols", "BTC,ETH", "--fault", "crossed", "--latency-ms", "5"
    )
    try:
        stats = server.stats()
        assert (stats["faults"], stats["latency_ms"]) == (["crossed"], 5)
    finally:
        assert server.stop() == 0
