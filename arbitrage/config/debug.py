"""Deliberate load inside the engine, for the anomaly table's tests; never for a live run."""

from __future__ import annotations

from pydantic import Field

from arbitrage.config.base import Frozen


class DebugConfig(Frozen):
    """Test-only load (`ARB_DEBUG__CPU_BURN_THREADS`, `ARB_DEBUG__HOLD_MEMORY_MB`); refused in live mode."""

    cpu_burn_threads: int = Field(default=0, ge=0, le=8)
    """Busy threads burning CPU in the engine process while it trades."""
    hold_memory_mb: int = Field(default=0, ge=0, le=4096)
    """Megabytes allocated, touched and held while the run trades."""

    def knobs_set(self) -> list[str]:
        """The knobs that are not at their do-nothing default, as `debug.<key>=<value>`."""
        return [f"debug.{name}={value}" for name, value in self.model_dump().items() if value]
