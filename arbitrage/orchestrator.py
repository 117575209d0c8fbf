"""The run protocol: bootstrap -> loop -> validate -> flush, and the exit code (OPS_PROTOCOL §3).

Exit 0 only when every applicable invariant held, no WARNING was logged, and the run ended
by its own stop condition. Everything else, SIGTERM included, is exit 1. The evidence is
flushed in `finally`, whatever ended the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO

import psycopg

from arbitrage.app_role import prepare_app_role
from arbitrage.closeout import RunFacts, final_flush
from arbitrage.conditional_evidence import RunConditional
from arbitrage.config import AppConfig
from arbitrage.config.anomaly import KILL
from arbitrage.daily_tally import Counters
from arbitrage.evidence_failure import STOP_REASON, EvidenceFailures
from arbitrage.execution import PaperExecutor
from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger, LedgerUnavailable, first_line
from arbitrage.live_setup import LivePlan, LiveSession, live_plan
from arbitrage.logs import WarningCounter, attach_file_log
from arbitrage.market.backoff import RateLimits
from arbitrage.market.fetcher import DeadlineFetcher, processing_ms
from arbitrage.market.last_books import LastUsableBooks
from arbitrage.market.screen import BookScreen, log_sparsely
from arbitrage.market.source import MarketDataError
from arbitrage.ops.anomaly import AnomalyTrip
from arbitrage.ops.arm_claim import claim_arm
from arbitrage.ops.guards import GuardTrip
from arbitrage.ops.kill_switch import KillSwitch, KillSwitchError
from arbitrage.ops.preflight import bootstrap_gate
from arbitrage.ops.run_gate import open_kill_switch, preflight_context
from arbitrage.ops.supervisor import LoopVitals, Supervisor
from arbitrage.ops.watcher import LoopProgress, RunWatcher
from arbitrage.portfolio import Portfolio
from arbitrage.progress import RunProgress
from arbitrage.recovery import recover_at_start
from arbitrage.run_evidence import (
    EvidenceDir,
    ManifestBase,
    git_state,
    latency_histogram,
    new_run_id,
    percentiles,
)
from arbitrage.run_summary import closing_summary
from arbitrage.services import EmbeddedServices, ServiceEndpoints, ServiceStartError
from arbitrage.sources import build_source
from arbitrage.state import RunState, StateUnavailable
from arbitrage.stop_request import StopRequest, startup_refusal
from arbitrage.strategy import Strategy
from arbitrage.trader import Executor, Trader, flatten_reason
from evidence import names
from evidence.ledger_rule import LegCounts

log = logging.getLogger("arbitrage.orchestrator")

MIN_FREE_DISK_MB = 100
BOOTSTRAP_FAILED = "BOOTSTRAP_FAILED"
"""The stop reason of a run that got its evidence directory but could not be set up to trade."""
LEDGER_DRAIN_SEC = 1.5
"""How long the close-out waits, in all, for the ledger to replay what is pending."""


class BootstrapError(Exception):
    """The run could not start; the message is the operator's one line."""


class Orchestrator:
    """One engine run, from bootstrap to the sealed evidence directory."""

    def __init__(self, config: AppConfig, out: TextIO = sys.stdout, stop: StopRequest | None = None) -> None:
        self.config = config
        self.out = out
        self.stop_request = stop or StopRequest()
        self._stop = self.stop_request.event
        self.evidence_failures = EvidenceFailures(partial(self.request_stop, STOP_REASON))
        self.warnings = WarningCounter(on_first=self._on_first_warning)
        self.run_id = new_run_id(config.run.phase)
        self.market_errors: dict[str, int] = {}
        self.screen = BookScreen(int(config.run.book_max_age_sec * 1000))
        self.books = LastUsableBooks(self.screen.max_age_ms)
        self.latencies_ms: list[float] = []
        self.processing_ms: list[float] = []
        self.loop_count = 0
        self.last_loop_ts: float | None = None
        self._progress = LoopProgress()
        self.postgres_dsn = ""
        self.abandoned_fetches = 0
        self.rate_limits = RateLimits(config.rate_limit)
        self.ledger: Ledger | None = None
        self._endpoints: ServiceEndpoints | None = None
        self._kill_switch: KillSwitch | None = None
        self._live: LivePlan | None = None
        self._conditional: RunConditional | None = None

    # -- stopping -----------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask the loop to finish its current iteration and stop; the first reason wins."""
        self.stop_request.request(reason)
        if self.ledger is not None:
            self.ledger.expedite()

    @property
    def _stop_reason(self) -> str | None:
        return self.stop_request.reason

    def _on_first_warning(self, record: logging.LogRecord) -> None:
        if self.config.warn_policy == "stop":
            self.request_stop("WARNING_LOGGED")

    def _stopped_in_startup(self) -> bool:
        """True (and the operator's line printed) when a stop came before the evidence directory."""
        refusal = startup_refusal(self.stop_request)
        if refusal is not None:
            print(refusal, file=sys.stderr, flush=True)
        return refusal is not None

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> int:
        if self._stopped_in_startup():
            return 1
        logging.getLogger().addHandler(self.warnings)
        services = EmbeddedServices(self.config.services.data_dir)
        ledger: Ledger | None = None
        state: RunState | None = None
        try:
            try:
                ledger, state = self._connect(services)
            except (BootstrapError, LedgerUnavailable, StateUnavailable, ServiceStartError) as exc:
                print(f"arbitrage: {exc}", file=sys.stderr, flush=True)
                return 1
            assert self._endpoints is not None
            if not recover_at_start(self.config, self.postgres_dsn):
                return 1
            record = partial(ledger.record_event, self.run_id)
            refusal = bootstrap_gate(
                preflight_context(self.config, self._endpoints, self.run_id, MIN_FREE_DISK_MB), record
            )
            if refusal is None and self.config.run.mode == "live":
                svc = self.config.services
                claim = partial(
                    claim_arm, self.postgres_dsn, run_id=self.run_id,
                    connect_timeout_sec=svc.connect_timeout_sec,
                    statement_timeout_ms=svc.statement_timeout_ms,
                )  # fmt: skip
                plan = live_plan(self.config, record, claim)
                refusal, self._live = (plan, None) if isinstance(plan, str) else (None, plan)
            if refusal is not None:
                print(f"arbitrage: {refusal}", file=sys.stderr, flush=True)
                return 1
            self._kill_switch = open_kill_switch(self.config, self._endpoints)
            return self._run_connected(ledger, state)
        finally:
            if self._kill_switch is not None:
                self._kill_switch.close()
            if state is not None:
                state.close()
            if ledger is not None:
                ledger.close()
            services.stop()
            logging.getLogger().removeHandler(self.warnings)

    def _connect(self, services: EmbeddedServices) -> tuple[Ledger, RunState]:
        svc = self.config.services
        dsn = svc.postgres_dsn.get_secret_value() if svc.postgres_dsn else None
        url = svc.redis_url.get_secret_value() if svc.redis_url else None
        endpoints = services.resolve(dsn, url)
        if "postgres" in endpoints.embedded:
            try:
                app = prepare_app_role(
                    endpoints.postgres_dsn, svc.connect_timeout_sec, svc.statement_timeout_ms
                )
            except psycopg.Error as exc:
                raise LedgerUnavailable(
                    f"embedded postgres: application role setup failed: {first_line(exc)}"
                ) from None
            endpoints = replace(endpoints, postgres_dsn=app)
        self._endpoints = endpoints
        self.postgres_dsn = endpoints.postgres_dsn
        ledger = Ledger(endpoints.postgres_dsn, svc.connect_timeout_sec, svc.statement_timeout_ms)
        ledger.open()
        self.ledger = ledger
        state = RunState(endpoints.redis_url, svc.redis_key_prefix, svc.redis_socket_timeout_sec)
        try:
            state.ping()
        except StateUnavailable:
            ledger.close()
            raise
        root = self.config.run.evidence_root
        root.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(root).free / 1_048_576
        if free_mb < MIN_FREE_DISK_MB:
            raise BootstrapError(f"only {free_mb:.0f} MB free under {root}, need {MIN_FREE_DISK_MB} MB")
        return ledger, state

    def _run_connected(self, ledger: Ledger, state: RunState) -> int:
        cfg = self.config
        expected = cfg.run.expected_seconds()
        started_at = datetime.now(UTC)
        sha, dirty = git_state()
        base = ManifestBase(
            run_id=self.run_id,
            phase=cfg.run.phase,
            mode=cfg.run.mode,
            started_at=started_at.isoformat(),
            duration_minutes=None if expected is None else round(expected / 60.0, 4),
            expected_duration_seconds=expected,
            heartbeat_interval_seconds=cfg.heartbeat.interval_sec,
            ticks=cfg.run.ticks,
            seed=cfg.run.seed,
            market_source=cfg.run.market,
            profile=cfg.run.profile,
            config=cfg.redacted(),
            config_hash=cfg.config_hash(),
            pid=os.getpid(),
            git_sha=sha,
            git_dirty=dirty,
            postgres_data_dir=self._endpoints.postgres_data_dir if self._endpoints else None,
        )
        if self._stopped_in_startup():
            return 1
        try:
            ledger.record_run_start(
                self.run_id, cfg.run.phase, cfg.run.mode, started_at, cfg.run.seed, sha, base.config_hash
            )
        except LedgerUnavailable as exc:
            print(f"arbitrage: {exc}", file=sys.stderr, flush=True)
            return 1
        self.evidence_failures.where = cfg.run.evidence_root / self.run_id
        try:
            evidence = EvidenceDir(cfg.run.evidence_root / self.run_id, base)
        except OSError as exc:
            return self._evidence_refused(ledger, exc)
        try:
            evidence.reserve_closeout_space()
            evidence.write_running_manifest()
        except OSError as exc:
            evidence.release_closeout_space()
            return self._evidence_refused(ledger, exc)
        print(f"evidence: {evidence.path}", file=self.out, flush=True)
        file_log = attach_file_log(evidence.path / names.ENGINE_LOG, self.evidence_failures.report)
        journal: LedgerJournal | None = None
        try:
            journal = LedgerJournal(evidence.path, cfg.run.evidence_root, self.run_id)
            ledger.attach_journal(journal)
            ledger.start_group_commit(cfg.services.ledger_queue_records)
            refusal: str | None = None
            try:
                state.register(
                    self.run_id, {"status": "running", "pid": os.getpid(), "started_at": base.started_at}
                )
                ledger.record_event(
                    self.run_id, "RUN_START", {"phase": cfg.run.phase, "config_hash": base.config_hash}
                )
            except (LedgerUnavailable, StateUnavailable) as exc:
                refusal = str(exc)
            return self._trade_and_flush(ledger, state, evidence, expected, journal, refusal)
        except OSError as exc:
            code = self._evidence_refused(ledger, exc)
            with contextlib.suppress(OSError):
                evidence.release_closeout_space()
                evidence.seal("failed")
            return code
        finally:
            if journal is not None:
                journal.close()
            with contextlib.suppress(OSError):
                evidence.release_closeout_space()
            logging.getLogger().removeHandler(file_log)
            file_log.close()

    def _evidence_refused(self, ledger: Ledger, exc: OSError) -> int:
        """A registered run whose evidence could not be written before it traded: the operator's one
        line, the `runs` row finalized as failed, exit 1."""
        print(self.evidence_failures.report(exc).line(), file=sys.stderr, flush=True)
        ledger.record_run_end(self.run_id, "failed", STOP_REASON, 1, 0, datetime.now(UTC))
        return 1

    def _trade_and_flush(
        self, ledger: Ledger, state: RunState, evidence: EvidenceDir, expected: float | None,
        journal: LedgerJournal, refusal: str | None,
    ) -> int:  # fmt: skip
        """Trade, then close out; a `refusal` (the run could not be set up) skips straight to the
        close-out, so that a run that never traded still leaves the whole minimum set."""
        cfg = self.config
        portfolio = Portfolio()
        supervisor = Supervisor(
            cfg,
            self.run_id,
            self.postgres_dsn,
            self.request_stop,
            self._on_guard_trip,
            self._on_anomaly,
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
        supervisor.metrics.follow_rate_limit_wait(self.rate_limits.longest_wait)
        live: LiveSession | None = None
        if self._live is not None:
            assert self._kill_switch is not None
            record = partial(ledger.record_event, self.run_id)
            live = LiveSession(cfg, self._live, self._kill_switch, record, self.rate_limits)
        executor: Executor = PaperExecutor(cfg.strategy, cfg.run.seed) if live is None else live.executor
        strategy = Strategy(cfg.strategy if live is None else live.strategy, cfg.run.tick_interval_sec)
        trader = Trader(self.run_id, strategy, executor, portfolio, ledger, cfg.guards.max_open_positions)
        ttl = cfg.heartbeat.redis_ttl_sec
        watcher = RunWatcher(
            evidence.path / names.HEARTBEAT,
            cfg.heartbeat.interval_sec,
            progress=lambda: self._progress,
            watchdog_level=supervisor.watchdog_level,
            extra=supervisor.heartbeat_extra,
            on_beat=lambda line: supervisor.on_beat(
                line["epoch_time_precise"], state.beat(self.run_id, line, ttl)
            ),
            on_write_error=self.evidence_failures.report,
        )
        self._publish(trader)
        # The source is built before the run's clock starts: importing ccxt and loading the venues'
        # markets is bootstrap, and must not count as market-data lag or run time.
        fetcher: DeadlineFetcher | None = None
        try:
            if refusal is None:
                fetcher = DeadlineFetcher(build_source(cfg, self.rate_limits))
        except Exception as exc:
            log.error("market source %s could not start: %s", cfg.run.market, exc)
            self.request_stop("SOURCE_UNAVAILABLE")
        started_epoch = time.time()
        self._conditional = conditional = RunConditional(
            cfg, self.run_id, evidence, trader, supervisor, self.books, partial(self._counters, portfolio),
            self.evidence_failures, started_epoch,
        )  # fmt: skip
        t0 = time.monotonic()
        watcher.start()
        if refusal is None:
            supervisor.start_watchdog()
        progress = RunProgress(
            expected, cfg.run.ticks, mode="log" if cfg.run.log_format == "json" else "auto"
        )
        try:
            if fetcher is not None:
                self._loop(fetcher, trader, supervisor, t0, expected, progress, watcher)
        except Exception as exc:
            log.exception("trading loop crashed: %s", exc)
            self.request_stop(f"EXCEPTION_{type(exc).__name__}")
        finally:
            supervisor.stop_watchers()
            conditional.before_flatten(self.loop_count, self.last_loop_ts)
            trader.flatten(self.books, int(time.time() * 1000), flatten_reason(self._stop_reason))
            drain_until = time.monotonic() + LEDGER_DRAIN_SEC
            ledger.drain(LEDGER_DRAIN_SEC)
            if live is not None:
                live.close()
            self._publish(trader)
            duration = time.monotonic() - t0
            self._final_progress(progress, trader, watcher, duration)
            progress.close()
            if fetcher is not None:
                fetcher.close()
                self.abandoned_fetches = fetcher.abandoned
            watcher.stop()
        facts = RunFacts(
            run_id=self.run_id,
            expected_seconds=expected,
            heartbeat_interval_seconds=evidence.base.heartbeat_interval_seconds,
            started_epoch=started_epoch,
            ended_epoch=time.time(),
            duration_seconds=duration,
            beat_epochs=watcher.beat_epochs,
            stop_reason=self._stop_reason or "UNKNOWN",
            portfolio=portfolio,
            opportunities_generated=strategy.opportunities_generated,
            db_inserts_ok=ledger.db_inserts_ok,
            warnings=self.warnings,
            acked_legs=LegCounts(ledger.acked_legs["entry"], ledger.acked_legs["exit"]),
            journaled_legs=ledger.pending_legs,
            open_positions=list(trader.left_open),
        )
        outcome = f"stop_reason={facts.stop_reason} closed_trades={portfolio.closed_trades}"
        finish = partial(supervisor.finish, evidence.path, names.METRICS_SNAPSHOT, outcome)

        def finalize(exit_code: int, status: str) -> None:
            """The run's last ledger records, journaled before the final seal so that it covers them."""
            ledger.record_event(
                self.run_id, "RUN_END", {"stop_reason": facts.stop_reason, "exit_code": exit_code}
            )
            ledger.record_run_end(
                self.run_id, status, facts.stop_reason, exit_code, portfolio.closed_trades, datetime.now(UTC)
            )
            ledger.drain(max(0.0, drain_until - time.monotonic()))

        exit_code, status = final_flush(
            evidence,
            facts,
            self._kpi(trader, watcher),
            finish,
            self.evidence_failures,
            finalize,
            conditional.write,
        )
        supervisor.close()
        pending = ledger.pending_count
        journal.settle(pending)
        if ledger.pending_unjournaled:
            print(
                f"arbitrage: {ledger.pending_unjournaled} ledger records of run {self.run_id} reached"
                f" neither PostgreSQL nor the journal ({ledger.journal_error}): lost with this process",
                file=sys.stderr, flush=True,
            )  # fmt: skip
        elif pending:
            print(
                f"arbitrage: {pending} ledger records of run {self.run_id} are not in PostgreSQL yet: kept in"
                f" {journal.path}; the next `arbitrage run` or `arbitrage preflight` replays them",
                file=sys.stderr, flush=True,
            )  # fmt: skip
        state.set_status(self.run_id, status, exit_code=exit_code)
        log.info(
            "run %s %s: stop_reason=%s closed_trades=%d net_pnl_usd=%.4f exit=%d",
            self.run_id, status, facts.stop_reason, portfolio.closed_trades, portfolio.net_pnl_usd, exit_code,
        )  # fmt: skip
        print("\n".join(closing_summary(evidence.path)), file=self.out, flush=True)
        return exit_code

    def _final_progress(
        self, progress: RunProgress, trader: Trader, watcher: RunWatcher, elapsed: float
    ) -> None:
        """The progress display's last state: after the flatten, so its trades are chain_summary's."""
        beats = watcher.beat_epochs
        portfolio = trader.portfolio
        progress.update(
            elapsed,
            portfolio.closed_trades,
            time.time() - beats[-1] if beats else None,
            portfolio.net_pnl_usd,
            self.loop_count,
            len(portfolio.positions),
        )

    def _on_guard_trip(self, trip: GuardTrip) -> None:
        """Hook for what a trip does beyond stopping the run (the kill switch and the audit row)."""
        if self.ledger is not None:
            self.ledger.record_event(self.run_id, "GUARD_TRIP", trip.to_event())
        if self._kill_switch is not None:
            try:
                self._kill_switch.activate(f"guard {trip.name}: {trip.detail}", "guard", run_id=self.run_id)
            except KillSwitchError as exc:
                log.error("kill switch activation after guard %s failed: %s", trip.name, exc)

    def _on_anomaly(self, trip: AnomalyTrip) -> None:
        """An anomaly row's audit row; a kill row also activates the kill switch, as a guard trip does."""
        if self.ledger is not None:
            self.ledger.record_event(self.run_id, "ANOMALY", trip.to_event())
        if self._kill_switch is not None and trip.action == KILL:
            try:
                reason = f"anomaly {trip.rule}: {trip.detail}"
                self._kill_switch.activate(reason, "anomaly", run_id=self.run_id)
            except KillSwitchError as exc:
                log.error("kill switch activation after anomaly %s failed: %s", trip.rule, exc)

    def _loop(
        self, fetcher: DeadlineFetcher, trader: Trader, supervisor: Supervisor, t0: float,
        expected: float | None, progress: RunProgress, watcher: RunWatcher,
    ) -> None:  # fmt: skip
        cfg = self.config.run
        interval = cfg.tick_interval_sec
        vitals = supervisor.vitals
        next_due = time.monotonic()
        while not self._stop.is_set():
            if expected is not None and time.monotonic() - t0 >= expected:
                self.request_stop("DURATION_REACHED")
                break
            if cfg.ticks is not None and self.loop_count >= cfg.ticks:
                self.request_stop("TICKS_COMPLETED")
                break
            started = time.perf_counter()
            vitals.tick_started_at = time.monotonic()
            deadline = None if expected is None else t0 + expected
            if not self._tick(fetcher, trader, deadline, vitals):
                if not self._stop.is_set():
                    self.request_stop("DURATION_REACHED")
                break
            if cfg.debug_tick_delay_sec > 0:
                self._stop.wait(cfg.debug_tick_delay_sec)
            latency_ms = (time.perf_counter() - started) * 1000.0
            waited_ms = fetcher.last_wait_ms + trader.take_venue_wait_ms()
            vitals.last_processing_ms = processing = processing_ms(latency_ms, waited_ms)
            if self._conditional is not None:
                self._conditional.after_tick()
            vitals.tick_started_at = vitals.processing_started_at = None
            self.latencies_ms.append(latency_ms)
            self.processing_ms.append(processing)
            self.loop_count += 1
            self.last_loop_ts = time.time()
            self._publish(trader)
            self._after_tick(trader, supervisor, latency_ms)
            watcher.check_file()
            beats = watcher.beat_epochs
            progress.update(
                time.monotonic() - t0,
                trader.portfolio.closed_trades,
                time.time() - beats[-1] if beats else None,
                trader.portfolio.net_pnl_usd,
                self.loop_count,
                len(trader.portfolio.positions),
            )
            if cfg.ticks is None:
                next_due += interval
                wait = next_due - time.monotonic()
                if expected is not None:
                    wait = min(wait, t0 + expected - time.monotonic())
                if wait > 0:
                    self._stop.wait(wait)
                else:
                    next_due = time.monotonic()

    def _after_tick(self, trader: Trader, supervisor: Supervisor, latency_ms: float) -> None:
        """Tell the supervisor what the tick did; it feeds the metrics and checks the guards."""
        ledger = trader.ledger
        if ledger.journal_error is not None:
            self.evidence_failures.report(ledger.journal_error)
        vitals = supervisor.vitals
        vitals.last_latency_ms = latency_ms
        vitals.loop_count = self.loop_count
        exchange_errors = sum(self.market_errors.values())
        vitals.errors_total = exchange_errors + ledger.db_inserts_failed + ledger.event_inserts_failed
        failed_fills = sum(trader.rejected_orders.values()) + trader.leg_unwinds
        vitals.rejections_total = sum(self.screen.rejected.values()) + failed_fills
        supervisor.after_tick(
            trader.portfolio,
            trader.drain_closed_pnls(),
            ledger.db_inserts_failed + trader.leg_unwinds,
            exchange_errors,
            failed_fills,
        )

    def _tick(
        self, fetcher: DeadlineFetcher, trader: Trader, deadline: float | None, vitals: LoopVitals
    ) -> bool:
        """One iteration; False when the fetch was given up for the deadline or a stop."""
        try:
            snapshot = fetcher.fetch(deadline, self._stop)
        except MarketDataError as exc:
            count = self.market_errors[exc.kind] = self.market_errors.get(exc.kind, 0) + 1
            if log_sparsely(count):
                log.warning("market data unavailable (%s, %d so far): %s", exc.kind, count, exc)
            return True
        if snapshot is None:
            return False
        vitals.processing_started_at = time.monotonic()
        screened = self.screen.screen(snapshot, int(time.time() * 1000))
        if screened is not None:
            self.books.remember(screened)
            vitals.last_snapshot_at = time.monotonic()
            trader.on_snapshot(screened)
        return True

    def _counters(self, portfolio: Portfolio) -> Counters:
        """The running totals the daily report takes its per-day differences of."""
        hits = sum(venue["hits"] for venue in self.rate_limits.kpi().values())
        exchange_errors = sum(self.market_errors.values())
        return Counters(portfolio.closed_trades, portfolio.wins, portfolio.net_pnl_usd, exchange_errors, hits)

    def _publish(self, trader: Trader) -> None:
        self._progress = LoopProgress(
            self.loop_count, self.last_loop_ts, trader.kpi_view(), trader.guard_view()
        )

    def _kpi(self, trader: Trader, watcher: RunWatcher) -> dict[str, Any]:
        return trader.final_kpi() | {
            "run_id": self.run_id,
            "loop_count": self.loop_count,
            "loop_latency_ms": percentiles(self.processing_ms),
            "loop_latency_histogram": latency_histogram(self.processing_ms),
            "tick_duration_ms": percentiles(self.latencies_ms),
            "market_errors": dict(self.market_errors),
            "rejected_books": dict(self.screen.rejected),
            "abandoned_fetches": self.abandoned_fetches,
            "rate_limit": self.rate_limits.kpi(),
            "rss_mb_last": watcher.last_rss_mb,
            "ledger": trader.ledger.account(),
        }
