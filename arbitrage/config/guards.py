"""The `guards` section: the limits that end a run when crossed (D98 §4.2 plus the heartbeat guards)."""

from __future__ import annotations

from pydantic import Field

from arbitrage.config.base import Frozen
from arbitrage.config.memory import MEMORY_LIMIT_MB


class GuardsConfig(Frozen):
    """Every guard threshold; a value at the limit is allowed, one beyond it trips."""

    max_daily_loss_usd: float = Field(default=300.0, gt=0)
    max_single_trade_loss_usd: float = Field(default=100.0, gt=0)
    max_open_positions: int = Field(default=20, ge=1)
    """The trader takes no entry while this many are open (`arbitrage.trader`); the guard, tripping
    beyond it, is the backstop should that hold ever fail."""
    max_memory_mb: float = Field(default=MEMORY_LIMIT_MB, gt=0)
    max_consecutive_errors: int = Field(default=5, ge=1)
    max_drawdown_pct: float = Field(default=50.0, gt=0, le=100)
    drawdown_min_peak_usd: float = Field(default=20.0, ge=0)
    max_consecutive_losses: int = Field(default=10, ge=1)
