"""The `sysmon` section: how often the engine's own resources are sampled and the levels they reach."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from arbitrage.config.base import Frozen
from arbitrage.config.memory import MEMORY_LIMIT_MB, MEMORY_OPERATING_MB


class SysMonConfig(Frozen):
    """Sampling cadence and thresholds; a value strictly above a threshold reaches its level.

    CPU must stay above a threshold for `cpu_sustain_sec` before it counts, since a busy
    burst (a tick-bounded run goes as fast as it can) is not a fault. Memory, descriptors and
    threads are levels, not rates, and count at once.
    """

    sample_interval_sec: float = Field(default=5.0, gt=0, le=600)
    warn_rss_mb: float = Field(default=MEMORY_OPERATING_MB, gt=0)
    max_rss_mb: float = Field(default=MEMORY_LIMIT_MB, gt=0)
    warn_cpu_pct: float = Field(default=75.0, gt=0)
    max_cpu_pct: float = Field(default=90.0, gt=0)
    cpu_sustain_sec: float = Field(default=120.0, ge=0)
    warn_open_fds: int = Field(default=512, gt=0)
    max_open_fds: int = Field(default=900, gt=0)
    warn_threads: int = Field(default=64, gt=0)
    max_threads: int = Field(default=128, gt=0)
    rss_warmup_sec: float = Field(default=60.0, ge=0)
    rss_growth_limit_pct_per_hour: float = Field(default=10.0, gt=0)
    rss_growth_floor_mb: float = Field(default=16.0, ge=0)

    @model_validator(mode="after")
    def _warn_not_above_max(self) -> Self:
        for signal in ("rss_mb", "cpu_pct", "open_fds", "threads"):
            warn, limit = getattr(self, f"warn_{signal}"), getattr(self, f"max_{signal}")
            if warn > limit:
                raise ValueError(f"warn_{signal}={warn} is above max_{signal}={limit}")
        return self
