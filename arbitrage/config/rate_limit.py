"""The `rate_limit` section: how long a venue is left alone after it answers 429 or 418."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from arbitrage.config.base import Frozen

MAX_EXPONENT = 64
"""Far past any cap (10**64 s), and small enough that the power never overflows."""


class RateLimitConfig(Frozen):
    """The back-off bounds: exponential from `base_sec` by `factor`, never longer than `max_sec`."""

    base_sec: float = Field(default=1.0, gt=0, le=600)
    factor: float = Field(default=2.0, ge=1, le=10)
    max_sec: float = Field(default=120.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _base_within_cap(self) -> Self:
        if self.base_sec > self.max_sec:
            raise ValueError(f"base_sec {self.base_sec:g} is above max_sec {self.max_sec:g}")
        return self

    def wait_for(self, level: int, retry_after_sec: float | None) -> float:
        """Seconds to wait after the `level`-th consecutive limit (1 = the first)."""
        if retry_after_sec is not None:
            return min(max(retry_after_sec, 0.0), self.max_sec)
        exponent = min(max(level - 1, 0), MAX_EXPONENT)
        return min(self.base_sec * self.factor**exponent, self.max_sec)
