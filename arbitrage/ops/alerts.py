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

import http.client
import itertools
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Final, Literal

import psycopg

from arbitrage.config.alerts import AlertsConfig
from arbitrage.ledger import CLIENT_SLACK_SEC, STOP_GRACE_SEC, LedgerUnavailable, connect
from arbitrage.ledger_schema import owned_by_another
from arbitrage.pg_deadline import DeadlineGuard

log = logging.getLogger("arbitrage.alerts")

RUN_START: Final = "RUN_START"
RUN_STOP: Final = "RUN_STOP"
GUARD_TRIP: Final = "GUARD_TRIP"
WATCHDOG_CRITICAL: Final = "WATCHDOG_CRITICAL"
ANOMALY_KILL: Final = "ANOMALY_KILL"
ANOMALY_INVESTIGATE: Final = "ANOMALY_INVESTIGATE"

Status = Literal["SENT", "RETRY", "DLQ", "DISABLED"]
TELEGRAM_TEXT_LIMIT = 4096
_RESPONSE_LIMIT = 65_536
_JOIN_GRACE_SEC = 0.5
_SCHEMA_LOCK_KEY = 0x4152_4232

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS alert_deliveries (
    id           bigserial PRIMARY KEY,
    ts           timestamptz NOT NULL DEFAULT now(),
    run_id       text,
    alert_id     text NOT NULL,
    event        text NOT NULL,
    status       text NOT NULL CHECK (status IN ('SENT', 'RETRY', 'DLQ', 'DISABLED')),
    attempt      integer NOT NULL CHECK (attempt >= 0),
    http_status  integer,
    error        text
);
CREATE INDEX IF NOT EXISTS alert_deliveries_run_idx ON alert_deliveries (run_id, status);
"""


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create `alert_deliveries` if missing; idempotent and safe against concurrent engines."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        if not owned_by_another(cur, "alert_deliveries"):
            cur.execute(SCHEMA_SQL)


@dataclass(frozen=True, slots=True)
class _Alert:
    alert_id: str
    event: str
    text: str
    overflow: bool = False


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    http_status: int | None = None
    error: str | None = None
    retryable: bool = True
    retry_after: float | None = None


_STOP: Final = _Alert("", "", "")


class Notifier:
    """Queues alerts and delivers them from a worker thread, recording every attempt."""

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
        self._dsn = dsn
        self._connect_timeout = connect_timeout_sec
        self._statement_timeout = statement_timeout_ms
        self._log = logger or log
        self._token = config.telegram_bot_token.get_secret_value() if config.telegram_bot_token else ""
        self._conn: psycopg.Connection[Any] | None = None
        self._guard = DeadlineGuard(statement_timeout_ms / 1000.0 + CLIENT_SLACK_SEC)
        self._queue: queue.Queue[_Alert] = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._ids = itertools.count(1)
        self._abort = threading.Event()
        self._closed = False
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self.sent_count = 0
        self.dlq_count = 0
        self.retry_count = 0
        self.disabled_count = 0
        self.record_failures = 0
        self._failing = False

    @property
    def available(self) -> bool:
        """True when a bot token and a chat id are configured."""
        return bool(self._token) and bool(self.config.telegram_chat_id)

    @property
    def delivering(self) -> bool:
        """Configured, and its latest finished alert was delivered (or none has finished yet)."""
        return self.available and not self._failing

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect the delivery log (raises LedgerUnavailable) and start the worker."""
        if self._dsn is not None:
            self._conn = connect(self._dsn, self._connect_timeout, self._statement_timeout)
            try:
                ensure_schema(self._conn)
            except psycopg.Error as exc:
                self._conn.close()
                raise LedgerUnavailable(f"alert_deliveries schema setup failed: {exc}") from None
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
                self.dlq_count += 1
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
        self._guard.expedite(min(budget, STOP_GRACE_SEC))
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
                self.dlq_count += stuck
            self._log.error("%d alert(s) still undelivered %.1fs into shutdown: dead-lettered", stuck, budget)
        elif self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
        self._guard.close()

    def summary(self) -> dict[str, Any]:
        """The alerts part of kpi.json."""
        with self._cond:
            pending = 0 if self._abandoned else self._pending
        return {
            "notifier_available": self.available,
            "channel": "telegram",
            "sent_count": self.sent_count,
            "dlq_count": self.dlq_count,
            "retry_count": self.retry_count,
            "disabled_count": self.disabled_count,
            "pending": pending,
            "record_failures": self.record_failures,
        }

    # -- worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is _STOP:
                if self._abandoned and self._conn is not None:
                    self._conn.close()
                return
            try:
                self._handle(alert)
            except Exception:
                self._count("dlq_count")
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
            self._count("disabled_count")
            self._record(alert, "DISABLED", 0, None, "no telegram bot token/chat id configured")
        else:
            self._deliver(alert)

    def _deliver(self, alert: _Alert) -> None:
        attempts = self.config.max_attempts
        for attempt in range(1, attempts + 1):
            outcome = self._post(alert.text)
            if outcome.ok:
                self._count("sent_count")
                self._record(alert, "SENT", attempt, outcome.http_status, None)
                self._log.info("alert %s (%s) delivered on attempt %d", alert.alert_id, alert.event, attempt)
                return
            error = outcome.error or "unknown error"
            if attempt == attempts or not outcome.retryable or self._abort.is_set():
                self._dead_letter(alert, attempt, outcome.http_status, error)
                return
            self._count("retry_count")
            self._record(alert, "RETRY", attempt, outcome.http_status, error)
            delay = self._backoff(attempt, outcome.retry_after)
            self._log.info(
                "alert %s (%s) attempt %d/%d failed (%s); retrying in %.2fs",
                alert.alert_id, alert.event, attempt, attempts, error, delay,
            )  # fmt: skip
            if self._abort.wait(delay):
                self._dead_letter(alert, attempt, outcome.http_status, f"shutdown during backoff; {error}")
                return

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = self.config.backoff_base_sec * 2.0 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.config.backoff_cap_sec)

    def _count(self, name: str) -> None:
        with self._cond:
            if not self._abandoned:
                setattr(self, name, getattr(self, name) + 1)
                if name in ("sent_count", "dlq_count"):
                    self._failing = name == "dlq_count"

    def _dead_letter(self, alert: _Alert, attempt: int, http_status: int | None, error: str) -> None:
        self._count("dlq_count")
        self._record(alert, "DLQ", attempt, http_status, error)
        self._error(
            "alert %s (%s) dead-lettered after %d attempt(s): %s", alert.alert_id, alert.event, attempt, error
        )

    def _error(self, message: str, *args: object, exc_info: bool = False) -> None:
        """Log from the worker, unless close() has already given up on it and reported its alerts."""
        if not self._abandoned:
            self._log.error(message, *args, exc_info=exc_info)

    def _post(self, text: str) -> _Outcome:
        url = f"{self.config.api_base_url.rstrip('/')}/bot{self._token}/sendMessage"
        data = json.dumps({"chat_id": self.config.telegram_chat_id, "text": text}).encode("utf-8")
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_sec) as response:
                status, raw = int(response.status), response.read(_RESPONSE_LIMIT)
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read(_RESPONSE_LIMIT)
            exc.close()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return _Outcome(ok=False, error=self._scrub(f"{type(exc).__name__}: {reason}"))
        return self._judge(status, raw)

    def _judge(self, status: int, raw: bytes) -> _Outcome:
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        if status == 200 and doc.get("ok") is True:
            return _Outcome(ok=True, http_status=status)
        description = str(doc.get("description") or f"HTTP {status}")
        params = doc.get("parameters")
        retry_after = params.get("retry_after") if isinstance(params, dict) else None
        permanent = 400 <= status < 500 and status != 429
        return _Outcome(
            ok=False,
            http_status=status,
            error=self._scrub(f"HTTP {status}: {description}"),
            retryable=not permanent,
            retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def _record(
        self, alert: _Alert, status: Status, attempt: int, http_status: int | None, error: str | None
    ) -> None:
        if self._dsn is None:
            return
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = connect(self._dsn, self._connect_timeout, self._statement_timeout)
            with self._guard.bounded(self._conn), self._conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO alert_deliveries (run_id, alert_id, event, status, attempt,"
                    " http_status, error) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (self.run_id, alert.alert_id, alert.event, status, attempt, http_status, error),
                )
        except (psycopg.Error, LedgerUnavailable) as exc:
            self._count("record_failures")
            self._error("alert_deliveries insert failed for %s (%s): %s", alert.alert_id, status, exc)
