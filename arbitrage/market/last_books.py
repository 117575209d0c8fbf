"""The last usable books of each symbol, kept with their age for the stop-time flatten.

At stop, the final tick may have rejected a held symbol's book (empty, crossed, NaN, halted),
or dropped the whole tick. The flatten then prices the exit on the last books that passed the
screen for that symbol, but only while they are younger than `run.book_max_age_sec`, the same
bound the screen applies: an older book would be trading on prices the market has left.
"""

from __future__ import annotations

from dataclasses import dataclass

from arbitrage.market.book import MarketSnapshot, OrderBook


@dataclass(frozen=True, slots=True)
class SymbolBooks:
    """Both venues' books of one symbol and the KRW-USDT book, all from one screened tick."""

    tick: int
    fx: OrderBook
    upbit: OrderBook
    binance: OrderBook

    def age_ms(self, now_ms: int) -> int:
        """Age of the oldest of the three books, by the venues' own timestamps."""
        return now_ms - min(self.fx.timestamp_ms, self.upbit.timestamp_ms, self.binance.timestamp_ms)

    def snapshot(self) -> MarketSnapshot:
        symbol = self.upbit.symbol
        return MarketSnapshot(self.tick, self.fx, {symbol: self.upbit}, {symbol: self.binance})


class LastUsableBooks:
    """Remembers, per symbol, the most recent books that passed the screen on both venues."""

    def __init__(self, max_age_ms: int) -> None:
        self.max_age_ms = max_age_ms
        self._books: dict[str, SymbolBooks] = {}

    def remember(self, screened: MarketSnapshot) -> None:
        """Record every symbol with a usable book on both venues in a screened snapshot."""
        for symbol in screened.symbols():
            self._books[symbol] = SymbolBooks(
                screened.tick, screened.fx, screened.upbit[symbol], screened.binance[symbol]
            )

    def latest(self) -> dict[str, SymbolBooks]:
        """Every symbol's last usable books, whatever their age (for the stop snapshot)."""
        return dict(self._books)

    def for_exit(self, symbol: str, now_ms: int) -> SymbolBooks | str:
        """The books to price an exit of `symbol` on, or why there are none young enough."""
        books = self._books.get(symbol)
        if books is None:
            return "no usable book was ever seen for this symbol"
        age_ms = books.age_ms(now_ms)
        if age_ms > self.max_age_ms:
            return (
                f"last usable book is {age_ms / 1000:.1f}s old (tick {books.tick}), "
                f"older than run.book_max_age_sec {self.max_age_ms / 1000:g}s"
            )
        return books
