"""Builds the configured market source; the only place that knows which sources exist."""

from __future__ import annotations

from arbitrage.config import AppConfig, ConfigError
from arbitrage.market.backoff import RateLimits
from arbitrage.market.source import MarketSource
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
            timeout_sec=config.run.book_max_age_sec,
            tick_interval_sec=config.run.tick_interval_sec,
            rate_limits=rate_limits,
        )
    return SyntheticSource(config.run.seed, symbols, dt_sec=config.run.tick_interval_sec)
