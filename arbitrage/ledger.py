"""The PostgreSQL trade ledger: one row per trade leg, plus the run registry and event log.

Rows are what the DB invariant is checked against, so `db_inserts_ok` counts only what the
database acknowledged. Inserts are idempotent on `(run_id, trade_id, leg)`, so a retry after
an ambiguous failure can never double-count. Connect and statement timeouts are bounded: a
dead or hung database fails a call within seconds instead of hanging the run.

`event_log` and `system_state` are append-only, enforced by the database itself: triggers
reject UPDATE, DELETE and TRUNCATE. The triggers are created only when missing (no DROP), so
starting an engine never takes an exclusive lock on a table another engine is writing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

import psycopg

from arbitrage.journal import JournalError, LedgerJournal
from arbitrage.ledger_records import EVENT, LEG, RUN_END, RUN_START, LegRow, apply_record
from arbitrage.ledger_schema import (
    APPEND_ONLY_SQL,
    SCHEMA_LOCK_KEY,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    UPGRADE_SQL,
    owned_by_another,
)
from arbitrage.ops.kill_switch import SYSTEM_STATE_SQL
from arbitrage.owner import OwnerProcess
from arbitrage.pg_deadline import DeadlineGuard

log = logging.getLogger("arbitrage.ledger")

CLIENT_SLACK_SEC = 0.5
"""The client-side bound is the server's statement_timeout plus this, so that a healthy server
normally cancels first and the connection survives."""
STOP_GRACE_SEC = 1.0
BACKOFF_START_SEC = 0.1
BACKOFF_CAP_SEC = 2.0

__all__ = ["SCHEMA_SQL", "SCHEMA_VERSION", "Ledger", "LedgerUnavailable", "LegRow", "connect", "describe_dsn"]


class LedgerUnavailable(Exception):
    """The database cannot be reached or refused the schema; the message is one operator line."""


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password: for error lines."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libpq's are several lines long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


APPLICATION_NAME = "arbitrage"
"""How the engine's connections show in pg_stat_activity (unless the DSN names another)."""


def connect(dsn: str, connect_timeout_sec: float, statement_timeout_ms: int) -> psycopg.Connection[Any]:
    """An autocommit connection whose connect and statements are both time-bounded."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        params = {}
    try:
        return psycopg.connect(
            dsn,
            application_name=str(params.get("application_name") or APPLICATION_NAME),
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout_sec)),
            options=f"-c statement_timeout={statement_timeout_ms}",
        )
    except psycopg.Error as exc:
        raise LedgerUnavailable(f"postgres unreachable at {describe_dsn(dsn)}: {first_line(exc)}") from None


RETRYABLE = (psycopg.OperationalError, psycopg.InterfaceError, LedgerUnavailable)
"""Failures that say nothing about the record itself: the connection or the server is at fault."""


class Ledger:
    """Writes runs, trade legs and events, counting only what PostgreSQL acknowledged.

    With a journal attached (`attach_journal`), every record is journaled first. A record that
    PostgreSQL did not acknowledge stays pending: the connection is dropped, and a background
    healer reconnects with bounded backoff and replays the pending records in order; meanwhile
    new records queue behind them. Every call is bounded on the client side (`DeadlineGuard`),
    and `expedite` shortens the bound when a stop is requested.
    """

    def __init__(self, dsn: str, connect_timeout_sec: float = 5.0, statement_timeout_ms: int = 5000) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout_sec
        self._statement_timeout = statement_timeout_ms
        self.guard = DeadlineGuard(statement_timeout_ms / 1000.0 + CLIENT_SLACK_SEC)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()
        self._journal: LedgerJournal | None = None
        self._pending: deque[dict[str, Any]] = deque()
        self._healer: threading.Thread | None = None
        self._closing = threading.Event()
        self.db_inserts_ok = 0
        self.db_inserts_failed = 0
        self.event_inserts_failed = 0
        self.acked_legs: dict[str, int] = {"entry": 0, "exit": 0}
        self.rejected_records = 0
        self.reconnects = 0
        self._unjournaled = 0
        self.journal_error: JournalError | None = None
        """The first failure to journal a record: the run can no longer promise its ledger."""
        self._run_facts: dict[str, dict[str, Any]] = {}

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and create the schema (idempotent, safe against concurrent engines)."""
        self._conn = connect(self._dsn, self._connect_timeout, self._statement_timeout)
        try:
            with self.guard.bounded(self._conn), self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                if not owned_by_another(cur, "event_log"):
                    cur.execute(SCHEMA_SQL)
                    cur.execute(UPGRADE_SQL)
                    cur.execute(SYSTEM_STATE_SQL)
                    cur.execute(APPEND_ONLY_SQL)
        except psycopg.Error as exc:
            self._drop_connection()
            raise LedgerUnavailable(
                f"postgres schema setup failed at {describe_dsn(self._dsn)}: {first_line(exc)}"
            ) from None

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _live_connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self._dsn, self._connect_timeout, self._statement_timeout)
        return self._conn

    def attach_journal(self, journal: LedgerJournal) -> None:
        """From now on every record is journaled before it is sent."""
        self._journal = journal

    def expedite(self, grace_sec: float = STOP_GRACE_SEC) -> None:
        """A stop was requested: no database call may hold it for longer than `grace_sec`."""
        self.guard.expedite(grace_sec)

    @property
    def pending_count(self) -> int:
        """Records PostgreSQL has not acknowledged yet (journaled, or in memory if the journal failed)."""
        with self._lock:
            return len(self._pending)

    def account(self) -> dict[str, int]:
        """What the ledger knows of its own writes, for kpi.json."""
        return {
            "entry_legs_ok": self.acked_legs.get("entry", 0),
            "exit_legs_ok": self.acked_legs.get("exit", 0),
            "journal_pending": self.pending_count,
            "legs_pending": self.pending_legs,
            "rejected_records": self.rejected_records,
            "reconnects": self.reconnects,
        }

    @property
    def pending_unjournaled(self) -> int:
        """Pending records the journal could not take: they live in this process's memory only."""
        with self._lock:
            return sum(1 for record in self._pending if ":unjournaled:" in str(record.get("uid", "")))

    @property
    def pending_legs(self) -> int:
        """Trade legs among the pending records."""
        with self._lock:
            return sum(1 for record in self._pending if record["op"] == LEG)

    # -- writing ---------------------------------------------------------------------------------
    def _write(self, op: str, fields: dict[str, Any]) -> bool:
        """Journal the record, then send it; False when it was not acknowledged (it stays pending).

        With a journal attached, a record PostgreSQL did not acknowledge is never dropped: it stays
        pending for the healer, fsynced in the journal, or only in memory when the journal itself
        cannot be written (a full disk); the run then stops (`journal_error`) and says so.
        """
        journal = self._journal
        record: dict[str, Any] = {"op": op, **fields}
        journaled = False
        if journal is not None:
            try:
                record = journal.append(op, fields)
                journaled = True
            except JournalError as exc:
                self._journal_failed(exc)
                self._unjournaled += 1
                record["uid"] = f"{journal.run_id}:unjournaled:{self._unjournaled}"
        with self._lock:
            if self._pending and journal is not None:
                return self._defer(record, journaled)
            try:
                conn = self._live_connection()
                with self.guard.bounded(conn):
                    apply_record(conn, record)
            except RETRYABLE as exc:
                self._drop_connection()
                if journal is None:
                    self._count_failure(record, exc)
                    return False
                where = "journaled" if journaled else "kept in memory (journal unwritable)"
                log.warning(
                    "ledger write of %s not acknowledged (%s): %s, reconnecting in the background",
                    describe_record(record), first_line(exc), where,
                )  # fmt: skip
                return self._defer(record, journaled)
            except psycopg.Error as exc:
                self._count_failure(record, exc)
                self.rejected_records += 1
                return False
            self._count_ack(record)
            return True

    def _journal_failed(self, exc: JournalError) -> None:
        if self.journal_error is None:
            self.journal_error = exc
            log.error("ledger journal unwritable, unacknowledged records are kept in memory: %s", exc)

    def _defer(self, record: dict[str, Any], journaled: bool) -> bool:
        self._pending.append(record)
        if record["op"] == LEG:
            self.db_inserts_failed += 1
        if journaled and self._journal is not None:
            try:
                self._journal.sync()
            except JournalError as exc:
                self._journal_failed(exc)
        self._start_healer()
        return False

    def _count_ack(self, record: dict[str, Any]) -> None:
        if record["op"] == LEG:
            self.db_inserts_ok += 1
            leg = record["row"]["leg"]
            self.acked_legs[leg] = self.acked_legs.get(leg, 0) + 1

    def _count_failure(self, record: dict[str, Any], exc: BaseException) -> None:
        if record["op"] == LEG:
            self.db_inserts_failed += 1
        elif record["op"] == EVENT:
            self.event_inserts_failed += 1
        log.error("ledger write of %s failed: %s", describe_record(record), first_line(exc))

    # -- the healer ------------------------------------------------------------------------------
    def _start_healer(self) -> None:
        if self._healer is None or not self._healer.is_alive():
            self._healer = threading.Thread(target=self._heal, name="ledger-healer", daemon=True)
            self._healer.start()

    def _heal(self) -> None:
        """Reconnect with bounded backoff and replay the pending records, oldest first."""
        backoff = BACKOFF_START_SEC
        while not self._closing.is_set():
            with self._lock:
                if not self._pending:
                    return
            try:
                conn = connect(self._dsn, self._connect_timeout, self._statement_timeout)
                self._replay_pending(conn)
            except RETRYABLE:
                self._closing.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP_SEC)
                continue
            backoff = BACKOFF_START_SEC

    def _replay_pending(self, conn: psycopg.Connection[Any]) -> None:
        """Send pending records on `conn`; on success hand `conn` over as the ledger's connection."""
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        self._drop_connection()
                        self._conn = conn
                        self.reconnects += 1
                        log.info("ledger reconnected; every pending record is acknowledged")
                        return
                    record = self._pending[0]
                try:
                    with self.guard.bounded(conn):
                        apply_record(conn, record)
                except RETRYABLE:
                    raise
                except psycopg.Error as exc:
                    with self._lock:
                        self._pending.popleft()
                    self._count_failure(record, exc)
                    self.rejected_records += 1
                    continue
                with self._lock:
                    self._pending.popleft()
                    self._count_ack(record)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def drain(self, timeout_sec: float) -> int:
        """Give the healer up to `timeout_sec` to replay what is pending; returns what is still pending."""
        deadline = time.monotonic() + timeout_sec
        while self.pending_count and time.monotonic() < deadline:
            self._start_healer()
            self._closing.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.pending_count

    # -- the records -----------------------------------------------------------------------------
    def record_leg(self, row: LegRow) -> bool:
        """Insert one leg; True when PostgreSQL acknowledged it (a replayed duplicate counts once)."""
        return self._write(LEG, {"run_id": row.run_id, "row": row.fields()})

    def record_event(
        self, run_id: str | None, event_type: str, payload: dict[str, Any], correlation_id: str | None = None
    ) -> bool:
        """Append one event_log row; a failure is logged and counted (and journaled), never raised.

        A RUN_START payload is completed with the run's schema version, git sha and config hash
        from `record_run_start`, so every run's provenance is in the audit log.
        """
        if event_type == "RUN_START" and run_id is not None:
            payload = {**self._run_facts.get(run_id, {"schema_version": SCHEMA_VERSION}), **payload}
        fields = {
            "run_id": run_id,
            "event_type": event_type,
            "payload": payload,
            "correlation_id": correlation_id,
        }
        return self._write(EVENT, fields)

    def record_run_start(
        self, run_id: str, phase: str, mode: str, started_at: datetime, seed: int, git_sha: str | None,
        config_hash: str,
    ) -> None:  # fmt: skip
        """Register the run; raises LedgerUnavailable, because a run must not start unrecorded."""
        owner = OwnerProcess.current()
        fields = {
            "run_id": run_id, "phase": phase, "mode": mode, "started_at": started_at.isoformat(),
            "seed": seed, "git_sha": git_sha, "config_hash": config_hash, "schema_version": SCHEMA_VERSION,
            "pid": owner.pid, "host": owner.host, "process_started": owner.started,
        }  # fmt: skip
        with self._lock:
            try:
                conn = self._live_connection()
                with self.guard.bounded(conn):
                    apply_record(conn, {"op": RUN_START, **fields})
            except (psycopg.Error, LedgerUnavailable) as exc:
                self._drop_connection()
                raise LedgerUnavailable(f"postgres refused the run registration: {first_line(exc)}") from None
        self._run_facts[run_id] = {
            "schema_version": SCHEMA_VERSION, "git_sha": git_sha, "config_hash": config_hash, "mode": mode,
        }  # fmt: skip

    def record_run_end(
        self,
        run_id: str,
        status: str,
        stop_reason: str,
        exit_code: int,
        closed_trades: int,
        ended_at: datetime,
    ) -> bool:
        """Close the run's registry row; when not acknowledged it stays journaled for the next start."""
        fields = {
            "run_id": run_id, "status": status, "stop_reason": stop_reason, "exit_code": exit_code,
            "closed_trades": closed_trades, "ended_at": ended_at.isoformat(),
        }  # fmt: skip
        return self._write(RUN_END, fields)

    def close(self) -> None:
        self._closing.set()
        if self._healer is not None:
            self._healer.join(timeout=2.0)
        with self._lock:
            self._drop_connection()
        self.guard.close()


def describe_record(record: dict[str, Any]) -> str:
    """A record as an operator reads it: `leg <run>/<trade>/<leg>`, `event <type>`, `run_end <run>`."""
    op = record["op"]
    if op == LEG:
        row = record["row"]
        return f"leg {record['run_id']}/{row['trade_id']}/{row['leg']}"
    if op == EVENT:
        return f"event {record['event_type']}"
    return f"{op} {record.get('run_id')}"
