"""The `run` section: how a run is driven (phase, length, source, where its evidence goes)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from arbitrage.config.base import MAX_RUN_SECONDS, PG_INT_MAX, Frozen

Phase = Literal["smoke", "baseline", "longrun"]
ProfileName = Literal[
    "live-phase1", "live-phase2", "live-phase3", "paper-phase1", "paper-phase2", "paper-phase3"
]
"""D98 §2's ramp-up phases and their paper rehearsals; what each sets is `arbitrage.profiles`."""
PHASE_DEFAULT_SECONDS: dict[str, float] = {"smoke": 300.0, "baseline": 1200.0, "longrun": 3600.0}


class RunConfig(Frozen):
    """How a run is driven: tick pacing, source, where evidence goes."""

    phase: Phase = "smoke"
    duration_sec: float | None = Field(default=None, gt=0, le=MAX_RUN_SECONDS)
    ticks: int | None = Field(default=None, gt=0, le=PG_INT_MAX)
    seed: int = Field(default=7, ge=0, le=PG_INT_MAX)
    tick_interval_sec: float = Field(default=0.5, gt=0, le=60)
    market: Literal["synthetic", "ccxt"] = "synthetic"
    exchange_url: str | None = None
    mode: Literal["paper", "live"] = "paper"
    evidence_root: Path = Path("logs/evidence")
    log_format: Literal["text", "json"] = "text"
    book_max_age_sec: float = Field(default=5.0, gt=0, le=3600)
    debug_tick_delay_sec: float = Field(default=0.0, ge=0, le=60)
    """A test knob: every tick sleeps this long after its books arrive, as a slow engine would; it
    counts as processing time, so the loop-latency row and the watchdog see it."""
    trace: bool = False
    """Write `decision_trace.json`: every entry and exit decision with its premiums and reason."""
    profile: ProfileName | None = None
    """The ramp-up profile the run was started with (`--profile`); verify judges its phase checks."""

    def expected_seconds(self) -> float | None:
        """The wallclock the run is expected to take; None for a tick-bounded run."""
        if self.ticks is not None:
            return None
        return self.duration_sec if self.duration_sec is not None else PHASE_DEFAULT_SECONDS[self.phase]
