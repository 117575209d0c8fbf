"""The `services` and `heartbeat` sections: PostgreSQL, Redis and the liveness beat written to Redis."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from arbitrage.config.base import Frozen


class HeartbeatConfig(Frozen):
    """The RunWatcher's own timer, independent of the trading loop."""

    interval_sec: float = Field(default=60.0, gt=0, le=3600)
    redis_ttl_sec: int = Field(default=180, gt=0, le=86_400)


class ServicesConfig(Frozen):
    """PostgreSQL and Redis. Unset DSN/URL means embedded real servers under `data_dir`."""

    postgres_dsn: SecretStr | None = None
    redis_url: SecretStr | None = None
    data_dir: Path = Path(".services")
    connect_timeout_sec: float = Field(default=5.0, gt=0, le=10)
    statement_timeout_ms: int = Field(default=5000, gt=0, le=10_000)
    redis_socket_timeout_sec: float = Field(default=2.0, gt=0, le=2)
    redis_key_prefix: str = "arb"
    ledger_group_commit: bool = True
    """Write the ledger from a group-commit thread instead of the tick thread: each record is in the
    run's journal before the call returns, and PostgreSQL gets them a batch per transaction."""
    ledger_queue_records: int = Field(default=4096, ge=1, le=1_000_000)
    """Ledger records waiting for PostgreSQL before new entries are held back (`Ledger.saturated`)."""
