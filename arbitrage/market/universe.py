"""The static coin universe: markets listed on both Upbit KRW and Binance USDT.

The synthetic market model draws its starting prices, volatilities, book depth and price
grids from this table, and symbol selection ranks it by Upbit KRW volume (the largest fifty are
the runbook's top50). Reference prices and volumes are late-2025 levels; Binance tick sizes and lot
steps are that venue's spot filters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FX_SYMBOL = "USDT"
"""Base symbol of Upbit's KRW-USDT market, the book whose mid is the KRW per USDT rate."""

UPBIT_USDT_KRW_TICK = 0.5
"""Upbit's KRW-USDT price unit: 0.5 KRW in the 1,000-10,000 KRW band since 2025-03-21."""


@dataclass(frozen=True, slots=True)
class Coin:
    """One market's static facts.

    `vol_annual` is the annualized volatility of the Binance mid, `depth` scales the quote
    size resting on each book level (1.0 for the deepest books), and `upbit_spread_ticks`
    is the (min, max) Upbit spread in price units before the relative-spread cap.
    """

    symbol: str
    ref_usd: float
    upbit_krw_volume: float
    binance_tick: float
    binance_step: float
    vol_annual: float
    depth: float
    upbit_spread_ticks: tuple[int, int]


UNIVERSE: dict[str, Coin] = {
    c.symbol: c
    for c in (
        Coin("XRP", 2.10, 420e9, 0.0001, 0.1, 0.70, 0.9, (1, 2)),
        Coin("BTC", 90_000.0, 380e9, 0.01, 0.00001, 0.45, 1.0, (1, 2)),
        Coin("ETH", 3_000.0, 260e9, 0.01, 0.0001, 0.60, 1.0, (1, 2)),
        Coin("SOL", 135.0, 130e9, 0.01, 0.001, 0.70, 0.8, (1, 2)),
        Coin("DOGE", 0.150, 115e9, 0.00001, 1.0, 0.75, 0.7, (1, 2)),
        Coin("SUI", 1.60, 70e9, 0.0001, 0.1, 0.80, 0.5, (1, 3)),
        Coin("ADA", 0.420, 55e9, 0.0001, 0.1, 0.70, 0.5, (1, 2)),
        Coin("LINK", 13.5, 40e9, 0.01, 0.01, 0.70, 0.5, (1, 3)),
        Coin("TRX", 0.280, 35e9, 0.0001, 0.1, 0.50, 0.4, (1, 2)),
        Coin("AVAX", 14.0, 30e9, 0.01, 0.01, 0.75, 0.4, (1, 3)),
        Coin("HBAR", 0.140, 26e9, 0.00001, 1.0, 0.80, 0.35, (1, 3)),
        Coin("XLM", 0.240, 24e9, 0.0001, 1.0, 0.70, 0.35, (1, 3)),
        Coin("BCH", 550.0, 20e9, 0.1, 0.001, 0.60, 0.35, (1, 3)),
        Coin("NEAR", 1.90, 17e9, 0.001, 0.1, 0.80, 0.3, (2, 4)),
        Coin("ETC", 13.5, 15e9, 0.01, 0.01, 0.70, 0.3, (2, 4)),
        Coin("SHIB", 0.0000085, 13e9, 0.00000001, 1.0, 0.75, 0.3, (1, 2)),
        Coin("APT", 2.00, 11e9, 0.0001, 0.01, 0.80, 0.25, (2, 4)),
        Coin("ARB", 0.210, 9e9, 0.0001, 0.1, 0.80, 0.25, (2, 4)),
        Coin("DOT", 2.20, 8e9, 0.001, 0.01, 0.75, 0.25, (2, 4)),
        Coin("SAND", 0.150, 6e9, 0.0001, 1.0, 0.80, 0.2, (2, 4)),
        Coin("PEPE", 0.0000045, 5.8e9, 0.00000001, 1.0, 0.95, 0.2, (1, 2)),
        Coin("ONDO", 0.450, 5.6e9, 0.0001, 0.1, 0.85, 0.2, (2, 4)),
        Coin("ENA", 0.250, 5.4e9, 0.0001, 0.01, 0.90, 0.2, (2, 4)),
        Coin("SEI", 0.130, 5.2e9, 0.0001, 0.1, 0.90, 0.2, (2, 4)),
        Coin("AAVE", 180.0, 5e9, 0.01, 0.001, 0.75, 0.2, (2, 4)),
        Coin("UNI", 5.50, 4.8e9, 0.001, 0.01, 0.75, 0.2, (2, 4)),
        Coin("ATOM", 2.20, 4.6e9, 0.001, 0.01, 0.70, 0.2, (2, 4)),
        Coin("ALGO", 0.130, 4.4e9, 0.0001, 1.0, 0.75, 0.18, (2, 4)),
        Coin("FIL", 1.40, 4.2e9, 0.001, 0.01, 0.80, 0.18, (2, 4)),
        Coin("STX", 0.280, 4e9, 0.0001, 0.1, 0.85, 0.18, (2, 4)),
        Coin("IMX", 0.250, 3.8e9, 0.0001, 0.01, 0.85, 0.18, (2, 4)),
        Coin("GRT", 0.045, 3.6e9, 0.00001, 1.0, 0.80, 0.16, (2, 4)),
        Coin("MANA", 0.150, 3.4e9, 0.0001, 1.0, 0.80, 0.16, (2, 4)),
        Coin("AXS", 0.90, 3.2e9, 0.001, 0.01, 0.85, 0.16, (2, 4)),
        Coin("THETA", 0.300, 3e9, 0.0001, 0.1, 0.80, 0.16, (2, 4)),
        Coin("VET", 0.011, 2.8e9, 0.00001, 0.1, 0.75, 0.15, (2, 4)),
        Coin("CHZ", 0.033, 2.6e9, 0.00001, 1.0, 0.80, 0.15, (2, 4)),
        Coin("ENS", 10.0, 2.4e9, 0.01, 0.01, 0.85, 0.15, (2, 4)),
        Coin("POL", 0.120, 2.2e9, 0.0001, 0.1, 0.80, 0.15, (2, 4)),
        Coin("BONK", 0.0000090, 2e9, 0.00000001, 1.0, 0.95, 0.14, (1, 2)),
        Coin("QTUM", 1.40, 1.8e9, 0.001, 0.1, 0.75, 0.14, (2, 4)),
        Coin("NEO", 3.80, 1.6e9, 0.001, 0.01, 0.75, 0.14, (2, 4)),
        Coin("ZIL", 0.0055, 1.5e9, 0.00001, 0.1, 0.80, 0.12, (2, 4)),
        Coin("BAT", 0.210, 1.4e9, 0.0001, 1.0, 0.75, 0.12, (2, 4)),
        Coin("STORJ", 0.140, 1.3e9, 0.0001, 1.0, 0.85, 0.12, (2, 4)),
        Coin("XTZ", 0.480, 1.2e9, 0.001, 0.1, 0.75, 0.12, (2, 4)),
        Coin("EGLD", 8.50, 1.1e9, 0.01, 0.01, 0.80, 0.1, (2, 4)),
        Coin("KAVA", 0.100, 1e9, 0.0001, 0.1, 0.80, 0.1, (2, 4)),
        Coin("FLOW", 0.180, 0.9e9, 0.0001, 0.01, 0.80, 0.1, (2, 4)),
        Coin("MASK", 0.60, 0.8e9, 0.001, 0.01, 0.85, 0.1, (2, 4)),
    )
}
"""Every supported coin, keyed by base symbol."""


_KRW_TICKS: tuple[tuple[float, float], ...] = (
    (2_000_000.0, 1000.0),
    (1_000_000.0, 1000.0),
    (500_000.0, 500.0),
    (100_000.0, 100.0),
    (50_000.0, 50.0),
    (10_000.0, 10.0),
    (5_000.0, 5.0),
    (1_000.0, 1.0),
    (100.0, 1.0),
    (10.0, 0.01),
    (1.0, 0.001),
    (0.1, 0.0001),
    (0.01, 0.00001),
    (0.001, 0.000001),
    (0.0001, 0.0000001),
)
_KRW_TICK_FLOOR = 0.00000001


def upbit_krw_tick(price: float) -> float:
    """Upbit's KRW market price unit for a price, so synthetic books sit on the real grid.

    The table is Upbit's general KRW schedule effective 2025-07-31 (1,000 KRW at 1,000,000 and
    above, 500 from 500,000, 100 from 100,000, 50 from 50,000, 10 from 10,000, 5 from 5,000,
    1 from 100) and, below 100 KRW, one decimal more per decade (0.01 from 10 down to 1e-8
    under 0.0001). Every band's unit divides the band's lower bound, so stepping a price by
    the unit of the band it is in never leaves the grid. KRW-USDT is the one exception and
    uses `UPBIT_USDT_KRW_TICK`.
    """
    for floor, tick in _KRW_TICKS:
        if price >= floor:
            return tick
    return _KRW_TICK_FLOOR


def tick_decimals(tick: float) -> int:
    """Decimal places needed to print prices on a tick grid exactly (0 for whole units)."""
    if tick >= 1.0:
        return 0
    return max(0, math.ceil(-math.log10(tick) - 1e-9))


def top_n(n: int) -> list[str]:
    """The `n` base symbols with the largest Upbit KRW volume, largest first."""
    if not 1 <= n <= len(UNIVERSE):
        raise ValueError(f"n must be in 1..{len(UNIVERSE)}, got {n}")
    ranked = sorted(UNIVERSE.values(), key=lambda c: c.upbit_krw_volume, reverse=True)
    return [c.symbol for c in ranked[:n]]
