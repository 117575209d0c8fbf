"""Prometheus metrics of one engine: the ten names of D98 §3.1, D77-4 §2.3's, and the standard ones.

Each engine owns a private `CollectorRegistry`, so several engines (or tests) in one process
never collide. The loop feeds it through cheap setters; the harness monitor polls the HTTP
endpoint while the run goes (D77-4 §2.3), and the final scrape is kept in the evidence as
`metrics_snapshot.prom`. Names follow Prometheus conventions (base units, `_total` only on
counters, a histogram for latency, the `process_*` collector, an `_info` metric naming the run)
except the ten of D98 §3.1, which keep the runbook's spelling (`D98_LINT_EXCEPTIONS`).

`arbitrage_loop_latency_ms` is D98's loop latency (< 50 ms goal, > 100 ms for a minute kills): the
engine's own processing time per tick, the time spent waiting on the venues (their books and, live,
their orders, ccxt's rate limiter included) left out, so that it means the same against a venue 5 ms
or 300 ms away. The whole tick, that wait included, is `arbitrage_tick_duration_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.metrics_core import Metric

from arbitrage import __version__
from arbitrage.config.metrics import MetricsConfig
from arbitrage.ops.sysmon import ResourceSample
from arbitrage.ops.watchdog import Level
from evidence.writer import atomic_write_bytes

log = logging.getLogger("arbitrage.metrics")

D98_METRICS: Final[tuple[str, ...]] = (
    "arbitrage_loop_latency_ms",
    "arbitrage_round_trips_total",
    "arbitrage_pnl_usd_total",
    "arbitrage_win_rate",
    "arbitrage_cpu_percent",
    "arbitrage_memory_mb",
    "arbitrage_exchange_errors_total",
    "arbitrage_rate_limit_wait_seconds",
    "arbitrage_open_positions",
    "arbitrage_failed_fills_total",
)
"""The operator's ten metrics (D98 §3.1), exactly as exposed."""

D98_LINT_EXCEPTIONS: Final[dict[str, str]] = {
    "arbitrage_loop_latency_ms": "abbreviated unit (ms); arbitrage_loop_latency_seconds is the histogram",
    "arbitrage_memory_mb": "abbreviated unit (MB); process_resident_memory_bytes is the standard one",
    "arbitrage_pnl_usd_total": "a gauge with a `_total` suffix (PnL can go down)",
}
"""The D98 names `promtool check metrics` objects to, and why; kept as the runbook spells them."""

EXTRA_METRICS: Final[tuple[str, ...]] = (
    "arbitrage_loop_latency_seconds",
    "arbitrage_tick_duration_seconds",
    "arbitrage_heartbeat_age_seconds",
    "arbitrage_watchdog_level",
    "arbitrage_run_info",
    "arbitrage_guard_triggers_total",
    "alert_sent_total",
    "alert_dlq_total",
    "notifier_available",
)
"""Latency histograms (the engine's processing; the whole tick, its venue wait included),
liveness, the run's identity and alerting: what the harness monitor and the
dashboards read beside the ten (D77-4 §2.3 spells `alert_dlq_total` and `notifier_available`)."""

PROCESS_METRICS: Final[tuple[str, ...]] = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
)
"""The standard process collector's families (Linux)."""

LATENCY_BUCKETS_SECONDS: Final[tuple[float, ...]] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Histogram bounds; 0.05 and 0.1 are D77-4's yellow and red lines for the loop latency p99."""


class _DocumentedSeries(CollectorRegistry):
    """A registry that leaves out the `_created` series, which would add names beside the documented
    ones, without `disable_created_metrics()` switching them off for the whole process."""

    def collect(self) -> Iterable[Metric]:
        for metric in super().collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class _Total:
    """A Counter fed from a running total the engine already keeps."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.seen = 0.0

    def set_total(self, total: float) -> None:
        if total > self.seen:
            self.counter.inc(total - self.seen)
            self.seen = total


class EngineMetrics:
    """The engine's metric families in a private registry, and the optional HTTP endpoint."""

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()
        self.registry: CollectorRegistry = _DocumentedSeries(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self._add_run_series(self.registry)
        self._add_protection_series(self.registry)
        self._last_beat = time.time()
        self.heartbeat_age.set_function(lambda: max(0.0, time.time() - self._last_beat))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def _add_run_series(self, r: CollectorRegistry) -> None:
        """The loop's, the trades' and the process's series, registered in exposition order."""
        self.loop_latency_ms = Gauge(
            "arbitrage_loop_latency_ms",
            "Engine processing time of the latest loop tick, venue wait excluded (ms)",
            registry=r,
        )
        self.loop_latency = Histogram(
            "arbitrage_loop_latency_seconds",
            "Engine processing time of each loop tick, venue wait excluded",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.tick_duration = Histogram(
            "arbitrage_tick_duration_seconds",
            "Whole time of each loop tick, market-data fetch and rate-limit wait included",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.run_info = Info("arbitrage_run", "The run being scraped", registry=r)
        self.round_trips = _Total(
            Counter("arbitrage_round_trips", "Closed round trips (entry and exit)", registry=r)
        )
        self.pnl_usd = Gauge("arbitrage_pnl_usd_total", "Realized net PnL of the run (USD)", registry=r)
        self.win_rate = Gauge("arbitrage_win_rate", "Winning share of closed round trips (0..1)", registry=r)
        self.cpu_percent = Gauge("arbitrage_cpu_percent", "CPU use of the engine process (%)", registry=r)
        self.memory_mb = Gauge(
            "arbitrage_memory_mb", "Resident memory of the engine process (MB)", registry=r
        )
        self.exchange_errors = _Total(
            Counter("arbitrage_exchange_errors", "Market-data and exchange call failures", registry=r)
        )

    def _add_protection_series(self, r: CollectorRegistry) -> None:
        """The run's health series: rate limits, positions, fills, heartbeat, watchdog, guards, alerts."""
        self.rate_limit_wait = Gauge(
            "arbitrage_rate_limit_wait_seconds",
            "Seconds the engine is still leaving a venue alone after a 429/418 (longest over venues)",
            registry=r,
        )
        self.open_positions = Gauge("arbitrage_open_positions", "Positions currently held", registry=r)
        self.failed_fills = _Total(
            Counter("arbitrage_failed_fills", "Legs refused or failed at execution", registry=r)
        )
        self.heartbeat_age = Gauge(
            "arbitrage_heartbeat_age_seconds", "Seconds since the last heartbeat line", registry=r
        )
        self.watchdog_level = Gauge(
            "arbitrage_watchdog_level", "Watchdog level: 0 OK, 1 WARN, 2 ERROR, 3 CRITICAL", registry=r
        )
        self.guard_triggers = _Total(
            Counter(
                "arbitrage_guard_triggers",
                "Guard trips and refusals by a protective check (books screened out, orders refused, "
                "legs unwound)",
                registry=r,
            )
        )
        self.alerts_sent = _Total(Counter("alert_sent", "Alerts delivered", registry=r))
        self.alerts_dlq = _Total(Counter("alert_dlq", "Alerts dead-lettered", registry=r))
        self.notifier_available = Gauge(
            "notifier_available",
            "1 while an alert channel is configured and its latest alert was not dead-lettered, else 0",
            registry=r,
        )

    # -- feeding --------------------------------------------------------------------------------
    def set_run_info(self, *, run_id: str, phase: str, mode: str, version: str | None = None) -> None:
        """Name the run in `arbitrage_run_info` (version: the installed package's, unless given)."""
        self.run_info.info(
            {"run_id": run_id, "phase": phase, "mode": mode, "version": version or __version__}
        )

    def observe_tick(self, latency_ms: float, tick_ms: float | None = None) -> None:
        """After each loop tick: D98's loop latency, the engine's processing time (`latency_ms`), in
        the last-value gauge (ms) and its histogram (s); the whole tick (`tick_ms`, the processing
        plus the wait on the venues; `latency_ms` when not given) in its own histogram."""
        self.loop_latency_ms.set(latency_ms)
        self.loop_latency.observe(latency_ms / 1000.0)
        self.tick_duration.observe((latency_ms if tick_ms is None else tick_ms) / 1000.0)

    def follow_rate_limit_wait(self, wait_left_sec: Callable[[], float]) -> None:
        """Read the rate-limit wait from the venues' back-off state at every scrape.

        Computed when scraped, like the heartbeat age, so a scrape during a ban sees the wait
        left even while no tick runs. Pass `RateLimits.longest_wait`.
        """
        self.rate_limit_wait.set_function(wait_left_sec)

    def update_trading(
        self,
        *,
        round_trips: int,
        wins: int,
        pnl_usd: float,
        open_positions: int,
        exchange_errors: int,
        failed_fills: int,
    ) -> None:
        """From the portfolio's and the loop's running totals (counters only ever move up)."""
        self.round_trips.set_total(round_trips)
        self.win_rate.set(wins / round_trips if round_trips else 0.0)
        self.pnl_usd.set(pnl_usd)
        self.open_positions.set(open_positions)
        self.exchange_errors.set_total(exchange_errors)
        self.failed_fills.set_total(failed_fills)

    def update_resources(self, sample: ResourceSample) -> None:
        """From each SysMonitor sample (pass as its `on_sample`)."""
        self.cpu_percent.set(sample.cpu_pct)
        self.memory_mb.set(sample.rss_mb)

    def mark_heartbeat(self, epoch: float | None = None) -> None:
        """After each heartbeat line; the age gauge is computed at scrape time from this."""
        self._last_beat = time.time() if epoch is None else epoch

    def update_guard_triggers(self, total: int) -> None:
        """From the running count of guard trips and protective refusals."""
        self.guard_triggers.set_total(total)

    def set_watchdog_level(self, level: Level) -> None:
        self.watchdog_level.set(level.rank)

    def update_alerts(self, sent: int, dlq: int, available: bool) -> None:
        """From the notifier's counts; `available` is its `delivering` (configured and not failing)."""
        self.alerts_sent.set_total(sent)
        self.alerts_dlq.set_total(dlq)
        self.notifier_available.set(1.0 if available else 0.0)

    # -- exposing -------------------------------------------------------------------------------
    def serve(self, port: int | None = None) -> str:
        """Start the HTTP endpoint (0 = a free port) and return its URL; OSError if the port is taken."""
        if self._server is not None:
            raise RuntimeError(f"metrics endpoint already serving at {self.url}")
        port = self.config.port if port is None else port
        if port is None:
            raise ValueError("no metrics port configured")
        host = self.config.host
        server, self._thread = prometheus_client.start_wsgi_server(port, host, self.registry)
        self._server = server
        shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{server.server_address[1]}/metrics"
        log.info("metrics endpoint at %s", self.url)
        return self.url

    def scrape(self) -> str:
        """The exposition text, exactly as the endpoint serves it."""
        return prometheus_client.generate_latest(self.registry).decode("utf-8")

    def write_snapshot(self, path: Path) -> None:
        """Save the final scrape atomically (`metrics_snapshot.prom` in the evidence)."""
        atomic_write_bytes(path, self.scrape().encode("utf-8"))

    def close(self) -> None:
        """Stop the endpoint and free its port; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
