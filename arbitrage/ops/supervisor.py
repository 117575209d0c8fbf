"""Everything that watches a run from beside the loop: watchdog, resources, metrics, alerts, guards.

The orchestrator owns the run protocol; the supervisor owns the judgement of the run while it
goes. It reads the loop's vitals (published by the loop, never locked) from its own threads,
so a stalled loop is still seen, and it can only *request* a stop: the loop still finishes its
iteration and the evidence is still flushed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from arbitrage.config import AppConfig
from arbitrage.ops import alerts
from arbitrage.ops.alerts import Notifier
from arbitrage.ops.anomaly import AnomalyTable, AnomalyTrip, Measurements
from arbitrage.ops.guards import GuardInputs, Guards, GuardTrip, PnlTally
from arbitrage.ops.metrics import EngineMetrics
from arbitrage.ops.sysmon import SysMonitor
from arbitrage.ops.trips import Trip
from arbitrage.ops.watchdog import RateWindow, Watchdog, WatchdogLoop, WatchdogSignals, WatchdogVerdict
from arbitrage.portfolio import Portfolio

log = logging.getLogger("arbitrage.supervisor")


@dataclass
class LoopVitals:
    """What the loop tells its watchers; plain fields, each written by the loop thread only.

    A tick has two times: its whole time (`tick_started_at`, `last_latency_ms`), which the watchdog
    judges to see a stalled loop, and the engine's own processing time, the tick less its waits
    on the venues (`processing_started_at`, set when the fetch returns, and
    `last_processing_ms`), which is D98's loop latency: the anomaly row and the metrics judge it.
    """

    loop_started_at: float = 0.0
    tick_started_at: float | None = None
    processing_started_at: float | None = None
    last_snapshot_at: float | None = None
    last_latency_ms: float | None = None
    last_processing_ms: float | None = None
    loop_count: int = 0
    errors_total: int = 0
    rejections_total: int = 0
    redis_ok_at: float = 0.0
    pnl_usd: float = 0.0
    entries_total: int = 0
    exits_total: int = 0
    exchange_errors_total: int = 0


class Supervisor:
    """Starts, feeds and stops the run's watchers; requests a stop on a guard trip or watchdog CRITICAL."""

    def __init__(
        self,
        config: AppConfig,
        run_id: str,
        postgres_dsn: str,
        request_stop: Callable[[str], None],
        on_trip: Callable[[Trip], object] | None = None,
        rate_limit_hits: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.vitals = LoopVitals()
        self._request_stop = request_stop
        self._on_trip = on_trip
        self.metrics = EngineMetrics(config.metrics)
        self.metrics.set_run_info(run_id=run_id, phase=config.run.phase, mode=config.run.mode)
        self.sysmon = SysMonitor(config.sysmon, on_sample=self.metrics.update_resources)
        self.watchdog = Watchdog(config.watchdog, config.heartbeat.interval_sec)
        self._watchdog_loop = WatchdogLoop(
            self.watchdog,
            self._signals,
            self._on_critical,
            on_verdict=self._on_verdict,
        )
        self._rate_limit_hits = rate_limit_hits
        self.anomalies: AnomalyTable | None = None
        self.anomaly_trip: AnomalyTrip | None = None
        svc = config.services
        self.notifier = Notifier(
            config.alerts,
            run_id,
            postgres_dsn,
            connect_timeout_sec=svc.connect_timeout_sec,
            statement_timeout_ms=svc.statement_timeout_ms,
        )
        self.guards = Guards(config.guards)
        self.pnl = PnlTally()
        self.guard_trip: GuardTrip | None = None
        self._errors = RateWindow(60.0)
        self._rejections = RateWindow(60.0)
        self._consecutive_errors = 0
        self._failures_seen = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, out: TextIO) -> None:
        """Serve metrics (printing the URL), connect the alert log and start sampling."""
        if self.config.metrics.port is not None:
            print(f"metrics: {self.metrics.serve(self.config.metrics.port)}", file=out, flush=True)
        self.notifier.start()
        run = self.config.run
        self.notifier.notify(
            alerts.RUN_START, f"{self.run_id} started: phase={run.phase} market={run.market}"
        )
        self.sysmon.start()

    def start_watchdog(self) -> None:
        now = time.monotonic()
        self.vitals.loop_started_at = now
        self.vitals.redis_ok_at = time.time()
        if self.config.run.mode == "live" or self.config.anomaly.paper:
            self.anomalies = AnomalyTable(self.config.anomaly, now)
        self._watchdog_loop.start()

    def stop_watchers(self) -> None:
        """Stop judging: the loop has ended and what follows is the close-out."""
        self._watchdog_loop.stop()
        self.sysmon.stop()

    def finish(self, evidence_dir: Path, metrics_file: str, summary_text: str) -> dict[str, Any]:
        """Send the stop alert, drain alerts, save the final scrape; return the kpi.json additions."""
        self.notifier.notify(alerts.RUN_STOP, f"{self.run_id} stopped: {summary_text}")
        self.notifier.close()
        self.metrics.set_watchdog_level(self.watchdog.level)
        self._feed_alerts()
        self.metrics.write_snapshot(evidence_dir / metrics_file)
        return {
            "resources": self.sysmon.summary(),
            "watchdog": self.watchdog.summary(),
            "alerts": self.notifier.summary(),
            "guards": None if self.guard_trip is None else self.guard_trip.to_event(),
            "anomalies": None if self.anomalies is None else self.anomalies.summary(),
        }

    def close(self) -> None:
        self.metrics.close()

    # -- what the heartbeat carries ------------------------------------------------------------
    def watchdog_level(self) -> str:
        return str(self.watchdog.level.value)

    def heartbeat_extra(self) -> dict[str, Any]:
        latest = self.sysmon.latest
        return {"sys": None if latest is None else latest.to_json()}

    def on_beat(self, epoch: float, redis_ok: bool) -> None:
        if redis_ok:
            self.vitals.redis_ok_at = time.time()
        self.metrics.mark_heartbeat(epoch)
        self._feed_alerts()

    def _feed_alerts(self) -> None:
        notifier = self.notifier
        self.metrics.update_alerts(notifier.sent_count, notifier.dlq_count, notifier.delivering)

    # -- per tick -------------------------------------------------------------------------------
    def after_tick(
        self, portfolio: Portfolio, closed_pnls: list[float], failures_total: int, exchange_errors: int,
        failed_fills: int,
    ) -> None:  # fmt: skip
        """Feed metrics and check every guard; a trip requests the stop `GUARD_<NAME>`."""
        for pnl in closed_pnls:
            self.pnl.observe(pnl)
        v = self.vitals
        v.pnl_usd = portfolio.net_pnl_usd
        v.exits_total = portfolio.closed_trades
        v.entries_total = portfolio.closed_trades + len(portfolio.positions)
        v.exchange_errors_total = exchange_errors
        self._consecutive_errors = self._consecutive_errors + 1 if failures_total > self._failures_seen else 0
        self._failures_seen = failures_total
        if v.last_latency_ms is not None and v.last_processing_ms is not None:
            self.metrics.observe_tick(v.last_processing_ms, v.last_latency_ms)
        self.metrics.update_trading(
            round_trips=portfolio.closed_trades,
            wins=portfolio.wins,
            pnl_usd=portfolio.net_pnl_usd,
            open_positions=len(portfolio.positions),
            exchange_errors=exchange_errors,
            failed_fills=failed_fills,
        )
        self.metrics.update_guard_triggers(self.vitals.rejections_total + (self.guard_trip is not None))
        self._feed_alerts()
        if self.guard_trip is not None:
            return
        latest = self.sysmon.latest
        trip = self.guards.check(
            GuardInputs(
                daily_pnl_usd=self.pnl.daily_pnl_usd(),
                worst_trade_pnl_usd=self.pnl.worst_trade_pnl_usd,
                open_positions=len(portfolio.positions),
                rss_mb=0.0 if latest is None else latest.rss_mb,
                consecutive_errors=self._consecutive_errors,
                peak_pnl_usd=portfolio.peak_pnl_usd,
                drawdown_pct=portfolio.drawdown_pct,
                consecutive_losses=portfolio.consecutive_losses,
            )
        )
        if trip is not None:
            self.guard_trip = trip
            self.metrics.update_guard_triggers(self.vitals.rejections_total + 1)
            self._request_stop(trip.stop_reason)
            if self._on_trip is not None:
                self._on_trip(trip)
            log.error("guard %s tripped: %s", trip.name, trip.detail)
            self.notifier.notify(alerts.GUARD_TRIP, f"{self.run_id} {trip.name}: {trip.detail}")

    # -- the watchdog's view --------------------------------------------------------------------
    def _running_ms(self, last_ms: float | None, started_at: float | None, now: float) -> float | None:
        """The latest completed tick's time, or the tick in progress when it already took longer;
        None until a tick has completed past the first (its warm-up does not count)."""
        latency = last_ms if self.vitals.loop_count >= 2 else None
        if started_at is not None and self.vitals.loop_count >= 1:
            latency = max(latency or 0.0, (now - started_at) * 1000.0)
        return latency

    def _signals(self) -> WatchdogSignals:
        v = self.vitals
        now = time.monotonic()
        latency = self._running_ms(v.last_latency_ms, v.tick_started_at, now)
        seen_at = v.last_snapshot_at if v.last_snapshot_at is not None else v.loop_started_at
        return WatchdogSignals(
            market_data_lag_sec=now - seen_at,
            redis_heartbeat_age_sec=time.time() - v.redis_ok_at,
            loop_latency_ms=latency,
            rejections_per_min=self._rejections.observe(v.rejections_total, now),
            errors_per_min=self._errors.observe(v.errors_total, now),
        )

    def _on_verdict(self, verdict: WatchdogVerdict) -> None:
        self.metrics.set_watchdog_level(verdict.level)
        self.check_anomalies()

    # -- the anomaly table ----------------------------------------------------------------------
    def measurements(self) -> Measurements:
        """What the anomaly table judges, read from the loop's vitals, the resources and the venues."""
        v = self.vitals
        latest = self.sysmon.latest
        now = time.monotonic()
        return Measurements(
            mono=now,
            loop_latency_ms=self._running_ms(v.last_processing_ms, v.processing_started_at, now),
            cpu_pct=None if latest is None else latest.cpu_pct,
            rss_mb=None if latest is None else latest.rss_mb,
            pnl_usd=v.pnl_usd,
            exchange_errors_total=v.exchange_errors_total,
            rate_limit_hits_total=0 if self._rate_limit_hits is None else self._rate_limit_hits(),
            entries_total=v.entries_total,
            exits_total=v.exits_total,
        )

    def check_anomalies(self) -> list[AnomalyTrip]:
        """Judge the table once: a kill row requests the stop `ANOMALY_<RULE>`, an investigate row warns."""
        if self.anomalies is None:
            return []
        fired = self.anomalies.evaluate(self.measurements())
        for trip in fired:
            kind = alerts.ANOMALY_KILL if trip.stops_run else alerts.ANOMALY_INVESTIGATE
            if trip.stops_run:
                if self.anomaly_trip is not None:
                    continue
                self.anomaly_trip = trip
                self._request_stop(trip.stop_reason)
                log.error("anomaly %s: %s, stopping (kill switch)", trip.name, trip.detail)
            else:
                log.warning("anomaly %s: %s, investigate", trip.name, trip.detail)
            if self._on_trip is not None:
                self._on_trip(trip)
            self.notifier.notify(kind, f"{self.run_id} {trip.name}: {trip.detail}")
        return fired

    def _on_critical(self, verdict: WatchdogVerdict) -> None:
        self.notifier.notify(alerts.WATCHDOG_CRITICAL, f"{self.run_id}: {'; '.join(verdict.reasons)}")
        self._request_stop("WATCHDOG_CRITICAL")
