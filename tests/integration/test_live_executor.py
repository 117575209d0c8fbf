"""`LiveExecutor` over real ccxt and real HTTP against an `arbitrage sim` subprocess.

The simulator verifies every signature and keeps every order it filled, so these tests check
what a venue would see: the signed orders of an armed run, none at all from a blocked one, and
the unwind that follows a refused second leg.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from arbitrage.config import StrategyConfig
from arbitrage.execution import LegFailure, LegFill, PairFill, Rejected
from arbitrage.live_execution import LiveExecutor
from arbitrage.live_orders import LiveExitError
from arbitrage.market.book import MarketSnapshot
from arbitrage.market.ccxt_source import CcxtSource
from arbitrage.ops.live_arm import LiveKeys
from arbitrage.order_lookup import Deadline, no_deadline
from arbitrage.stop_request import StopRequest
from arbitrage.strategy import Direction, EntryIntent, ExitIntent, OpenPosition, entry_quote, exit_quote
from harness.exchange_sim.client import SimProcess, start_exchange_sim

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC", "ETH"]
QTY = 0.002
FEES = (0.0005, 0.001)
TEST_KEYS = {
    "UPBIT_ACCESS_KEY": "sim-upbit-access",
    "UPBIT_SECRET_KEY": "sim-upbit-secret",
    "BINANCE_API_KEY": "sim-binance-key",
    "BINANCE_API_SECRET": "sim-binance-secret",
}


SIM_ARGS = ("--seed", "11", "--symbols", "BTC,ETH")


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with start_exchange_sim(*SIM_ARGS) as started:
        yield started


@pytest.fixture
def source(sim: SimProcess) -> Iterator[CcxtSource]:
    src = CcxtSource(SYMBOLS, sim.url)
    try:
        yield src
    finally:
        src.close()


def executor(
    sim: SimProcess,
    source: CcxtSource,
    blocked: bool = False,
    stop_deadline: Deadline = no_deadline,
    **key_overrides: str,
) -> LiveExecutor:
    keys = LiveKeys.from_env({**TEST_KEYS, **key_overrides})
    return LiveExecutor(
        StrategyConfig(), keys, lambda: blocked, exchange_url=sim.url, listings=source.listings(),
        stop_deadline=stop_deadline,
    )  # fmt: skip


def entry(snapshot: MarketSnapshot, direction: Direction = "upbit_rich") -> EntryIntent:
    quote = entry_quote(snapshot, "BTC", direction, QTY, FEES)
    assert quote is not None
    return EntryIntent(quote)


def exit_intent(source: CcxtSource, direction: Direction, tick: int, reason: str = "threshold") -> ExitIntent:
    """The exit of the BTC position `entry` opened at `tick`, priced on a fresh snapshot."""
    position = OpenPosition("BTC", direction, QTY, tick)
    quote = exit_quote(source.snapshot(), position, FEES)
    assert quote is not None
    return ExitIntent(position, quote, reason)


def enter_faulted_then_healed(
    live: LiveExecutor, source: CcxtSource, sim: SimProcess, healed: dict[str, Any]
) -> tuple[PairFill | LegFailure | Rejected, PairFill | LegFailure | Rejected]:
    """An entry under the simulator's current faults, then another once `healed` is applied; the
    executor is closed after."""
    try:
        snapshot = source.snapshot()
        faulted = live.enter(entry(snapshot), snapshot)
        sim.configure(healed)
        return faulted, live.enter(entry(snapshot), snapshot)
    finally:
        live.close()


def assert_recorded(order: dict[str, Any], leg: LegFill) -> None:
    assert (order["venue"], order["side"], order["id"]) == (leg.venue, leg.side, leg.order_id)
    assert order["qty"] == pytest.approx(leg.qty, rel=1e-9)
    assert order["avg_price"] == pytest.approx(leg.vwap, rel=1e-9)
    assert order["fee"] == pytest.approx(leg.fee, rel=1e-6)


@pytest.mark.parametrize("direction", ["upbit_rich", "binance_rich"])
def test_armed_round_trip_places_signed_orders_the_ledger_matches(
    sim: SimProcess, source: CcxtSource, direction: Direction
) -> None:
    live = executor(sim, source)
    try:
        snapshot = source.snapshot()
        opened = live.enter(entry(snapshot, direction), snapshot)
        assert isinstance(opened, PairFill), opened
        closing = exit_intent(source, direction, snapshot.tick)
        closed = live.exit(closing, opened)
    finally:
        live.close()
    stats = sim.stats()
    assert stats["private_requests"] == {"GET /v1/order": 2, "POST /api/v3/order": 2, "POST /v1/orders": 2}
    orders = stats["orders"]
    assert len(orders) == 4
    for order, leg in zip(orders, (opened.binance, opened.upbit, closed.binance, closed.upbit), strict=True):
        assert_recorded(order, leg)
    assert opened.binance.qty == pytest.approx(QTY)
    assert opened.upbit.qty == pytest.approx(QTY, rel=0.01)
    if direction == "binance_rich":
        assert closed.upbit.qty == pytest.approx(opened.upbit.qty, rel=1e-9), "the exit sells what was bought"
    else:
        # An Upbit market buy spends KRW (ord_type=price): the KRW asked is spent, to the venue's
        # 1e-8 quantity step, and the quantity is what the book gives for it when the order lands,
        # so it may differ from the quantity sold (the remainder reconciliation has to report).
        asked = opened.upbit.qty * closing.quote.upbit_vwap_krw
        assert closed.upbit.notional == pytest.approx(asked, rel=1e-5)
        assert closed.upbit.qty == pytest.approx(opened.upbit.qty, rel=0.01)
    assert {opened.binance.side, closed.binance.side} == {"buy", "sell"}
    assert {opened.upbit.side, closed.upbit.side} == {"buy", "sell"}


def test_the_time_spent_on_order_round_trips_is_counted_as_venue_wait(
    sim: SimProcess, source: CcxtSource
) -> None:
    live = executor(sim, source)
    try:
        snapshot = source.snapshot()
        assert live.venue_wait_ms == 0.0
        sim.configure({"latency_ms": 100})
        opened = live.enter(entry(snapshot), snapshot)
        waited = live.venue_wait_ms
    finally:
        live.close()
        sim.clear()
    assert isinstance(opened, PairFill), opened
    answered = sum(sim.private_requests().values())
    assert answered >= 3 and waited >= 100.0 * answered, (answered, waited)


def test_a_stopping_run_opens_nothing_and_still_closes_what_it_holds(
    sim: SimProcess, source: CcxtSource
) -> None:
    stop = StopRequest()
    live = executor(sim, source, stop_deadline=lambda: stop.deadline(60.0))
    try:
        snapshot = source.snapshot()
        opened = live.enter(entry(snapshot), snapshot)
        assert isinstance(opened, PairFill), opened
        stop.request("SIGTERM")
        refused = live.enter(entry(snapshot, "binance_rich"), snapshot)
        closed = live.exit(exit_intent(source, "upbit_rich", snapshot.tick, "flatten"), opened)
    finally:
        live.close()
    assert isinstance(refused, Rejected) and refused.kind == "stopping", refused
    assert isinstance(closed, PairFill), closed
    posted = {k: v for k, v in sim.private_requests().items() if k.startswith("POST")}
    assert posted == {"POST /api/v3/order": 2, "POST /v1/orders": 2}, "the refused entry sent nothing"


def test_wrong_binance_secret_is_rejected_and_nothing_opens(sim: SimProcess, source: CcxtSource) -> None:
    live = executor(sim, source, BINANCE_API_SECRET="not-the-secret")
    try:
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
    finally:
        live.close()
    assert isinstance(result, Rejected), result
    assert "-1022" in result.reason and "not-the-secret" not in result.reason
    stats = sim.stats()
    assert stats["private_requests"] == {"POST /api/v3/order": 1}
    assert stats["orders"] == []


def test_wrong_upbit_key_fails_the_second_leg_and_unwinds_the_first(
    sim: SimProcess, source: CcxtSource
) -> None:
    live = executor(sim, source, UPBIT_ACCESS_KEY="someone-else")
    try:
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
    finally:
        live.close()
    assert isinstance(result, LegFailure), result
    assert result.failed_venue == "upbit" and "invalid_access_key" in result.reason
    assert result.unwind is not None
    stats = sim.stats()
    assert stats["private_requests"] == {"POST /api/v3/order": 2, "POST /v1/orders": 1}
    first, unwind = stats["orders"]
    assert_recorded(first, result.filled)
    assert_recorded(unwind, result.unwind)
    assert unwind["side"] != first["side"] and unwind["qty"] == pytest.approx(first["qty"])


def test_kill_switch_blocking_sends_no_private_request(sim: SimProcess, source: CcxtSource) -> None:
    live = executor(sim, source, blocked=True)
    try:
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
    finally:
        live.close()
    assert isinstance(result, Rejected) and "kill switch" in result.reason
    stats = sim.stats()
    assert stats["private_requests"] == {}
    assert stats["orders"] == []
    served = set(stats["requests"])
    assert not served & {"/api/v3/order", "/v1/orders", "/v1/order"}
    assert not any(path.startswith("/sapi") for path in served)


def test_refused_second_leg_records_the_unwind_order(sim: SimProcess, source: CcxtSource) -> None:
    sim.configure({"reject_orders": ["upbit"]})
    live = executor(sim, source)
    try:
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot, "binance_rich"), snapshot)
    finally:
        live.close()
    assert isinstance(result, LegFailure), result
    assert "insufficient_funds_bid" in result.reason
    assert result.unwind is not None
    orders = sim.stats()["orders"]
    assert [(o["venue"], o["side"]) for o in orders] == [("binance", "sell"), ("binance", "buy")]
    assert_recorded(orders[1], result.unwind)


def test_refused_exit_leg_raises_with_the_leg_that_filled(sim: SimProcess, source: CcxtSource) -> None:
    live = executor(sim, source)
    try:
        snapshot = source.snapshot()
        opened = live.enter(entry(snapshot), snapshot)
        assert isinstance(opened, PairFill), opened
        sim.configure({"reject_orders": ["upbit"]})
        with pytest.raises(LiveExitError) as failure:
            live.exit(exit_intent(source, "upbit_rich", snapshot.tick), opened)
    finally:
        live.close()
    assert failure.value.failed_venue == "upbit"
    assert failure.value.filled is not None
    assert_recorded(sim.stats()["orders"][-1], failure.value.filled)


def test_sim_key_options_replace_the_default_test_keys() -> None:
    server = start_exchange_sim(*SIM_ARGS, "--api-key", "ci-binance-key", "--api-secret", "ci-binance-secret")
    try:
        src = CcxtSource(SYMBOLS, server.url)
        try:
            snapshot = src.snapshot()
            refused = executor(server, src)
            try:
                result = refused.enter(entry(snapshot), snapshot)
            finally:
                refused.close()
            accepted = executor(
                server, src, BINANCE_API_KEY="ci-binance-key", BINANCE_API_SECRET="ci-binance-secret"
            )
            try:
                filled = accepted.enter(entry(snapshot), snapshot)
            finally:
                accepted.close()
        finally:
            src.close()
        stats = server.stats()
    finally:
        server.stop()
    assert isinstance(result, Rejected) and "-2015" in result.reason
    assert isinstance(filled, PairFill), filled
    assert stats["private_requests"]["POST /api/v3/order"] == 2
    assert [o["venue"] for o in stats["orders"]] == ["binance", "upbit"]


@pytest.mark.allow_log("ERROR", r"^unwind of BTC \S+ failed: ", count=1)
def test_an_unwind_the_venue_refuses_leaves_the_leg_named_and_stops_entries(
    sim: SimProcess, source: CcxtSource
) -> None:
    """The second leg is refused and so is the unwind of the first: the first leg is open exposure
    that no position holds. The executor reports it (`on_unhedged`) and opens nothing more."""
    heard: list[tuple[str, LegFill, str]] = []
    live = LiveExecutor(
        StrategyConfig(), LiveKeys.from_env(TEST_KEYS), lambda: False, exchange_url=sim.url,
        listings=source.listings(), on_unhedged=lambda *told: heard.append(told),
    )  # fmt: skip
    sim.configure({"reject_orders": ["upbit"], "reject_after": {"binance": 1}})
    result, later = enter_faulted_then_healed(live, source, sim, {"reject_orders": [], "reject_after": None})
    assert isinstance(result, LegFailure) and result.unwind is None, result
    [first] = sim.stats()["orders"]
    assert first["venue"] == "binance" and result.filled.order_id == first["id"]
    [(symbol, leg, refusal)] = heard
    assert (symbol, leg) == ("BTC", result.filled) and "insufficient balance" in refusal, refusal
    assert live.unhedged == [result.filled]
    assert isinstance(later, Rejected) and later.kind == "unhedged" and first["id"] in later.reason, later
    assert sim.private_requests()["POST /api/v3/order"] == 2, "nothing sent after the unhedged leg"
