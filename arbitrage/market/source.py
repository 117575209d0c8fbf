"""The narrow interface between the engine loop and wherever its books come from.

The engine asks a `MarketSource` for one snapshot per tick and screens every book with
`book_rejection` before trusting it; a tick whose data could not be had at all surfaces as
`MarketDataError`, whose `kind` names the KPI counter the failure is recorded under.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from math import isfinite
from typing import Any, Protocol, runtime_checkable

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
    does_io: bool
    """True when a snapshot waits on something outside the process (the network); False for a source
    computed in process, which the engine then calls on its own thread with no hand-off."""

    def snapshot(self) -> MarketSnapshot:
        """One tick's books for every venue and the KRW-USDT rate; raises `MarketDataError`."""
        ...

    def close(self) -> None:
        """Release connections or other resources the source holds."""
        ...


@runtime_checkable
class AsyncSnapshots(Protocol):
    """A source that does I/O and offers its snapshot as a coroutine on its own event loop, so the
    engine can drive the loop from its own thread and give a tick up without waiting for it."""

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the source's clients live on; only one thread drives it at a time."""
        ...

    def snapshot_coroutine(self) -> Coroutine[Any, Any, MarketSnapshot]:
        """One tick's fetch, as `snapshot()` would do it, not yet started."""
        ...


def _levels_unusable(levels: tuple[Level, ...]) -> bool:
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
    if book.bids[0][0] >= book.asks[0][0]:
        return "crossed"
    if now_ms - book.timestamp_ms > max_age_ms:
        return "stale"
    return None
