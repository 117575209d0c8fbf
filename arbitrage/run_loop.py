"""The run's loop: fetch, screen, trade, tell the supervisor, publish progress; and what it counted.

The loop stops at a stop request, at the run's duration or its tick count, or when a fetch is
given up for the deadline; `wind_down` then flattens what is open and stops the parts it drove.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from arbitrage.config import AppConfig
from arbitrage.daily_tally import Counters
from arbitrage.evidence_failure import EvidenceFailures
from arbitrage.ledger import Ledger
from arbitrage.market.backoff import RateLimits
from arbitrage.market.fetcher import DeadlineFetcher, processing_ms
from arbitrage.market.last_books import LastUsableBooks
from arbitrage.market.screen import BookScreen, log_sparsely
from arbitrage.market.source import MarketDataError
from arbitrage.ops.supervisor import LoopVitals, Supervisor
from arbitrage.ops.watcher import LoopProgress, RunWatcher
from arbitrage.portfolio import Portfolio
from arbitrage.progress import RunProgress
from arbitrage.run_closure import record_closure
from arbitrage.run_evidence import latency_histogram, percentiles
from arbitrage.run_parts import RUN_LOGGER, RunClock, RunParts
from arbitrage.stop_request import StopRequest
from arbitrage.trader import Trader, flatten_reason

log = logging.getLogger(RUN_LOGGER)

LEDGER_DRAIN_SEC = 1.5
"""How long the close-out waits, in all, for the ledger to replay what is pending."""
STOP_FETCH_SEC = 2.0
"""How long the stop waits for fresh books when an open position's last usable ones are too old
to price its exit on. A request the venue has not answered by then is cancelled when the fetcher
closes."""


LEAD_LOGGED_SEC = 0.05
"""A flatten lead this long is said in the log (a paper flatten's, microseconds, is not)."""


class TradingLoop:
    """The ticks of one run and their counters (loop count, latencies, market errors, screened books)."""

    def __init__(
        self,
        config: AppConfig,
        stop: StopRequest,
        request_stop: Callable[[str], None],
        failures: EvidenceFailures,
        rate_limits: RateLimits,
    ) -> None:
        self.config = config
        self.stop = stop
        self.request_stop = request_stop
        self.failures = failures
        self.rate_limits = rate_limits
        self.market_errors: dict[str, int] = {}
        self.screen = BookScreen(int(config.run.book_max_age_sec * 1000))
        self.books = LastUsableBooks(self.screen.max_age_ms)
        self.latencies_ms: list[float] = []
        """Whole ticks, market-data and order waits included (kpi `tick_duration_ms`)."""
        self.processing_ms: list[float] = []
        """The engine's own time per tick (kpi `loop_latency_ms`, D98's loop latency)."""
        self.loop_count = 0
        self.last_loop_ts: float | None = None
        self.progress = LoopProgress()
        """The last published progress; the heartbeat thread reads it, replaced whole."""
        self.abandoned_fetches = 0

    def run(self, fetcher: DeadlineFetcher, parts: RunParts, progress: RunProgress, clock: RunClock) -> None:
        """Tick until a stop is requested, the run's bound is reached or a fetch is given up."""
        cfg = self.config.run
        event = self.stop.event
        vitals = parts.supervisor.vitals
        next_due = time.monotonic()
        while not event.is_set() and not self._bound_reached(clock, parts.trader):
            started = time.perf_counter()
            vitals.tick_started_at = time.monotonic()
            if not self._tick(fetcher, parts.trader, self._trading_end(clock, parts.trader), vitals):
                if not event.is_set():
                    self.request_stop("DURATION_REACHED")
                break
            if cfg.debug_tick_delay_sec > 0:
                event.wait(cfg.debug_tick_delay_sec)
            latency_ms = (time.perf_counter() - started) * 1000.0
            waited_ms = fetcher.last_wait_ms + parts.trader.take_venue_wait_ms()
            vitals.last_processing_ms = processing_ms(latency_ms, waited_ms)
            self._record(parts, latency_ms, vitals.last_processing_ms)
            self.show(progress, parts.trader, parts.watcher, time.monotonic() - clock.t0)
            if cfg.ticks is None:
                next_due = self._pace(next_due, self._trading_end(clock, parts.trader))

    def _trading_end(self, clock: RunClock, trader: Trader) -> float | None:
        """When the last tick must end (monotonic): the run's deadline less the time the flatten of
        the open positions is expected to take (`flatten_lead`); None for a tick-bound run."""
        if clock.deadline is None:
            return None
        open_positions = len(trader.portfolio.positions)
        return clock.deadline - trader.flatten_lead.lead_sec(open_positions, self.config.live.stop_venue_sec)

    def _bound_reached(self, clock: RunClock, trader: Trader) -> bool:
        """True (and the stop requested) once the run's duration or tick count is reached."""
        end = self._trading_end(clock, trader)
        if end is not None and time.monotonic() >= end:
            if clock.deadline is not None and clock.deadline - end >= LEAD_LOGGED_SEC:
                log.info("duration: trading ends %.2fs early for the flatten of %d open position(s)",
                         clock.deadline - end, len(trader.portfolio.positions))  # fmt: skip
            self.request_stop("DURATION_REACHED")
            return True
        ticks = self.config.run.ticks
        if ticks is not None and self.loop_count >= ticks:
            self.request_stop("TICKS_COMPLETED")
            return True
        return False

    def _pace(self, next_due: float, end: float | None) -> float:
        """Wait for the next tick's slot (never past the trading end); the slot after it is due from."""
        next_due += self.config.run.tick_interval_sec
        wait = next_due - time.monotonic()
        if end is not None:
            wait = min(wait, end - time.monotonic())
        if wait > 0:
            self.stop.event.wait(wait)
            return next_due
        return time.monotonic()

    def _tick(
        self, fetcher: DeadlineFetcher, trader: Trader, deadline: float | None, vitals: LoopVitals
    ) -> bool:
        """One iteration; False when the fetch was given up for the deadline or a stop."""
        try:
            snapshot = fetcher.fetch(deadline, self.stop.event)
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

    def _record(self, parts: RunParts, latency_ms: float, processing: float) -> None:
        """Count a finished tick, publish it, and let the supervisor and the watcher see it."""
        parts.conditional.after_tick()
        vitals = parts.supervisor.vitals
        vitals.tick_started_at = vitals.processing_started_at = None
        self.latencies_ms.append(latency_ms)
        self.processing_ms.append(processing)
        self.loop_count += 1
        self.last_loop_ts = time.time()
        self.publish(parts.trader)
        self._after_tick(parts.trader, parts.supervisor, latency_ms)
        parts.watcher.check_file()

    def _after_tick(self, trader: Trader, supervisor: Supervisor, latency_ms: float) -> None:
        """Tell the supervisor what the tick did; it feeds the metrics and checks the guards."""
        ledger = trader.ledger
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

    def wind_down(
        self, parts: RunParts, ledger: Ledger, progress: RunProgress, clock: RunClock
    ) -> tuple[float, float]:
        """Stop the watchers, flatten what is open, drain the ledger and stop the parts the loop drove;
        return the run's duration and the monotonic time the ledger's drain must end by."""
        parts.supervisor.stop_watchers()
        parts.conditional.before_flatten(self.loop_count, self.last_loop_ts)
        self._refresh_books_for_flatten(parts)
        parts.trader.flatten(self.books, int(time.time() * 1000), flatten_reason(self.stop.reason))
        drain_until = time.monotonic() + LEDGER_DRAIN_SEC
        ledger.drain(LEDGER_DRAIN_SEC)
        record_closure(ledger, parts.trader.run_id)
        if parts.live is not None:
            parts.live.close()
        ledger.drain(max(0.0, drain_until - time.monotonic()))
        self.publish(parts.trader)
        duration = time.monotonic() - clock.t0
        self.show(progress, parts.trader, parts.watcher, duration)
        progress.close()
        if parts.fetcher is not None:
            parts.fetcher.close()
            self.abandoned_fetches = parts.fetcher.abandoned
        parts.watcher.stop()
        return duration, drain_until

    def _refresh_books_for_flatten(self, parts: RunParts) -> None:
        """Fetch once more when an open position's last usable books are too old to exit on.

        A stop late in a long tick interval, or just after a venue recovered, would otherwise leave
        a position open that fresh books can close. The fresh books only price the flatten: no
        entry or exit is decided on them. A failed or rejected fetch leaves the old books, and the
        flatten reports what it cannot close as before.
        """
        now_ms = int(time.time() * 1000)
        positions = parts.trader.portfolio.positions.values()
        stale = sorted(
            {p.symbol for p in positions if isinstance(self.books.for_exit(p.symbol, now_ms), str)}
        )
        if not stale or parts.fetcher is None:
            return
        if parts.fetcher.gave_up:
            log.info(
                "stop: no fresh books for the flatten of %s: the loop gave its last fetch up",
                ", ".join(stale),
            )
            return
        try:
            snapshot = parts.fetcher.fetch_at_stop(STOP_FETCH_SEC)
        except MarketDataError as exc:
            self.market_errors[exc.kind] = self.market_errors.get(exc.kind, 0) + 1
            log.info("stop: no fresh books for the flatten of %s (%s): %s", ", ".join(stale), exc.kind, exc)
            return
        if snapshot is None:
            log.info(
                "stop: no fresh books for the flatten of %s within %gs", ", ".join(stale), STOP_FETCH_SEC
            )
            return
        screened = self.screen.screen(snapshot, int(time.time() * 1000))
        fresh = [] if screened is None else [s for s in stale if s in screened.symbols()]
        if screened is not None:
            self.books.remember(screened)
        log.info(
            "stop: fresh books for the flatten of %s (usable: %s)",
            ", ".join(stale),
            ", ".join(fresh) or "none",
        )

    def show(self, progress: RunProgress, trader: Trader, watcher: RunWatcher, elapsed: float) -> None:
        """Update the progress display; the last call is after the flatten, so its trades are
        chain_summary's."""
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

    def publish(self, trader: Trader) -> None:
        """Replace the progress the heartbeat thread reads."""
        self.progress = LoopProgress(
            self.loop_count, self.last_loop_ts, trader.kpi_view(), trader.guard_view()
        )

    def counters(self, portfolio: Portfolio) -> Counters:
        """The running totals the daily report takes its per-day differences of."""
        hits = sum(venue["hits"] for venue in self.rate_limits.kpi().values())
        exchange_errors = sum(self.market_errors.values())
        return Counters(portfolio.closed_trades, portfolio.wins, portfolio.net_pnl_usd, exchange_errors, hits)

    def kpi(self, run_id: str, trader: Trader, watcher: RunWatcher) -> dict[str, Any]:
        """kpi.json: the trader's figures and the loop's."""
        return trader.final_kpi() | {
            "run_id": run_id,
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
            "residual": trader.residuals.kpi(self.config.residual),
        }
