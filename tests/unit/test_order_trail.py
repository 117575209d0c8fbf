"""The order trail read back: which orders a run sent and never booked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from arbitrage.execution import LegFill
from arbitrage.live_orders import LiveOrderError
from arbitrage.order_trail import OrderTrail
from evidence.order_trail_rule import (
    UnbookedOrder,
    booked_order_ids,
    unbooked_orders,
    unhedged_legs,
    venue_order_fates,
)


def sent(client_id: str, venue: str = "binance", symbol: str = "BTC", side: str = "buy") -> tuple[str, Any]:
    return "ORDER_SENT", {"venue": venue, "symbol": symbol, "side": side, "amount": 0.002,
                          "client_order_id": client_id}  # fmt: skip


def done(client_id: str, fate: str, order_id: str | None = None) -> tuple[str, Any]:
    payload = {"venue": "binance", "client_order_id": client_id, "fate": fate, "order_id": order_id}
    return "ORDER_DONE", {**payload, "detail": ""}


def leg(order_id: str) -> dict[str, Any]:
    return {"venue": "binance", "side": "buy", "qty": 0.002, "vwap": 1.0, "fee": 0.0, "order_id": order_id}


def test_booking_events_name_the_order_ids_of_their_legs() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("TRADE_OPEN", {"order_ids": {"upbit": "u1", "binance": "b1", "upbit_qty": 0.002}}),
        ("LEG_UNWOUND", {"filled": leg("b2"), "unwind": leg("b3")}),
        ("LEG_UNWOUND", {"filled": leg("b4"), "unwind": None}),
        ("EXIT_FAILED", {"filled": leg("b5"), "filled_earlier": None}),
        ("ORDER_LOOKUP", {"order_id": "b6"}),
    ]
    assert booked_order_ids(events) == {"u1", "b1", "b2", "b3", "b4", "b5"}


def test_a_sent_order_with_no_fate_is_in_flight() -> None:
    assert unbooked_orders([sent("c1")]) == [UnbookedOrder("binance", "BTC", "buy", "c1", None)]


def test_a_filled_order_no_leg_carries_is_unbooked_and_a_booked_one_is_not() -> None:
    events = [
        sent("c1"), done("c1", "filled", "b1"),
        sent("c2", "upbit", side="sell"), done("c2", "filled", "u2"),
        ("TRADE_OPEN", {"order_ids": {"upbit": "u9", "binance": "b1", "upbit_qty": 0.002}}),
    ]  # fmt: skip
    assert unbooked_orders(events) == [UnbookedOrder("upbit", "BTC", "sell", "c2", "u2")]
    assert (
        unbooked_orders(events)[0].describe()
        == "upbit sell BTC client order id c2 (filled as order u2, not booked)"
    )


def test_a_first_leg_never_unwound_is_listed_as_such_and_an_unwound_one_is_not() -> None:
    """Its LEG_UNWOUND books it, but no position of the run closes it: the run stopped with
    UNHEDGED_LEG and set the kill switch, an activation that can fail with the database."""
    events = [
        sent("c1"), done("c1", "filled", "b1"), sent("c2", "upbit"), done("c2", "refused"),
        sent("c3"), done("c3", "refused"),
        ("LEG_UNWOUND", {"symbol": "BTC", "filled": leg("b1"), "unwind": None}),
        sent("c4"), done("c4", "filled", "b4"), sent("c5"), done("c5", "filled", "b5"),
        ("LEG_UNWOUND", {"symbol": "BTC", "filled": leg("b4"), "unwind": leg("b5")}),
    ]  # fmt: skip
    assert unbooked_orders(events) == []
    assert unhedged_legs(events) == [UnbookedOrder("binance", "BTC", "buy", "c1", "b1", unhedged=True)]
    assert unhedged_legs(events)[0].describe() == (
        "binance buy BTC client order id c1 (filled as order b1, never unwound)"
    )


def test_a_refused_order_is_not_listed_and_one_of_unknown_outcome_is() -> None:
    """A refusal left nothing on the venue. An unknown outcome stopped its run and set the kill
    switch, but that activation can fail with the database, so the trail names it too."""
    events = [sent("c1"), done("c1", "refused"), sent("c2"), done("c2", "unknown", "b2"), sent("c3"),
              done("c3", "unknown")]  # fmt: skip
    assert [order.describe() for order in unbooked_orders(events)] == [
        "binance buy BTC client order id c2 (outcome unknown, order b2)",
        "binance buy BTC client order id c3 (outcome unknown)",
    ]


def fill(order_id: str) -> LegFill:
    return LegFill("binance", "buy", 0.002, 100.0, 0.2, 0.0002, order_id)


def test_the_trail_records_each_sent_order_and_its_fate_under_one_client_order_id() -> None:
    recorded: list[tuple[str, dict[str, Any]]] = []

    def record(kind: str, payload: dict[str, Any]) -> bool:
        recorded.append((kind, payload))
        return True

    trail = OrderTrail(record)

    async def filled(client_id: str) -> LegFill:
        assert trail.sent("binance", "BTC", "buy", 0.002, client_id)
        return fill("b1")

    async def refused(client_id: str) -> LegFill:
        assert trail.sent("binance", "BTC", "sell", 0.002, client_id)
        raise LiveOrderError("binance", client_id, "insufficient balance")

    async def never_sent(client_id: str) -> LegFill:
        raise LiveOrderError("binance", client_id, "not sent")

    assert asyncio.run(trail.traced("binance", filled)) == fill("b1")
    for order in (refused, never_sent):
        with pytest.raises(LiveOrderError):
            asyncio.run(trail.traced("binance", order))
    kinds = [(kind, p.get("fate")) for kind, p in recorded]
    assert kinds == [
        ("ORDER_SENT", None),
        ("ORDER_DONE", "filled"),
        ("ORDER_SENT", None),
        ("ORDER_DONE", "refused"),
    ]
    assert recorded[0][1]["client_order_id"] == recorded[1][1]["client_order_id"]
    assert recorded[2][1]["client_order_id"] == recorded[3][1]["client_order_id"]
    assert recorded[0][1]["client_order_id"] != recorded[2][1]["client_order_id"]
    assert recorded[1][1]["order_id"] == "b1" and "insufficient balance" in recorded[3][1]["detail"]
    assert unbooked_orders([(kind, p) for kind, p in recorded]) == [
        UnbookedOrder("binance", "BTC", "buy", recorded[0][1]["client_order_id"], "b1")
    ]


def test_venue_orders_are_booked_unknown_unbooked_or_lost() -> None:
    """Only the trail and the booking events account for an order: every live order is in the
    trail, so a lookup event alone (c3, c6) names nothing."""
    events = [
        sent("c1"), done("c1", "filled", "b1"),
        ("TRADE_OPEN", {"order_ids": {"upbit": "u1", "binance": "b1", "upbit_qty": 0.002}}),
        sent("c2"), done("c2", "unknown", "b2"),
        ("ORDER_LOOKUP", {"client_order_id": "c3", "outcome": "unknown", "order_id": None}),
        sent("c4"), done("c4", "filled", "b4"),
        ("ORDER_LOOKUP", {"client_order_id": "c6", "outcome": "placed", "order_id": "b6"}),
        sent("c7"), done("c7", "unknown"),
    ]  # fmt: skip
    venue = [
        ("b1", "c1"), ("u1", None), ("b2", "c2"), ("b3", "c3"), ("b4", "c4"), ("b5", "c5"), ("b6", "c6"),
        ("b7", "c7"),
    ]  # fmt: skip
    assert venue_order_fates(venue, events) == {
        "b1": "booked", "u1": "booked", "b2": "unknown", "b3": "lost", "b4": "unbooked", "b5": "lost",
        "b6": "lost", "b7": "unknown",
    }  # fmt: skip
