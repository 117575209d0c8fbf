"""The narrow interface between the engine loop and wherever its books come from.

The engine asks a `MarketSource` for one snapshot per tick and screens every book with
`book_rejection` before trusting it; a tick whose data could not be had at all surfaces as
`MarketDataError`, whose `kind` names the KPI counter the failure is recorded under.
"""

from __future__ import annotations

import math
from typing import Protocol

from arbitrage.market.book import Level, MarketSnapshot, OrderBook


class MarketDataError(Exception):
    """A tick's market data could not be had; `kind` names the KPI counter ("RequestTimeout", ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class MarketSource(Protocol):
    """Where the engine's books come from: "synthetic" (in-process model) or "ccxt" (live venues)."""

    name: str

    def snapshot(self) -> MarketSnapshot:
        """One tick's books for every venue and the KRW-USDT rate; raises `MarketDataError`."""
        ...

    def close(self) -> None:
        """Release connections or other resources the source holds."""
        ...


def _levels_unusable(levels: tuple[Level, ...]) -> bool:
    isfinite = math.isfinite
    return any(not (isfinite(p) and p > 0.0 and isfinite(s) and s >= 0.0) for p, s in levels)


def book_rejection(book: OrderBook, now_ms: int, max_age_ms: int) -> str | None:
    """Why a book must not be traded on, or None when it is usable.

    Reasons, checked in this order: "empty" (a side has no levels), "non_finite" (a price that
    is NaN, infinite or not positive, or a size that is NaN, infinite or negative), "crossed"
    (best bid at or above best ask), "stale" (older than `max_age_ms` at `now_ms`).
    """
    if not book.bids or not book.asks:
        return "empty"
    if _levels_unusable(book.bids) or _levels_unusable(book.asks):
        return "non_finite"
    if book.best_bid >= book.best_ask:
        return "crossed"
    if now_ms - book.timestamp_ms > max_age_ms:
        return "stale"
    return None
