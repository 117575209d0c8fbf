"""How a live order can end, as the executor reports it, and the fill a venue's order answer states.

An order is filled (`leg_from_order`), refused (`LiveOrderError`: nothing was placed), or of
unknown outcome (`OrderOutcomeUnknown`: it may have been placed, or was placed and its fill is not
known); an exit whose leg failed is a `LiveExitError` carrying the leg that did fill. `sides`
says which way each venue's leg of a round trip goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from arbitrage.execution import LegFill
from arbitrage.market.book import Side

if TYPE_CHECKING:
    from arbitrage.order_lookup import Resolution
    from arbitrage.strategy import Quote


def opposite(side: Side) -> Side:
    """The side that undoes `side`."""
    return "sell" if side == "buy" else "buy"


def sides(quote: Quote, opening: bool) -> tuple[Side, Side]:
    """(upbit side, binance side): opening sells the rich venue and buys the cheap one."""
    upbit_sells = (quote.direction == "upbit_rich") == opening
    return ("sell", "buy") if upbit_sells else ("buy", "sell")


class LiveOrderError(Exception):
    """One order was refused or its outcome is unknown; the message is one line with no secrets."""

    def __init__(self, venue: str, client_id: str, reason: str) -> None:
        super().__init__(f"{venue} order {client_id}: {reason}")
        self.venue = venue
        self.client_id = client_id


class OrderOutcomeUnknown(LiveOrderError):
    """An ambiguous order that lookups by client order id could neither find nor prove absent."""

    def __init__(self, resolution: Resolution) -> None:
        super().__init__(
            resolution.venue,
            resolution.client_order_id,
            f"outcome unknown after {resolution.attempts} lookups ({resolution.create_error};"
            f" last lookup: {resolution.lookup_error})",
        )
        self.resolution = resolution


class LiveExitError(Exception):
    """An exit leg failed: `filled` is the exit leg that did fill (None if the first failed)."""

    def __init__(self, failed_venue: str, reason: str, filled: LegFill | None) -> None:
        super().__init__(f"exit {failed_venue} leg failed: {reason}")
        self.failed_venue = failed_venue
        self.filled = filled


def leg_from_order(venue: str, side: Side, base: str, quote_ccy: str, order: Mapping[str, Any]) -> LegFill:
    """A LegFill from ccxt's unified order; raises ValueError when nothing was filled.

    Fees charged in the base asset (Binance takes a buy's commission from the coin bought)
    are converted at the fill's average price; fees in other assets (BNB) are not counted.
    """
    filled = float(order.get("filled") or 0.0)
    cost = float(order.get("cost") or 0.0)
    if not filled > 0.0 or not cost > 0.0:
        raise ValueError(f"nothing filled (status {order.get('status')!r})")
    vwap = cost / filled
    fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
    fee = 0.0
    for item in fees:
        amount = float(item.get("cost") or 0.0)
        if item.get("currency") == quote_ccy:
            fee += amount
        elif item.get("currency") == base:
            fee += amount * vwap
    return LegFill(venue, side, filled, vwap, cost, fee, str(order["id"]))
