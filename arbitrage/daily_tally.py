"""D98 §7.2's daily figures, kept per UTC day while the run goes, for `daily_report.json`.

The tally reads the run's cumulative counters (round trips, wins, PnL, exchange errors,
rate-limit hits) only when a UTC day begins and at the end, and the PnL once per tick for the
day's drawdown, so it costs the loop one comparison and one subtraction. A day's figures are
the counters' change over that day, measured at tick boundaries; a day no tick reached shows
its runtime and zeros.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from evidence.conditional import DayFigures

DAY_SECONDS = 86_400


class Counters(NamedTuple):
    """The run's running totals at one moment."""

    round_trips: int
    wins: int
    pnl_usd: float
    exchange_errors: int
    rate_limit_hits: int


@dataclass
class _Day:
    number: int
    opened: Counters
    peak_pnl_usd: float
    max_drawdown_usd: float = 0.0
    closed: Counters | None = None


def _date(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * DAY_SECONDS, UTC).date().isoformat()


class DailyTally:
    """Per-UTC-day figures of one run, from `started_epoch` to the epoch given to `report`."""

    def __init__(self, started_epoch: float, counters: Callable[[], Counters]) -> None:
        self.started_epoch = started_epoch
        self._counters = counters
        opened = counters()
        self._days = [_Day(int(started_epoch // DAY_SECONDS), opened, opened.pnl_usd)]

    def observe(self, now_epoch: float, pnl_usd: float) -> None:
        """After each tick: start a new day when the UTC date changed, and follow the day's drawdown."""
        day = self._days[-1]
        if int(now_epoch // DAY_SECONDS) != day.number:
            day = self._roll(int(now_epoch // DAY_SECONDS))
        if pnl_usd > day.peak_pnl_usd:
            day.peak_pnl_usd = pnl_usd
        elif day.peak_pnl_usd - pnl_usd > day.max_drawdown_usd:
            day.max_drawdown_usd = day.peak_pnl_usd - pnl_usd

    def _roll(self, number: int) -> _Day:
        now = self._counters()
        self._days[-1].closed = now
        day = _Day(number, now, now.pnl_usd)
        self._days.append(day)
        return day

    def report(self, ended_epoch: float) -> list[DayFigures]:
        """One entry per UTC day from the start to `ended_epoch`; the last day closes on the counters now."""
        final = self._counters()
        self.observe(ended_epoch, final.pnl_usd)
        figures: list[DayFigures] = []
        observed = {day.number: day for day in self._days}
        first, last = int(self.started_epoch // DAY_SECONDS), int(ended_epoch // DAY_SECONDS)
        for number in range(first, last + 1):
            day = observed.get(number)
            span_start = max(self.started_epoch, number * DAY_SECONDS)
            span_end = min(ended_epoch, (number + 1) * DAY_SECONDS)
            hours = round(min(24.0, max(0.0, span_end - span_start) / 3600.0), 6)
            if day is None:
                figures.append(
                    DayFigures(
                        date=_date(number),
                        runtime_hours=hours,
                        round_trips=0,
                        wins=0,
                        pnl_usd=0.0,
                        win_rate_pct=None,
                        max_drawdown_usd=0.0,
                        exchange_errors=0,
                        rate_limit_hits=0,
                    )
                )
                continue
            closed = day.closed or final
            trips, wins = closed.round_trips - day.opened.round_trips, closed.wins - day.opened.wins
            pnl = closed.pnl_usd - day.opened.pnl_usd
            figures.append(
                DayFigures(
                    date=_date(number),
                    runtime_hours=hours,
                    round_trips=trips,
                    wins=wins,
                    pnl_usd=round(pnl, 6) if math.isfinite(pnl) else 0.0,
                    win_rate_pct=round(100.0 * wins / trips, 2) if trips else None,
                    max_drawdown_usd=round(day.max_drawdown_usd, 6),
                    exchange_errors=closed.exchange_errors - day.opened.exchange_errors,
                    rate_limit_hits=closed.rate_limit_hits - day.opened.rate_limit_hits,
                )
            )
        return figures
