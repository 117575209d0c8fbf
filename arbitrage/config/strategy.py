"""The `strategy` section: entry and exit rules, order size, fees and venue minimums."""

from __future__ import annotations

from pydantic import Field

from arbitrage.config.base import MAX_RUN_SECONDS, Frozen


class VenueFees(Frozen):
    """Taker fees in percent of notional."""

    upbit: float = Field(default=0.05, ge=0, le=5)
    binance: float = Field(default=0.10, ge=0, le=5)


class VenueMinimums(Frozen):
    """Venue minimum order sizes; a paper fill below them would be rejected live, so it is rejected here."""

    upbit_krw: float = Field(default=5000.0, ge=0)
    binance_usdt: float = Field(default=5.0, ge=0)


class StrategyConfig(Frozen):
    """Entry and exit rules for the premium trade."""

    entry_threshold_pct: float = Field(default=3.0, gt=-50, lt=50)
    exit_threshold_pct: float = Field(default=2.0, gt=-50, lt=50)
    order_notional_usd: float = Field(default=200.0, gt=0, le=1_000_000)
    max_hold_sec: float = Field(default=120.0, gt=0, le=MAX_RUN_SECONDS)
    fees_pct: VenueFees = VenueFees()
    min_order: VenueMinimums = VenueMinimums()
    paper_leg_fail_rate: float = Field(default=0.0, ge=0, le=1)
