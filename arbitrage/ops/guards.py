"""Guards (D98 §4.2 plus the heartbeat guards): limits that end the run when crossed.

`Guards.check` is pure: the loop hands it one `GuardInputs` per tick and gets back the trip
to act on, or None. Every limit is a maximum that may be reached but not exceeded, as in the
runbook ("daily loss > $300"). The defaults are the runbook's, loosened only where a normal
paper run would otherwise trip, so that only abnormal runs are stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from arbitrage.config.guards import GuardsConfig
from arbitrage.ops.trips import Trip


@dataclass(frozen=True, slots=True)
class GuardInputs:
    """What the loop measured at the end of a tick.

    `worst_trade_pnl_usd` is the lowest realized PnL of any single closed trade so far (None
    before the first close); `daily_pnl_usd` is the realized PnL of the current UTC day;
    `consecutive_errors` counts ticks in a row whose order execution or ledger write failed
    (market-data gaps are the watchdog's concern, not this guard's).
    """

    daily_pnl_usd: float
    worst_trade_pnl_usd: float | None
    open_positions: int
    rss_mb: float
    consecutive_errors: int
    peak_pnl_usd: float
    drawdown_pct: float
    consecutive_losses: int


@dataclass(frozen=True, slots=True)
class GuardTrip(Trip):
    """A crossed limit: `name` like "SINGLE_TRADE_LOSS", the observed value and the limit."""

    kind: ClassVar[str] = "guard"
    event_type: ClassVar[str] = "GUARD_TRIP"

    def to_event(self) -> dict[str, Any]:
        """The event_log payload of the trip."""
        return {
            "guard": self.name,
            "stop_reason": self.stop_reason,
            "observed": self.observed,
            "limit": self.limit,
            "detail": self.detail,
        }


class Guards:
    """Checks the limits in a fixed order, money first, and reports the first one crossed."""

    def __init__(self, config: GuardsConfig) -> None:
        self.config = config

    def check_all(self, inputs: GuardInputs) -> list[GuardTrip]:
        """Every limit crossed by `inputs`, most severe first; NaN observations count as crossed."""
        c = self.config
        worst = inputs.worst_trade_pnl_usd
        daily_loss = -inputs.daily_pnl_usd
        drawdown_counts = inputs.peak_pnl_usd >= c.drawdown_min_peak_usd
        candidates: list[tuple[str, float | None, float, str]] = [
            ("SINGLE_TRADE_LOSS", None if worst is None else -worst, c.max_single_trade_loss_usd,
             "USD lost by a single trade"),
            ("DAILY_LOSS", daily_loss, c.max_daily_loss_usd, "USD realized loss today (UTC)"),
            ("DRAWDOWN", inputs.drawdown_pct if drawdown_counts else None, c.max_drawdown_pct,
             f"% drawdown from a peak of {inputs.peak_pnl_usd:.4f} USD"),
            ("CONSECUTIVE_LOSSES", inputs.consecutive_losses, c.max_consecutive_losses, "losses in a row"),
            ("OPEN_POSITIONS", inputs.open_positions, c.max_open_positions, "open positions"),
            ("CONSECUTIVE_ERRORS", inputs.consecutive_errors, c.max_consecutive_errors, "bad ticks in a row"),
            ("MEMORY", inputs.rss_mb, c.max_memory_mb, "MB resident memory"),
        ]  # fmt: skip
        return [
            GuardTrip(name, observed, limit, f"{observed:g} {what}, limit {limit:g}")
            for name, observed, limit, what in candidates
            if observed is not None and not observed <= limit
        ]

    def check(self, inputs: GuardInputs) -> GuardTrip | None:
        """The most severe limit crossed, or None when every guard holds."""
        trips = self.check_all(inputs)
        return trips[0] if trips else None


class PnlTally:
    """The per-trade facts the portfolio does not keep: the worst single trade and today's PnL.

    Feed it every closed trade's realized USD PnL; days are UTC days.
    """

    def __init__(self) -> None:
        self.worst_trade_pnl_usd: float | None = None
        self._day: date | None = None
        self._day_pnl = 0.0

    def observe(self, pnl_usd: float, closed_at: datetime | None = None) -> None:
        day = (closed_at or datetime.now(UTC)).astimezone(UTC).date()
        if day != self._day:
            self._day, self._day_pnl = day, 0.0
        self._day_pnl += pnl_usd
        if self.worst_trade_pnl_usd is None or not pnl_usd >= self.worst_trade_pnl_usd:
            self.worst_trade_pnl_usd = pnl_usd

    def daily_pnl_usd(self, now: datetime | None = None) -> float:
        """Realized PnL of the UTC day containing `now` (0 when nothing closed that day)."""
        day = (now or datetime.now(UTC)).astimezone(UTC).date()
        return self._day_pnl if day == self._day else 0.0
