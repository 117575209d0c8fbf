"""Which orders of a live run were sent and never booked: the rule its order trail is judged by.

A live run records each order as ORDER_SENT before sending it and ORDER_DONE (filled with the
venue's order id, refused, or unknown) once its fate is known (`arbitrage.order_trail`). A fill is
booked when a booking event of the run (TRADE_OPEN, TRADE_CLOSE, LEG_UNWOUND, EXIT_FAILED) carries
its venue order id. An order is unbooked when it was sent and has no ORDER_DONE (in flight when the
process died), was filled and no booking event carries it, or its outcome stayed unknown (its run
stopped and set the kill switch, but that activation can fail with the database it writes to). A
refusal left nothing on the venue, so it is not listed.

A run whose trail PostgreSQL shows complete at its end says so (`evidence.run_closure`).

`venue_order_fates` turns the question around for a judge that reads the venue itself (the chaos
checker): how the run accounts for each order the venue filled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

ORDER_SENT: Final = "ORDER_SENT"
ORDER_DONE: Final = "ORDER_DONE"
Fate = Literal["filled", "refused", "unknown"]
Accounted = Literal["booked", "unknown", "unbooked", "lost"]
BOOKING_EVENTS: Final = ("TRADE_OPEN", "TRADE_CLOSE", "LEG_UNWOUND", "EXIT_FAILED")
"""The events whose payloads carry the venue order ids of the fills a run booked."""


@dataclass(frozen=True)
class UnbookedOrder:
    """An order of a run whose fill may be on the venue with no leg or event of the run showing it."""

    venue: str
    symbol: str
    side: str
    client_order_id: str
    order_id: str | None
    """The venue's id when the run knew it; None for an order in flight when the run ended."""
    unknown: bool = False
    """Its outcome stayed unknown (else: in flight, or filled and not booked)."""
    unhedged: bool = False
    """A first leg that filled and whose unwind the venue refused: booked, but no position closes it."""

    def describe(self) -> str:
        if self.unhedged:
            state = f"filled as order {self.order_id}, never unwound"
        elif self.unknown:
            state = "outcome unknown" + ("" if self.order_id is None else f", order {self.order_id}")
        elif self.order_id is None:
            state = "in flight"
        else:
            state = f"filled as order {self.order_id}, not booked"
        return f"{self.venue} {self.side} {self.symbol} client order id {self.client_order_id} ({state})"


def booked_order_ids(events: Iterable[tuple[str, Mapping[str, Any]]]) -> set[str]:
    """The venue order ids the booking events carry."""
    ids: set[str] = set()
    for kind, payload in events:
        if kind not in BOOKING_EVENTS:
            continue
        ids.update(str(v) for k, v in (payload.get("order_ids") or {}).items() if k != "upbit_qty" and v)
        for key in ("filled", "unwind", "filled_earlier"):
            leg = payload.get(key)
            if isinstance(leg, Mapping) and leg.get("order_id"):
                ids.add(str(leg["order_id"]))
    return ids


def unbooked_orders(events: Iterable[tuple[str, Mapping[str, Any]]]) -> list[UnbookedOrder]:
    """One run's orders that were sent and neither refused nor booked."""
    listed = list(events)
    booked = booked_order_ids(listed)
    done = {p["client_order_id"]: p for kind, p in listed if kind == ORDER_DONE}
    unbooked: list[UnbookedOrder] = []
    for kind, sent in listed:
        if kind != ORDER_SENT:
            continue
        fate = done.get(sent["client_order_id"])
        order_id = None if fate is None else fate.get("order_id")
        unknown = fate is not None and fate["fate"] == "unknown"
        if fate is None or unknown or (fate["fate"] == "filled" and str(order_id) not in booked):
            unbooked.append(
                UnbookedOrder(
                    sent["venue"], sent["symbol"], sent["side"], sent["client_order_id"], order_id, unknown
                )
            )
    return unbooked


def unhedged_legs(events: Iterable[tuple[str, Mapping[str, Any]]]) -> list[UnbookedOrder]:
    """First legs of a run that filled and were never unwound (LEG_UNWOUND without an unwind): on the
    venue, with no position of the run to close them (the run stopped with UNHEDGED_LEG)."""
    listed = list(events)
    done = [p for kind, p in listed if kind == ORDER_DONE and p.get("order_id")]
    client_ids = {str(p["order_id"]): str(p["client_order_id"]) for p in done}
    legs: list[UnbookedOrder] = []
    for kind, payload in listed:
        leg = payload.get("filled") if kind == "LEG_UNWOUND" and payload.get("unwind") is None else None
        if isinstance(leg, Mapping):
            order_id = str(leg.get("order_id"))
            client_id = client_ids.get(order_id, "unknown")
            venue, side, symbol = str(leg.get("venue")), str(leg.get("side")), str(payload.get("symbol"))
            legs.append(UnbookedOrder(venue, symbol, side, client_id, order_id, unhedged=True))
    return legs


def venue_order_fates(
    orders: Iterable[tuple[str, str | None]], events: Iterable[tuple[str, Mapping[str, Any]]]
) -> dict[str, Accounted]:
    """How a run accounts for each order the venue filled for it, given as (order id, client order id):

    - booked: a booking event carries its id;
    - unknown: its order trail says its outcome stayed unknown (the run stopped on it);
    - unbooked: its order trail lists it otherwise (a crash between the order and its leg);
    - lost: nothing of the run names it.
    """
    listed = list(events)
    booked = booked_order_ids(listed)
    trail = {order.client_order_id: order for order in unbooked_orders(listed)}
    fates: dict[str, Accounted] = {}
    for order_id, client_id in orders:
        sent = trail.get(client_id) if client_id is not None else None
        if order_id in booked:
            fates[order_id] = "booked"
        elif sent is not None:
            fates[order_id] = "unknown" if sent.unknown else "unbooked"
        else:
            fates[order_id] = "lost"
    return fates
