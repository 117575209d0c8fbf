"""The unified order book every market source produces, and the depth walk every fill uses.

Prices and sizes are plain floats: books arrive as JSON numbers from the venues, and the
engine never needs decimal exactness to decide or to paper-fill (the ledger stores what it
computed, rounded by PostgreSQL's NUMERIC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Level = tuple[float, float]
"""One price level: (price, size in base units)."""

Side = Literal["buy", "sell"]


@dataclass(frozen=True, slots=True)
class OrderBook:
    """One venue's book for one market, best level first on each side.

    `symbol` is the base asset ("BTC"); `quote` is the venue's quote ("KRW" on Upbit,
    "USDT" on Binance). `timestamp_ms` is the venue's own timestamp for the book.
    """

    venue: str
    symbol: str
    quote: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    timestamp_ms: int

    @property
    def best_bid(self) -> float:
        return self.bids[0][0]

    @property
    def best_ask(self) -> float:
        return self.asks[0][0]

    @property
    def mid(self) -> float:
        return (self.bids[0][0] + self.asks[0][0]) / 2.0


@dataclass(frozen=True, slots=True)
class DepthFill:
    """The result of walking one side of a book for a size: what a market order would get."""

    qty: float
    vwap: float
    notional: float
    levels_used: int


def walk_depth(book: OrderBook, side: Side, qty: float) -> DepthFill | None:
    """Walk the book for a market order of `qty` base units.

    A buy consumes asks, a sell consumes bids. Returns None when the book cannot fill the
    whole size: a partial fill is a failed fill for arbitrage, because the other leg is sized
    to the full quantity.
    """
    if qty <= 0.0 or not math.isfinite(qty):
        return None
    levels = book.asks if side == "buy" else book.bids
    remaining = qty
    notional = 0.0
    for used, (price, size) in enumerate(levels, start=1):
        take = size if size < remaining else remaining
        notional += take * price
        remaining -= take
        if remaining <= qty * 1e-12:
            return DepthFill(qty=qty, vwap=notional / qty, notional=notional, levels_used=used)
    return None


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Everything one tick of the engine sees: both venues' books and the KRW/USDT rate.

    `fx` is Upbit's own KRW-USDT book; its mid is the KRW per USDT rate used to put both
    venues in one currency. `upbit` and `binance` map the base symbol to that venue's book.
    """

    tick: int
    fx: OrderBook
    upbit: dict[str, OrderBook] = field(default_factory=dict)
    binance: dict[str, OrderBook] = field(default_factory=dict)

    @property
    def krw_per_usdt(self) -> float:
        return self.fx.mid

    def symbols(self) -> list[str]:
        """Symbols with a book on both venues in this snapshot, in a stable order."""
        return sorted(self.upbit.keys() & self.binance.keys())
