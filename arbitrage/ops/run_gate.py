"""What bootstrap needs from the live-safety pieces: the preflight context and the kill switch handle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from arbitrage.config import AppConfig
from arbitrage.ledger import connect
from arbitrage.ops.kill_switch import KillSwitch, KillSwitchCache
from arbitrage.ops.preflight import PreflightContext
from arbitrage.services import ServiceEndpoints
from arbitrage.sources import build_source


def preflight_context(
    config: AppConfig,
    endpoints: ServiceEndpoints,
    run_id: str | None,
    min_free_disk_mb: float,
    *,
    probe_market: bool | None = None,
) -> PreflightContext:
    """Preflight for a run (or, with no run id, for the `preflight` command).

    By default the market is probed only in live mode: a paper run's first tick is its probe.
    """
    svc = config.services
    probe = config.run.mode == "live" if probe_market is None else probe_market
    return PreflightContext(
        mode=config.run.mode,
        env=os.environ,
        postgres_dsn=endpoints.postgres_dsn,
        redis_url=endpoints.redis_url,
        market=(lambda: build_source(config)) if probe else None,
        run_id=run_id,
        redis_key_prefix=svc.redis_key_prefix,
        connect_timeout_sec=svc.connect_timeout_sec,
        statement_timeout_ms=svc.statement_timeout_ms,
        redis_socket_timeout_sec=svc.redis_socket_timeout_sec,
        book_max_age_ms=int(config.run.book_max_age_sec * 1000),
        repo_dir=Path.cwd(),
        disk_path=config.run.evidence_root,
        min_free_disk_mb=min_free_disk_mb,
    )


def open_kill_switch(config: AppConfig, endpoints: ServiceEndpoints) -> KillSwitch:
    """The run's kill switch: PostgreSQL rows are the truth, Redis a short-lived cache."""
    svc = config.services
    dsn, url = endpoints.postgres_dsn, endpoints.redis_url

    def reconnect() -> Any:
        return connect(dsn, svc.connect_timeout_sec, svc.statement_timeout_ms)

    cache = KillSwitchCache.connect(url, svc.redis_key_prefix, svc.redis_socket_timeout_sec)
    return KillSwitch(reconnect(), cache, reconnect=reconnect)
