"""The `metrics` section: where the Prometheus endpoint listens, if anywhere."""

from __future__ import annotations

from pydantic import Field

from arbitrage.config.base import Frozen


class MetricsConfig(Frozen):
    """Where the endpoint listens; `port` None serves nothing, 0 picks a free port."""

    port: int | None = Field(default=None, ge=0, le=65535)
    host: str = "127.0.0.1"
