"""Operator alerts over the Telegram Bot API, with retries, a dead-letter count and a delivery log.

Alerts fire on run start and stop, guard trips, watchdog CRITICAL and anomaly-table rows. Delivery runs on a
worker thread behind a queue, so the trading loop never waits on Telegram. Every attempt is
a row in `alert_deliveries` (SENT, RETRY, DLQ; DISABLED when no bot is configured); an alert
that exhausts its attempts, hits a permanent error, or is still undelivered at shutdown is
dead-lettered and logged as an ERROR, so the run fails (WARN = FAIL, and the harness fails
any run with DLQ > 0, D77-4 §3.4). An unconfigured notifier is not a failure: its alerts are
recorded as DISABLED and `notifier_available` is false. The bot token is part of the request
URL and is never logged or stored.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from arbitrage.config.alerts import AlertsConfig
from arbitrage.ledger import STOP_GRACE_SEC, LedgerUnavailable
from arbitrage.ops.alert_policy import DeliveryCounts, DeliveryPolicy, Outcome, Status
from arbitrage.ops.alert_store import DeliveryLog
from arbitrage.ops.telegram import TelegramBot

__all__ = [
    "ANOMALY_INVESTIGATE", "ANOMALY_KILL", "GUARD_TRIP", "RUN_START", "RUN_STOP",
    "TELEGRAM_TEXT_LIMIT", "WATCHDOG_CRITICAL", "Notifier", "Status",
]  # fmt: skip

log = logging.getLogger("arbitrage.alerts")

RUN_START: Final = "RUN_START"
RUN_STOP: Final = "RUN_STOP"
GUARD_TRIP: Final = "GUARD_TRIP"
WATCHDOG_CRITICAL: Final = "WATCHDOG_CRITICAL"
ANOMALY_KILL: Final = "ANOMALY_KILL"
ANOMALY_INVESTIGATE: Final = "ANOMALY_INVESTIGATE"

TELEGRAM_TEXT_LIMIT: Final = 4096
_JOIN_GRACE_SEC: Final = 0.5


@dataclass(frozen=True, slots=True)
class _Alert:
    alert_id: str
    event: str
    text: str
    overflow: bool = False


_STOP: Final = _Alert("", "", "")


class Notifier:
    """Queues alerts and delivers them from a worker thread, recording every attempt.

    It composes the delivery policy (retry/backoff), the Telegram client and the delivery log;
    what it owns itself is the queue, the worker and the counts.
    """

    def __init__(
        self,
        config: AlertsConfig,
        run_id: str,
        dsn: str | None,
        *,
        connect_timeout_sec: float = 5.0,
        statement_timeout_ms: int = 5000,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self._log = logger or log
        self._policy = DeliveryPolicy.from_config(config)
        self._bot = TelegramBot(config)
        self._store = DeliveryLog(
            dsn, run_id, connect_timeout_sec=connect_timeout_sec, statement_timeout_ms=statement_timeout_ms
        )
        self._queue: queue.Queue[_Alert] = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._ids = itertools.count(1)
        self._abort = threading.Event()
        self._closed = False
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self._counts = DeliveryCounts()

    @property
    def available(self) -> bool:
        """True when a bot token and a chat id are configured."""
        return self._bot.available

    @property
    def delivering(self) -> bool:
        """Configured, and its latest finished alert was delivered (or none has finished yet)."""
        return self.available and not self._counts.failing

    @property
    def sent_count(self) -> int:
        """Alerts delivered."""
        return self._counts.sent

    @property
    def dlq_count(self) -> int:
        """Alerts dead-lettered: out of attempts, refused, overflowed or undelivered at shutdown."""
        return self._counts.dead_lettered

    @property
    def retry_count(self) -> int:
        """Failed attempts that were retried."""
        return self._counts.retried

    @property
    def disabled_count(self) -> int:
        """Alerts recorded as DISABLED because no bot is configured."""
        return self._counts.disabled

    @property
    def record_failures(self) -> int:
        """Delivery-log rows that could not be written."""
        return self._counts.record_failures

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect the delivery log (raises LedgerUnavailable) and start the worker."""
        self._store.open()
        if not self.available:
            self._log.info("alerts: no telegram bot token/chat id; alerts are recorded as DISABLED")
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    def notify(self, event: str, text: str) -> str:
        """Queue one alert without blocking; returns its alert id."""
        alert_id = f"{self.run_id}:{next(self._ids)}"
        body = f"[arbitrage] {event} run={self.run_id}\n{text}"[:TELEGRAM_TEXT_LIMIT]
        with self._cond:
            closed = self._closed
            if closed:
                self._counts.add("DLQ")
            else:
                overflow = self._pending >= self.config.queue_size
                self._pending += 1
        if closed:
            self._log.error("alert %s (%s) after the notifier closed: dead-lettered", alert_id, event)
        else:
            self._queue.put(_Alert(alert_id, event, body, overflow))
        return alert_id

    def drain(self, timeout: float) -> bool:
        """Wait until every queued alert is delivered or dead-lettered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued within `timeout` (default `drain_timeout_sec`), then stop.

        The budget bounds the engine's stop: queued alerts left are dead-lettered without
        another attempt, and an attempt still hanging on the network when the budget is spent
        is abandoned and counted as dead-lettered.
        """
        if self._thread is None:
            return
        budget = self.config.drain_timeout_sec if timeout is None else timeout
        deadline = time.monotonic() + budget
        self._store.expedite(min(budget, STOP_GRACE_SEC))
        self.drain(budget)
        with self._cond:
            self._closed = True
        self._abort.set()
        self._queue.put(_STOP)
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + _JOIN_GRACE_SEC)
        thread, self._thread = self._thread, None
        if thread.is_alive():
            with self._cond:
                stuck, self._abandoned = self._pending, True
                self._counts.add("DLQ", stuck)
            self._log.error("%d alert(s) still undelivered %.1fs into shutdown: dead-lettered", stuck, budget)
        else:
            self._store.disconnect()
        self._store.stop_watching()

    def summary(self) -> dict[str, Any]:
        """The alerts part of kpi.json."""
        with self._cond:
            pending = 0 if self._abandoned else self._pending
            counts = self._counts
            return {
                "notifier_available": self.available,
                "channel": "telegram",
                "sent_count": counts.sent,
                "dlq_count": counts.dead_lettered,
                "retry_count": counts.retried,
                "disabled_count": counts.disabled,
                "pending": pending,
                "record_failures": counts.record_failures,
            }

    # -- worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is _STOP:
                if self._abandoned:
                    self._store.disconnect()
                return
            try:
                self._handle(alert)
            except Exception:
                self._count("DLQ")
                self._error(
                    "alert %s (%s) lost to an internal error", alert.alert_id, alert.event, exc_info=True
                )
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _handle(self, alert: _Alert) -> None:
        if alert.overflow:
            self._dead_letter(alert, 0, None, f"alert queue full ({self.config.queue_size} pending)")
        elif self._abort.is_set():
            self._dead_letter(alert, 0, None, "undelivered at shutdown")
        elif not self.available:
            self._settle(alert, "DISABLED", 0, None, "no telegram bot token/chat id configured")
        else:
            self._deliver(alert)

    def _deliver(self, alert: _Alert) -> None:
        for attempt in range(1, self._policy.max_attempts + 1):
            outcome = self._bot.post(alert.text)
            step = self._policy.after(attempt, outcome, stopping=self._abort.is_set())
            error = outcome.error or "unknown error"
            if step.status == "SENT":
                self._settle(alert, "SENT", attempt, outcome.http_status, None)
                self._log.info("alert %s (%s) delivered on attempt %d", alert.alert_id, alert.event, attempt)
                return
            if step.status == "DLQ":
                self._dead_letter(alert, attempt, outcome.http_status, error)
                return
            self._retry_later(alert, attempt, outcome, step.delay)
            if self._abort.wait(step.delay):
                self._dead_letter(alert, attempt, outcome.http_status, f"shutdown during backoff; {error}")
                return

    def _retry_later(self, alert: _Alert, attempt: int, outcome: Outcome, delay: float) -> None:
        error = outcome.error or "unknown error"
        self._settle(alert, "RETRY", attempt, outcome.http_status, error)
        self._log.info(
            "alert %s (%s) attempt %d/%d failed (%s); retrying in %.2fs",
            alert.alert_id, alert.event, attempt, self._policy.max_attempts, error, delay,
        )  # fmt: skip

    def _dead_letter(self, alert: _Alert, attempt: int, http_status: int | None, error: str) -> None:
        self._settle(alert, "DLQ", attempt, http_status, error)
        self._error(
            "alert %s (%s) dead-lettered after %d attempt(s): %s", alert.alert_id, alert.event, attempt, error
        )

    def _settle(
        self, alert: _Alert, status: Status, attempt: int, http_status: int | None, error: str | None
    ) -> None:
        """Count one attempt and record its row; a failed write is counted and logged, never raised."""
        self._count(status)
        try:
            self._store.record(alert.alert_id, alert.event, status, attempt, http_status, error)
        except (psycopg.Error, LedgerUnavailable) as exc:
            with self._cond:
                if not self._abandoned:
                    self._counts.add_record_failure()
            self._error("alert_deliveries insert failed for %s (%s): %s", alert.alert_id, status, exc)

    def _count(self, status: Status) -> None:
        with self._cond:
            if not self._abandoned:
                self._counts.add(status)

    def _error(self, message: str, *args: object, exc_info: bool = False) -> None:
        """Log from the worker, unless close() has already given up on it and reported its alerts."""
        if not self._abandoned:
            self._log.error(message, *args, exc_info=exc_info)
