"""Which orders of a live run were sent and never booked: the rule its order trail is judged by.

A live run records each order as ORDER_SENT before sending it and ORDER_DONE (filled with the
venue's order id, refused, or unknown) once its fate is known (`arbitrage.order_trail`). A fill is
booked when a booking event of the run (TRADE_OPEN, TRADE_CLOSE, LEG_UNWOUND, EXIT_FAILED) carries
its venue order id. An order is unbooked when it was sent and has no ORDER_DONE (in flight when the
process died), or was filled and no booking event carries it. A refusal left nothing on the venue,
and an unknown outcome has already stopped its run with the kill switch set, so neither is listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

ORDER_SENT: Final = "ORDER_SENT"
ORDER_DONE: Final = "ORDER_DONE"
Fate = Literal["filled", "refused", "unknown"]
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
    """The venue's id when the order was known filled; None for one in flight when the run ended."""

    def describe(self) -> str:
        state = "in flight" if self.order_id is None else f"filled as order {self.order_id}, not booked"
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
    """One run's orders that were sent and neither refused, surfaced as unknown, nor booked."""
    listed = list(events)
    booked = booked_order_ids(listed)
    done = {p["client_order_id"]: p for kind, p in listed if kind == ORDER_DONE}
    unbooked: list[UnbookedOrder] = []
    for kind, sent in listed:
        if kind != ORDER_SENT:
            continue
        fate = done.get(sent["client_order_id"])
        order_id = None if fate is None else fate.get("order_id")
        if fate is None or (fate["fate"] == "filled" and str(order_id) not in booked):
            unbooked.append(
                UnbookedOrder(sent["venue"], sent["symbol"], sent["side"], sent["client_order_id"], order_id)
            )
    return unbooked
