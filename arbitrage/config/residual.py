"""The hedge-residual bound: how far a run's Upbit fills may drift from their Binance legs in all."""

from __future__ import annotations

from typing import Final

from pydantic import Field

from arbitrage.config.base import Frozen

DEFAULT_MAX_PCT_OF_NOTIONAL: Final = 2.0
"""Twice the ~1 % an Upbit KRW-cost buy drifts by design (and `reconcile`'s per-leg Upbit drift
tolerance): beyond it the fills are far off their quotes or the legs are sized wrong."""


class ResidualConfig(Frozen):
    """The bound on a run's total absolute hedge residual, in percent of its entries' notional."""

    max_pct_of_notional: float = Field(default=DEFAULT_MAX_PCT_OF_NOTIONAL, ge=0, le=100)
