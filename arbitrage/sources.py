"""Builds the configured market source (the only place that knows which sources exist), and takes
one bounded snapshot from it for work done outside the trading loop."""

from __future__ import annotations

import contextlib
import threading
import time

from arbitrage.config import AppConfig, ConfigError
from arbitrage.market.backoff import RateLimits
from arbitrage.market.book import MarketSnapshot
from arbitrage.market.source import MarketSource, book_rejection
from arbitrage.market.synthetic import SyntheticSource
from arbitrage.market.universe import UNIVERSE, top_n


def universe(config: AppConfig) -> list[str]:
    """The TopN universe with `include` added and `exclude` removed, in ranking order."""
    sym = config.symbols
    known = set(UNIVERSE)
    unknown = sorted({*sym.include, *sym.exclude} - known)
    if unknown:
        raise ConfigError(
            f"config error: symbols: unknown symbol(s) {', '.join(unknown)}; known: {sorted(known)}"
        )
    chosen = [s for s in top_n(sym.top_n()) if s not in sym.exclude]
    chosen += [s for s in sym.include if s not in chosen and s not in sym.exclude]
    if not chosen:
        raise ConfigError("config error: symbols: the universe is empty after include/exclude")
    return chosen


REQUEST_TIMEOUT_CAP_SEC = 5.0
"""The longest one market-data request may take, however old `run.book_max_age_sec` lets books be.
A venue that stops answering shows as a market-data error within seconds, not after as long as
books may age (up to an hour), and whatever waits for one snapshot (`one_snapshot`, the start-up
recovery's pricing) is bounded as tightly. An order book that takes longer than this to arrive
comes from a venue in trouble."""


def request_timeout_sec(config: AppConfig) -> float:
    """The market source's request timeout: `run.book_max_age_sec` (an answer that took longer
    would be rejected as stale anyway), at most REQUEST_TIMEOUT_CAP_SEC."""
    return min(config.run.book_max_age_sec, REQUEST_TIMEOUT_CAP_SEC)


def build_source(config: AppConfig, rate_limits: RateLimits | None = None) -> MarketSource:
    """The synthetic in-process source, or real ccxt against the venues or a local simulator.

    `rate_limits` is the venues' back-off state the ccxt source honours and reports into.
    """
    symbols = universe(config)
    if config.run.market == "ccxt":
        from arbitrage.market.ccxt_source import CcxtSource

        return CcxtSource(
            symbols,
            exchange_url=config.run.exchange_url,
            timeout_sec=request_timeout_sec(config),
            tick_interval_sec=config.run.tick_interval_sec,
            rate_limits=rate_limits,
        )
    return SyntheticSource(config.run.seed, symbols, dt_sec=config.run.tick_interval_sec)


def usable_books(snapshot: MarketSnapshot, now_ms: int, max_age_ms: int) -> MarketSnapshot | None:
    """The snapshot without its rejected books (None when the KRW-USDT book is rejected), quietly:
    unlike the loop's screen, it logs nothing, so it can run before a run whose warnings count."""
    if book_rejection(snapshot.fx, now_ms, max_age_ms) is not None:
        return None
    kept = [
        {s: b for s, b in books.items() if book_rejection(b, now_ms, max_age_ms) is None}
        for books in (snapshot.upbit, snapshot.binance)
    ]
    return MarketSnapshot(snapshot.tick, snapshot.fx, kept[0], kept[1])


SOURCE_START_SEC = 15.0
"""How long building a market source may take before its first snapshot (importing ccxt and loading
the venues' markets took 3-9 s on a loaded 2-core machine)."""


def one_snapshot(config: AppConfig, deadline_sec: float | None = None) -> MarketSnapshot | None:
    """One screened snapshot from a fresh instance of the configured source, or None when it could
    not be built, failed, or did not answer within `deadline_sec` (default: SOURCE_START_SEC to
    build the source, ccxt's import and market loading included, plus the request timeout).

    The source runs on a daemon thread that closes it when done, so a hung venue never holds the
    caller past the deadline.
    """
    limit = SOURCE_START_SEC + request_timeout_sec(config) if deadline_sec is None else deadline_sec
    result: list[MarketSnapshot] = []

    def fetch() -> None:
        source: MarketSource | None = None
        try:
            source = build_source(config)
            result.append(source.snapshot())
        except Exception:  # any failure means "no book", which the caller reports
            return
        finally:
            if source is not None:
                with contextlib.suppress(Exception):
                    source.close()

    worker = threading.Thread(target=fetch, name="one-snapshot", daemon=True)
    worker.start()
    worker.join(limit)
    if not result:
        return None
    return usable_books(result[0], int(time.time() * 1000), int(config.run.book_max_age_sec * 1000))
