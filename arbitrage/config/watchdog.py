"""The `watchdog` section: the WARN and ERROR thresholds of the engine's health signals (D11 §2)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from arbitrage.config.base import Frozen


class WatchdogConfig(Frozen):
    """Per-signal WARN/ERROR thresholds; a signal strictly above a threshold reaches its level.

    Redis heartbeat age is judged in heartbeat intervals plus a grace, because the key is
    only rewritten once per interval: its age normally climbs to one interval.
    """

    evaluate_interval_sec: float = Field(default=2.0, gt=0, le=60)
    market_data_lag_warn_sec: float = Field(default=5.0, gt=0)
    market_data_lag_error_sec: float = Field(default=15.0, gt=0)
    redis_heartbeat_age_warn_intervals: float = Field(default=2.0, gt=0)
    redis_heartbeat_age_error_intervals: float = Field(default=3.0, gt=0)
    redis_heartbeat_age_grace_sec: float = Field(default=5.0, ge=0)
    loop_latency_warn_ms: float = Field(default=2000.0, gt=0)
    loop_latency_error_ms: float = Field(default=5000.0, gt=0)
    rejections_warn_per_min: float = Field(default=20.0, gt=0)
    rejections_error_per_min: float = Field(default=60.0, gt=0)
    errors_warn_per_min: float = Field(default=5.0, gt=0)
    errors_error_per_min: float = Field(default=10.0, gt=0)
    critical_after_errors: int = Field(default=3, ge=1, le=100)

    @model_validator(mode="after")
    def _warn_not_above_error(self) -> Self:
        for warn_name, error_name in _THRESHOLD_PAIRS:
            warn, error = getattr(self, warn_name), getattr(self, error_name)
            if warn > error:
                raise ValueError(f"{warn_name}={warn} is above {error_name}={error}")
        return self


_THRESHOLD_PAIRS = (
    ("market_data_lag_warn_sec", "market_data_lag_error_sec"),
    ("redis_heartbeat_age_warn_intervals", "redis_heartbeat_age_error_intervals"),
    ("loop_latency_warn_ms", "loop_latency_error_ms"),
    ("rejections_warn_per_min", "rejections_error_per_min"),
    ("errors_warn_per_min", "errors_error_per_min"),
)
