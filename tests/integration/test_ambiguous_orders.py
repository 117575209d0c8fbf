"""Ambiguous order outcomes against `arbitrage sim`, resolved by client order id.

The simulator produces each case for real: "lost_reply" books and fills the order, then closes
the connection without an answer; "lost_order" drops the request before booking it;
"lookup_down" answers every order lookup 503 (fill polls among them); "late_fill" answers a
filled Binance order as accepted with nothing executed (NEW). The executor runs
real ccxt over HTTP; what it books is compared with the orders the simulator kept.
"""

from __future__ import annotations

from typing import Any

import pytest

from arbitrage.config import StrategyConfig
from arbitrage.config.live import DEFAULT_FILL_TIMEOUT_SEC
from arbitrage.execution import LegFailure, PairFill, Rejected
from arbitrage.live_execution import LiveExecutor
from arbitrage.live_orders import LiveExitError
from arbitrage.market.ccxt_source import CcxtSource
from arbitrage.ops.live_arm import LiveKeys
from arbitrage.order_lookup import BUDGET_SPENT, LookupPolicy, Resolution
from harness.exchange_sim.client import SimProcess
from tests.integration.test_live_executor import (
    TEST_KEYS,
    assert_recorded,
    enter_faulted_then_healed,
    entry,
    exit_intent,
    sim,
    source,
)

__all__ = ["sim", "source"]

pytestmark = pytest.mark.integration

QUICK_LOOKUP = LookupPolicy(budget_sec=1.0, interval_sec=0.2)


def executor(
    sim: SimProcess,
    source: CcxtSource,
    heard: list[Resolution],
    fill_timeout_sec: float = DEFAULT_FILL_TIMEOUT_SEC,
) -> LiveExecutor:
    return LiveExecutor(
        StrategyConfig(), LiveKeys.from_env(TEST_KEYS), lambda: False, exchange_url=sim.url,
        listings=source.listings(), lookup=QUICK_LOOKUP, on_lookup=heard.append,
        fill_timeout_sec=fill_timeout_sec,
    )  # fmt: skip


def round_trip(live: LiveExecutor, source: CcxtSource) -> tuple[PairFill, PairFill]:
    """A BTC entry and its exit under the simulator's current faults; the executor is closed after."""
    try:
        snapshot = source.snapshot()
        opened = live.enter(entry(snapshot, "binance_rich"), snapshot)
        assert isinstance(opened, PairFill), opened
        return opened, live.exit(exit_intent(source, "binance_rich", snapshot.tick), opened)
    finally:
        live.close()


def assert_round_trip_recorded(orders: list[dict[str, Any]], opened: PairFill, closed: PairFill) -> None:
    """The simulator booked exactly the round trip's four orders, each as the executor booked its leg."""
    assert [o["venue"] for o in orders] == ["binance", "upbit", "binance", "upbit"]
    for order, leg in zip(orders, (opened.binance, opened.upbit, closed.binance, closed.upbit), strict=True):
        assert_recorded(order, leg)
        assert order["fee"] > 0.0


def test_booked_orders_whose_replies_are_lost_are_found_and_booked_with_their_real_fills(
    sim: SimProcess, source: CcxtSource
) -> None:
    sim.configure({"faults": ["lost_reply"]})
    heard: list[Resolution] = []
    live = executor(sim, source, heard)
    opened, closed = round_trip(live, source)
    stats = sim.stats()
    assert stats["faulted"]["lost_reply"] == 4
    orders = stats["orders"]
    assert_round_trip_recorded(orders, opened, closed)
    assert [(r.venue, r.outcome, r.attempts) for r in heard] == [
        ("binance", "placed", 1), ("upbit", "placed", 1), ("binance", "placed", 1), ("upbit", "placed", 1),
    ]  # fmt: skip
    assert [r.order_id for r in heard] == [o["id"] for o in orders]
    assert [r.client_order_id for r in heard] == [o["client_id"] for o in orders]
    assert live.unknown == []


def test_an_order_lost_before_booking_is_proven_absent_and_counted_as_refused(
    sim: SimProcess, source: CcxtSource
) -> None:
    sim.configure({"faults": ["lost_order"], "venues": ["binance"]})
    heard: list[Resolution] = []
    live = executor(sim, source, heard)
    try:
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
    finally:
        live.close()
    assert isinstance(result, Rejected) and result.kind == "refused", result
    assert "not placed" in result.reason
    assert sim.stats()["orders"] == []
    assert [(r.outcome, r.attempts) for r in heard] == [("absent", 2)]
    assert sim.private_requests()["GET /api/v3/order"] == 2
    assert live.unknown == []


def test_an_order_that_cannot_be_looked_up_stays_unknown_and_stops_entries_and_its_exits(
    sim: SimProcess, source: CcxtSource
) -> None:
    heard: list[Resolution] = []
    live = executor(sim, source, heard)
    try:
        snapshot = source.snapshot()
        opened = live.enter(entry(snapshot), snapshot)
        assert isinstance(opened, PairFill), opened
        sim.configure({"faults": ["lost_reply", "lookup_down"], "venues": ["binance"]})
        second = live.enter(entry(snapshot, "binance_rich"), snapshot)
        assert isinstance(second, Rejected) and second.kind == "outcome_unknown", second
        booked = sim.stats()["orders"]
        sim.configure({"faults": [], "venues": None})
        before = sim.private_calls()
        third = live.enter(entry(snapshot), snapshot)
        with pytest.raises(LiveExitError) as refused_exit:
            live.exit(exit_intent(source, "upbit_rich", snapshot.tick), opened)
        after = sim.private_calls()
    finally:
        live.close()
    assert len(booked) == 3 and booked[-1]["venue"] == "binance", "the unknown order was booked"
    [resolution] = heard
    assert (resolution.outcome, resolution.venue, resolution.client_order_id) == (
        "unknown", "binance", booked[-1]["client_id"],
    )  # fmt: skip
    assert resolution.attempts >= 3 and "503" in (resolution.lookup_error or "")
    assert isinstance(third, Rejected) and third.kind == "outcome_unknown"
    assert refused_exit.value.filled is None and "unknown" in str(refused_exit.value)
    assert after == before, "nothing is sent after an unknown outcome but exits on other symbols"


def test_an_unknown_second_leg_unwinds_the_first_and_is_surfaced(sim: SimProcess, source: CcxtSource) -> None:
    sim.configure({"faults": ["lost_reply", "lookup_down"], "venues": ["upbit"]})
    heard: list[Resolution] = []
    live = executor(sim, source, heard)
    try:
        snapshot = source.snapshot()
        result = live.enter(entry(snapshot), snapshot)
    finally:
        live.close()
    assert isinstance(result, LegFailure), result
    assert result.unwind is not None and "outcome unknown" in result.reason
    orders = sim.stats()["orders"]
    assert [o["venue"] for o in orders] == ["binance", "upbit", "binance"]
    assert [(r.venue, r.outcome, r.client_order_id) for r in heard] == [
        ("upbit", "unknown", orders[1]["client_id"])
    ]
    assert_recorded(orders[2], result.unwind)


def test_a_lookup_slower_than_its_budget_is_abandoned_and_the_outcome_stays_unknown(
    sim: SimProcess, source: CcxtSource
) -> None:
    """A lookup request the venue has not answered when the budget is spent is not waited out to
    the client's 10 s timeout: the order is surfaced as unknown (it was booked), within the budget."""
    heard: list[Resolution] = []
    live = executor(sim, source, heard)
    try:
        snapshot = source.snapshot()
        sim.configure({"faults": ["lost_reply"], "venues": ["binance"], "latency_ms": 2000})
        result = live.enter(entry(snapshot), snapshot)
        sim.configure({"faults": [], "venues": None, "latency_ms": 0})
        booked = sim.stats()["orders"]
    finally:
        live.close()
    assert isinstance(result, Rejected) and result.kind == "outcome_unknown", result
    assert [o["venue"] for o in booked] == ["binance"], "the unanswered order was booked"
    [resolution] = heard
    assert (resolution.outcome, resolution.client_order_id, resolution.attempts) == (
        "unknown", booked[0]["client_id"], 1,
    )  # fmt: skip
    assert resolution.lookup_error == BUDGET_SPENT
    assert live.unknown != []


def test_a_placed_upbit_order_whose_fill_cannot_be_learnt_is_unknown_not_refused(
    sim: SimProcess, source: CcxtSource
) -> None:
    """Upbit answers a market order as accepted ("wait"), and its fill comes from polling the order.
    When every poll fails, the order was placed all the same (the simulator filled it): its outcome
    is unknown, surfaced and stopping entries, never a refusal that leaves its fill out of the books."""
    sim.configure({"faults": ["lookup_down"], "venues": ["upbit"]})
    heard: list[Resolution] = []
    live = executor(sim, source, heard, fill_timeout_sec=1.0)
    result, later = enter_faulted_then_healed(live, source, sim, {"faults": [], "venues": None})
    orders = sim.stats()["orders"]
    assert [o["venue"] for o in orders] == ["binance", "upbit", "binance"]
    assert orders[1]["qty"] > 0.0, "the simulator filled the Upbit order"
    assert isinstance(result, LegFailure) and "outcome unknown" in result.reason, result
    assert result.unwind is not None
    [resolution] = heard
    assert (resolution.venue, resolution.outcome, resolution.client_order_id, resolution.order_id) == (
        "upbit", "unknown", orders[1]["client_id"], orders[1]["id"],
    )  # fmt: skip
    assert resolution.create_error == "placed; its fill was not known within 1 s"
    assert resolution.attempts >= 2 and "503" in (resolution.lookup_error or "")
    assert isinstance(later, Rejected) and later.kind == "outcome_unknown", later


def test_a_binance_order_answered_before_its_fill_is_polled_and_booked_with_its_real_fill(
    sim: SimProcess, source: CcxtSource
) -> None:
    """Binance can answer a market order before its matching engine has filled it (NEW, nothing
    executed). That order is placed: it is polled until it is filled and booked with its real fill,
    never taken for a refusal that would unwind or drop a leg the venue holds."""
    sim.configure({"faults": ["late_fill"]})
    heard: list[Resolution] = []
    live = executor(sim, source, heard)
    opened, closed = round_trip(live, source)
    stats = sim.stats()
    assert stats["faulted"]["late_fill"] == 2
    orders = stats["orders"]
    assert_round_trip_recorded(orders, opened, closed)
    requests = sim.private_requests()
    assert requests["GET /api/v3/order"] == 2, "each NEW Binance order was polled once, by its id"
    assert requests["GET /api/v3/myTrades"] == 2, "and its fees read from its trades"
    assert heard == [] and live.unknown == []


def test_a_binance_order_answered_before_its_fill_whose_fill_cannot_be_learnt_is_unknown(
    sim: SimProcess, source: CcxtSource
) -> None:
    """The same NEW answer with every poll failing: the order is placed (the simulator filled it),
    so its outcome is unknown and no second leg is sent, never a refusal."""
    sim.configure({"faults": ["late_fill", "lookup_down"], "venues": ["binance"]})
    heard: list[Resolution] = []
    live = executor(sim, source, heard, fill_timeout_sec=1.0)
    result, later = enter_faulted_then_healed(live, source, sim, {"faults": [], "venues": None})
    orders = sim.stats()["orders"]
    assert [o["venue"] for o in orders] == ["binance"], "no Upbit leg follows an unknown first leg"
    assert orders[0]["qty"] > 0.0, "the simulator filled the Binance order"
    assert isinstance(result, Rejected) and result.kind == "outcome_unknown", result
    [resolution] = heard
    assert (resolution.venue, resolution.outcome, resolution.client_order_id, resolution.order_id) == (
        "binance", "unknown", orders[0]["client_id"], orders[0]["id"],
    )  # fmt: skip
    assert resolution.create_error == "placed; its fill was not known within 1 s"
    assert resolution.attempts >= 2 and "503" in (resolution.lookup_error or "")
    assert isinstance(later, Rejected) and later.kind == "outcome_unknown", later
