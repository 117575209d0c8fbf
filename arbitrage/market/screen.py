"""The screen every snapshot passes before the strategy sees it: bad books never reach a decision.

A book that is empty, non-finite, crossed or stale is dropped for the tick and counted by
reason; a bad KRW-USDT book drops the whole tick, because nothing can be priced without it.
"""

from __future__ import annotations

import logging

from arbitrage.market.book import MarketSnapshot, OrderBook
from arbitrage.market.source import book_rejection

log = logging.getLogger("arbitrage.market")


def log_sparsely(count: int) -> bool:
    """True for the 1st, 10th, 100th, ... occurrence of a repeating problem, so a fault cannot flood."""
    return count == 1 or (count % 10 == 0 and str(count).rstrip("0") == "1")


class BookScreen:
    """Rejects unusable books and keeps the per-reason counts for the KPIs."""

    def __init__(self, max_age_ms: int) -> None:
        self.max_age_ms = max_age_ms
        self.rejected: dict[str, int] = {}

    def screen(self, snapshot: MarketSnapshot, now_ms: int) -> MarketSnapshot | None:
        """The snapshot without its bad books, or None when the KRW-USDT book itself is bad."""
        fx_problem = book_rejection(snapshot.fx, now_ms, self.max_age_ms)
        if fx_problem is not None:
            self._reject("upbit", "KRW-USDT", fx_problem)
            return None
        upbit = self._usable("upbit", snapshot.upbit, now_ms)
        binance = self._usable("binance", snapshot.binance, now_ms)
        return MarketSnapshot(snapshot.tick, snapshot.fx, upbit, binance)

    def _usable(self, venue: str, books: dict[str, OrderBook], now_ms: int) -> dict[str, OrderBook]:
        kept: dict[str, OrderBook] = {}
        max_age_ms = self.max_age_ms
        for symbol, book in books.items():
            problem = book_rejection(book, now_ms, max_age_ms)
            if problem is None:
                kept[symbol] = book
            else:
                self._reject(venue, symbol, problem)
        return kept

    def _reject(self, venue: str, symbol: str, reason: str) -> None:
        count = self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if log_sparsely(count):
            log.warning("rejected %s book %s: %s (%d %s books so far)", venue, symbol, reason, count, reason)
