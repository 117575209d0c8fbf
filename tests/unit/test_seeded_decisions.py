"""A seeded synthetic run decides exactly as it did before the hot path was made faster.

The digests pin every book the model publishes, every rejection the screen counts (with bad
books planted at fixed ticks), and every quote the strategy enters or exits on, for a few seeds and
universes. A change that alters one float anywhere changes the digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import pytest

from arbitrage.config import StrategyConfig
from arbitrage.market.book import MarketSnapshot, OrderBook
from arbitrage.market.model import MarketModel
from arbitrage.market.screen import BookScreen
from arbitrage.market.universe import top_n
from arbitrage.strategy import OpenPosition, Strategy

TICKS = 300
NOW_MS = 1_000_000
NAN = float("nan")
INF = float("inf")


def _plant(snapshot: MarketSnapshot) -> MarketSnapshot:
    """Spoil some books at fixed ticks so every rejection reason is exercised."""
    plan: dict[int, tuple[str, Callable[[OrderBook], OrderBook], str]] = {
        3: ("binance", lambda b: dataclasses.replace(b, bids=((NAN, 1.0), *b.bids[1:])), "non_finite"),
        5: ("upbit", lambda b: dataclasses.replace(b, asks=(*b.asks[:-1], (b.asks[-1][0], -1.0))), "size"),
        7: ("upbit", lambda b: dataclasses.replace(b, asks=()), "empty"),
        11: ("binance", lambda b: dataclasses.replace(b, asks=((b.best_bid, 1.0), *b.asks)), "crossed"),
        13: ("binance", lambda b: dataclasses.replace(b, timestamp_ms=NOW_MS - 60_000), "stale"),
        17: ("upbit", lambda b: dataclasses.replace(b, bids=(*b.bids[:4], (INF, 2.0), *b.bids[5:])), "inf"),
        19: ("binance", lambda b: dataclasses.replace(b, bids=((0.0, 1.0), *b.bids[1:])), "zero"),
        23: ("upbit", lambda b: dataclasses.replace(b, bids=((1e308, 1.0), (1e308, 1.0), *b.bids)), "big"),
    }
    planted = plan.get(snapshot.tick % 29)
    if planted is None:
        return snapshot
    venue, spoil, _ = planted
    books = dict(getattr(snapshot, venue))
    symbol = sorted(books)[snapshot.tick % len(books)]
    books[symbol] = spoil(books[symbol])
    if venue == "upbit":
        return dataclasses.replace(snapshot, upbit=books)
    return dataclasses.replace(snapshot, binance=books)


def _book_text(book: OrderBook) -> str:
    return f"{book.venue}:{book.symbol}:{book.bids!r}:{book.asks!r}:{book.timestamp_ms}"


def seeded_digest(seed: int, universe: int) -> str:
    """sha256 over the model's books, the screen's rejections and the strategy's intents."""
    model = MarketModel(seed, top_n(universe))
    screen = BookScreen(max_age_ms=2_000)
    strategy = Strategy(
        StrategyConfig(entry_threshold_pct=2.2, exit_threshold_pct=1.8), tick_interval_sec=0.5
    )
    held: dict[str, OpenPosition] = {}
    digest = hashlib.sha256()
    for _ in range(TICKS):
        snapshot = _plant(model.step(now_ms=NOW_MS))
        for book in (snapshot.fx, *snapshot.upbit.values(), *snapshot.binance.values()):
            digest.update(_book_text(book).encode())
        screened = screen.screen(snapshot, NOW_MS)
        digest.update(repr(sorted(screen.rejected.items())).encode())
        if screened is None:
            continue
        exits, entries = strategy.decide(screened, held)
        for exit_ in exits:
            digest.update(repr(exit_).encode())
            del held[exit_.position.symbol]
        for entry in entries:
            digest.update(repr(entry.quote).encode())
            quote = entry.quote
            held[quote.symbol] = OpenPosition(quote.symbol, quote.direction, quote.qty, screened.tick)
    return digest.hexdigest()


EXPECTED = {
    (7, 5): "638ff2300e532222d7a47a11ae19e8e3c3df228425058219d181ebaf84432cd2",
    (7, 20): "954938a88944de48d07cba89eaad41db824797ea9c75a66c900510de3d7f3236",
    (42, 10): "98bb3f2e96d65c18ce81b4028693e39b78053d8823c04b755130def385e6e160",
}


@pytest.mark.allow_log("WARNING", r"^rejected (upbit|binance) book ")
@pytest.mark.parametrize(("seed", "universe"), sorted(EXPECTED))
def test_a_seeded_run_publishes_rejects_and_decides_as_before(seed: int, universe: int) -> None:
    assert seeded_digest(seed, universe) == EXPECTED[(seed, universe)], f"seed {seed} top{universe}"
