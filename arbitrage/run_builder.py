"""The run's construction: its services reached, its admission, its manifest base, and the parts it
trades with, wired from `AppConfig` (the builder half of the run; `arbitrage.orchestrator` runs it).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TextIO

import psycopg

from arbitrage.app_role import prepare_app_role
from arbitrage.conditional_evidence import RunConditional
from arbitrage.config import AppConfig
from arbitrage.evidence_failure import EvidenceFailures
from arbitrage.execution import PaperExecutor
from arbitrage.ledger import Ledger, LedgerUnavailable, first_line
from arbitrage.live_setup import LiveSession, live_plan
from arbitrage.market.backoff import RateLimits
from arbitrage.market.fetcher import DeadlineFetcher
from arbitrage.ops.arm_claim import claim_arm
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.ops.preflight import bootstrap_gate
from arbitrage.ops.run_gate import preflight_context
from arbitrage.ops.supervisor import Supervisor
from arbitrage.ops.trips import Trip
from arbitrage.ops.watcher import RunWatcher
from arbitrage.portfolio import Portfolio
from arbitrage.run_evidence import EvidenceDir, ManifestBase, git_state
from arbitrage.run_loop import TradingLoop
from arbitrage.run_parts import RUN_LOGGER, Connected, RunParts
from arbitrage.services import EmbeddedServices, ServiceEndpoints
from arbitrage.sources import build_source
from arbitrage.state import RunState, StateUnavailable
from arbitrage.strategy import Strategy
from arbitrage.trader import Executor, Trader
from evidence import names

log = logging.getLogger(RUN_LOGGER)

MIN_FREE_DISK_MB = 100
BOOTSTRAP_FAILED = "BOOTSTRAP_FAILED"
"""The stop reason of a run that got its evidence directory but could not be set up to trade."""


class BootstrapError(Exception):
    """The run could not start; the message is the operator's one line."""


def connect(config: AppConfig, services: EmbeddedServices, opened: Callable[[Ledger], None]) -> Connected:
    """Reach PostgreSQL (the embedded one through its application role) and Redis, and check the
    evidence root has room; `opened` is told of the ledger as soon as it is open."""
    svc = config.services
    dsn = svc.postgres_dsn.get_secret_value() if svc.postgres_dsn else None
    url = svc.redis_url.get_secret_value() if svc.redis_url else None
    endpoints = services.resolve(dsn, url)
    if "postgres" in endpoints.embedded:
        try:
            app = prepare_app_role(endpoints.postgres_dsn, svc.connect_timeout_sec, svc.statement_timeout_ms)
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"embedded postgres: application role setup failed: {first_line(exc)}"
            ) from None
        endpoints = replace(endpoints, postgres_dsn=app)
    ledger = Ledger(endpoints.postgres_dsn, svc.connect_timeout_sec, svc.statement_timeout_ms)
    ledger.open()
    opened(ledger)
    state = RunState(endpoints.redis_url, svc.redis_key_prefix, svc.redis_socket_timeout_sec)
    try:
        state.ping()
    except StateUnavailable:
        ledger.close()
        raise
    root = config.run.evidence_root
    root.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(root).free / 1_048_576
    if free_mb < MIN_FREE_DISK_MB:
        raise BootstrapError(f"only {free_mb:.0f} MB free under {root}, need {MIN_FREE_DISK_MB} MB")
    return Connected(endpoints, ledger, state)


def admit(config: AppConfig, run_id: str, conn: Connected) -> str | None:
    """Preflight's bootstrap gate and, for a live run, its plan (the arm claimed, kept in `conn`);
    the refusal, or None when the run may go on."""
    record = partial(conn.ledger.record_event, run_id)
    refusal = bootstrap_gate(preflight_context(config, conn.endpoints, run_id, MIN_FREE_DISK_MB), record)
    if refusal is not None or config.run.mode != "live":
        return refusal
    svc = config.services
    claim = partial(
        claim_arm, conn.endpoints.postgres_dsn, run_id=run_id,
        connect_timeout_sec=svc.connect_timeout_sec,
        statement_timeout_ms=svc.statement_timeout_ms,
    )  # fmt: skip
    plan = live_plan(config, record, claim)
    if isinstance(plan, str):
        return plan
    conn.live = plan
    return None


def manifest_base(
    config: AppConfig, run_id: str, started_at: datetime, endpoints: ServiceEndpoints
) -> ManifestBase:
    """The manifest fields fixed at bootstrap, the source tree's git state among them."""
    run = config.run
    expected = run.expected_seconds()
    sha, dirty = git_state()
    return ManifestBase(
        run_id=run_id,
        phase=run.phase,
        mode=run.mode,
        started_at=started_at.isoformat(),
        duration_minutes=None if expected is None else round(expected / 60.0, 4),
        expected_duration_seconds=expected,
        heartbeat_interval_seconds=config.heartbeat.interval_sec,
        ticks=run.ticks,
        seed=run.seed,
        market_source=run.market,
        profile=run.profile,
        config=config.redacted(),
        config_hash=config.config_hash(),
        pid=os.getpid(),
        git_sha=sha,
        git_dirty=dirty,
        postgres_data_dir=endpoints.postgres_data_dir,
    )


class TripResponse:
    """What a guard trip or an anomaly does beyond stopping the run: the audit row and the kill switch."""

    def __init__(self, run_id: str, ledger: Ledger, kill_switch: KillSwitch | None) -> None:
        self.run_id = run_id
        self.ledger = ledger
        self.kill_switch = kill_switch

    def on_trip(self, trip: Trip) -> None:
        """The trip's event_log row; a trip that stops the run also activates the kill switch."""
        self.ledger.record_event(self.run_id, trip.event_type, trip.to_event())
        if self.kill_switch is not None and trip.stops_run:
            reason = f"{trip.kind} {trip.name}: {trip.detail}"
            self.kill_switch.activate_or_retry_at_close(reason, trip.kind, run_id=self.run_id)


class RunBuilder:
    """Wires one run's trading parts: supervisor, trader, heartbeat watcher, market source and the
    conditional evidence, in the order the run depends on."""

    def __init__(
        self,
        config: AppConfig,
        run_id: str,
        out: TextIO,
        rate_limits: RateLimits,
        failures: EvidenceFailures,
        request_stop: Callable[[str], None],
        stop_deadline: Callable[[float], float | None],
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.out = out
        self.rate_limits = rate_limits
        self.failures = failures
        self.request_stop = request_stop
        self.stop_deadline = stop_deadline
        """`StopRequest.deadline`: a time after the stop request, for the live orders' waits."""

    def build(
        self, loop: TradingLoop, conn: Connected, evidence: EvidenceDir, refusal: str | None
    ) -> RunParts:
        """The parts; a `refusal` (or one met here) stops the run at once, and no market source is
        built for it, so that the close-out still leaves the whole minimum set."""
        portfolio = Portfolio()
        supervisor, refusal = self._supervisor(conn, refusal)
        supervisor.metrics.follow_rate_limit_wait(self.rate_limits.longest_wait)
        live, strategy, trader = self._trader(conn, portfolio)
        watcher = self._watcher(loop, supervisor, conn.state, evidence)
        loop.publish(trader)
        # The source is built before the run's clock starts: importing ccxt and loading the venues'
        # markets is bootstrap, and must not count as market-data lag or run time.
        fetcher = self._fetcher(refusal)
        started_epoch = time.time()
        conditional = RunConditional(
            self.config, self.run_id, evidence, trader, supervisor, loop.books,
            partial(loop.counters, portfolio), self.failures, started_epoch,
        )  # fmt: skip
        return RunParts(
            portfolio,
            supervisor,
            live,
            strategy,
            trader,
            watcher,
            fetcher,
            conditional,
            started_epoch,
            refusal,
        )

    def _supervisor(self, conn: Connected, refusal: str | None) -> tuple[Supervisor, str | None]:
        cfg = self.config
        response = TripResponse(self.run_id, conn.ledger, conn.kill_switch)
        supervisor = Supervisor(
            cfg,
            self.run_id,
            conn.endpoints.postgres_dsn,
            self.request_stop,
            response.on_trip,
            self.rate_limits.hits_total,
        )
        if refusal is None:
            try:
                supervisor.start(self.out)
            except OSError as exc:
                refusal = f"metrics port {cfg.metrics.port} unavailable: {exc.strerror}"
            except LedgerUnavailable as exc:
                refusal = str(exc)
        if refusal is not None:
            print(f"arbitrage: {refusal}", file=sys.stderr, flush=True)
            self.request_stop(BOOTSTRAP_FAILED)
        return supervisor, refusal

    def _trader(self, conn: Connected, portfolio: Portfolio) -> tuple[LiveSession | None, Strategy, Trader]:
        cfg = self.config
        live: LiveSession | None = None
        if conn.live is not None:
            assert conn.kill_switch is not None
            record = partial(conn.ledger.record_event, self.run_id)
            live = LiveSession(
                cfg, conn.live, conn.kill_switch, record, self.rate_limits, run_id=self.run_id,
                stop=self.request_stop, stop_deadline=partial(self.stop_deadline, cfg.live.stop_venue_sec),
                record_durably=partial(conn.ledger.record_durable_event, self.run_id),
            )  # fmt: skip
        executor: Executor = PaperExecutor(cfg.strategy, cfg.run.seed) if live is None else live.executor
        strategy = Strategy(cfg.strategy if live is None else live.strategy, cfg.run.tick_interval_sec)
        return (
            live,
            strategy,
            Trader(self.run_id, strategy, executor, portfolio, conn.ledger, cfg.guards.max_open_positions),
        )

    def _watcher(
        self, loop: TradingLoop, supervisor: Supervisor, state: RunState, evidence: EvidenceDir
    ) -> RunWatcher:
        heartbeat = self.config.heartbeat
        ttl = heartbeat.redis_ttl_sec
        return RunWatcher(
            evidence.path / names.HEARTBEAT,
            heartbeat.interval_sec,
            progress=lambda: loop.progress,
            watchdog_level=supervisor.watchdog_level,
            extra=supervisor.heartbeat_extra,
            on_beat=lambda line: supervisor.on_beat(
                line["epoch_time_precise"], state.beat(self.run_id, line, ttl)
            ),
            on_write_error=self.failures.report,
        )

    def _fetcher(self, refusal: str | None) -> DeadlineFetcher | None:
        try:
            if refusal is None:
                return DeadlineFetcher(build_source(self.config, self.rate_limits))
        except Exception as exc:
            log.error("market source %s could not start: %s", self.config.run.market, exc)
            self.request_stop("SOURCE_UNAVAILABLE")
        return None
