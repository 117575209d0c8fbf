"""How long a live run waits on the venues for an order's fill, and for its orders once it is stopping."""

from __future__ import annotations

from typing import Final

from pydantic import Field

from arbitrage.config.base import Frozen

DEFAULT_FILL_TIMEOUT_SEC: Final = 5.0
DEFAULT_STOP_VENUE_SEC: Final = 4.0
STOP_BUDGET_SEC: Final = 10.0
"""What a stop may take in all (SIGTERM to exit); the venues get part of it, the close-out the rest."""


class LiveConfig(Frozen):
    """The venues' share of a live run's time: applies to `--mode live` only."""

    fill_timeout_sec: float = Field(default=DEFAULT_FILL_TIMEOUT_SEC, gt=0, le=60)
    """An order the venue accepted without a fill is polled this long; a fill not known by then is
    an unknown outcome (the run stops, the kill switch is set), never a refusal."""
    stop_venue_sec: float = Field(default=DEFAULT_STOP_VENUE_SEC, gt=0, le=STOP_BUDGET_SEC - 2)
    """Once the run is stopping, how long orders still under way may wait on the venues, counted from
    the stop request; the rest of the 10 s stop budget is the close-out's."""
