"""The `alert_deliveries` rows: one per delivery attempt, written over a time-bounded connection.

The table itself is part of the ledger schema (`arbitrage.schema`)."""

from __future__ import annotations

from typing import Any, Final

import psycopg

from arbitrage.ledger import CLIENT_SLACK_SEC, LedgerUnavailable, connect
from arbitrage.ops.alert_policy import Status
from arbitrage.pg_deadline import DeadlineGuard
from arbitrage.schema.migrate import migrate
from evidence.ledger_tables import ALERT_DELIVERIES

_INSERT: Final = (
    f"INSERT INTO {ALERT_DELIVERIES} (run_id, alert_id, event, status, attempt, http_status, error)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


class DeliveryLog:
    """One run's rows in `alert_deliveries`; with no DSN it records nothing.

    Each statement is bounded by the server's statement timeout and, on the client side, by a
    deadline guard that a stop can shorten, so a hung database never holds the engine's stop.
    """

    def __init__(
        self, dsn: str | None, run_id: str, *, connect_timeout_sec: float, statement_timeout_ms: int
    ) -> None:
        self._dsn = dsn
        self._run_id = run_id
        self._connect_timeout = connect_timeout_sec
        self._statement_timeout = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None
        self._guard = DeadlineGuard(statement_timeout_ms / 1000.0 + CLIENT_SLACK_SEC)

    def open(self) -> None:
        """Connect and bring the schema up to date (`arbitrage.schema.migrate`); raises LedgerUnavailable."""
        if self._dsn is None:
            return
        self._conn = self._connect(self._dsn)
        try:
            migrate(self._conn)
        except LedgerUnavailable:
            self.disconnect()
            raise
        except psycopg.Error as exc:
            self.disconnect()
            raise LedgerUnavailable(f"alert_deliveries schema setup failed: {exc}") from None

    def record(
        self,
        alert_id: str,
        event: str,
        status: Status,
        attempt: int,
        http_status: int | None,
        error: str | None,
    ) -> None:
        """Insert one attempt's row, reconnecting if needed; raises psycopg.Error or LedgerUnavailable."""
        if self._dsn is None:
            return
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect(self._dsn)
        with self._guard.bounded(self._conn), self._conn.cursor() as cur:
            cur.execute(_INSERT, (self._run_id, alert_id, event, status, attempt, http_status, error))

    def expedite(self, grace_sec: float) -> None:
        """A stop began: no statement, in flight or later, may take longer than `grace_sec`."""
        self._guard.expedite(grace_sec)

    def disconnect(self) -> None:
        """Close the connection if one is open."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def stop_watching(self) -> None:
        """Stop the deadline guard's watcher thread (a later statement starts it again)."""
        self._guard.close()

    def _connect(self, dsn: str) -> psycopg.Connection[Any]:
        return connect(dsn, self._connect_timeout, self._statement_timeout)
