"""The PostgreSQL trade ledger: one row per trade leg, plus the run registry and event log.

Rows are what the DB invariant is checked against, so `db_inserts_ok` counts only what the
database acknowledged. Inserts are idempotent on `(run_id, trade_id, leg)`, so a retry after
an ambiguous failure can never double-count. Connect and statement timeouts are bounded: a
dead or hung database fails a call within seconds instead of hanging the run.

`event_log` and `system_state` are append-only, enforced by the database itself: triggers
reject UPDATE, DELETE and TRUNCATE (`arbitrage.schema` creates them).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from arbitrage.journal import JournalError, LedgerJournal
from arbitrage.ledger_conn import (
    APPLICATION_NAME,
    RETRYABLE,
    LedgerUnavailable,
    connect,
    describe_dsn,
    first_line,
)
from arbitrage.ledger_records import EVENT, LEG, RUN_END, RUN_START, LegRow, apply_record, describe_record
from arbitrage.ledger_writer import DEFAULT_CAPACITY, LedgerWriter, Record, Unit
from arbitrage.owner import OwnerProcess
from arbitrage.pg_deadline import DeadlineGuard
from arbitrage.schema.migrate import migrate
from arbitrage.schema.migrations import SCHEMA_VERSION

log = logging.getLogger("arbitrage.ledger")

CLIENT_SLACK_SEC = 0.5
"""The client-side bound is the server's statement_timeout plus this, so that a healthy server
normally cancels first and the connection survives."""
STOP_GRACE_SEC = 1.0

__all__ = [
    "APPLICATION_NAME", "RETRYABLE", "SCHEMA_VERSION", "Ledger", "LedgerUnavailable", "LegRow",
    "connect", "describe_dsn", "describe_record", "first_line",
]  # fmt: skip


class Ledger:
    """Writes runs, trade legs and events, counting only what PostgreSQL acknowledged.

    With a journal attached (`attach_journal`), every record is journaled first. A record that
    PostgreSQL did not acknowledge stays pending: the connection is dropped, and the writer thread
    reconnects with bounded backoff and replays the pending records in order; meanwhile new
    records queue behind them. With group commit (`start_group_commit`) every journaled record
    goes through the writer thread, a batch per transaction, and the caller never waits for the
    database. Every call is bounded on the client side (`DeadlineGuard`), and `expedite` shortens
    the bound when a stop is requested.
    """

    def __init__(self, dsn: str, connect_timeout_sec: float = 5.0, statement_timeout_ms: int = 5000) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout_sec
        self._statement_timeout = statement_timeout_ms
        self.guard = DeadlineGuard(statement_timeout_ms / 1000.0 + CLIENT_SLACK_SEC)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()
        self._journal: LedgerJournal | None = None
        self._writer = LedgerWriter(self._new_connection, self.guard, self._lock, self)
        self.db_inserts_ok = 0
        self.db_inserts_failed = 0
        self.event_inserts_failed = 0
        self.acked_legs: dict[str, int] = {"entry": 0, "exit": 0}
        self.rejected_records = 0
        self.reconnects = 0
        self._unjournaled = 0
        self.journal_error: JournalError | None = None
        """The first failure to journal a record: the run can no longer promise its ledger."""
        self.on_journal_error: Callable[[JournalError], object] | None = None
        """Told of that failure before it is logged, so that the run stops for the failed write
        itself (EVIDENCE_WRITE_FAILED) and not for the ERROR line that reports it."""
        self._run_facts: dict[str, dict[str, Any]] = {}

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and bring the schema to this engine's version (`arbitrage.schema.migrate`).

        Raises LedgerUnavailable, or its SchemaBehind when the schema lacks a migration that the
        connected role may not apply.
        """
        self._conn = self._new_connection()
        try:
            with self.guard.bounded(self._conn):
                migrate(self._conn)
        except LedgerUnavailable:
            self._drop_connection()
            raise
        except psycopg.Error as exc:
            self._drop_connection()
            raise LedgerUnavailable(
                f"postgres schema setup failed at {describe_dsn(self._dsn)}: {first_line(exc)}"
            ) from None

    def _new_connection(self) -> psycopg.Connection[Any]:
        return connect(self._dsn, self._connect_timeout, self._statement_timeout)

    def reader(self, connect_timeout_sec: float) -> psycopg.Connection[Any]:
        """A connection of the caller's own, for reading back what the writer committed; the caller
        closes it and bounds its calls (`guard.bounded`)."""
        return connect(self._dsn, connect_timeout_sec, self._statement_timeout)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _live_connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._new_connection()
        return self._conn

    def attach_journal(self, journal: LedgerJournal) -> None:
        """From now on every record is journaled before it is sent."""
        self._journal = journal

    def start_group_commit(self, capacity: int = DEFAULT_CAPACITY) -> None:
        """From now on records are sent by the writer thread, a batch per transaction.

        Needs the journal: a record is durable there before the call that made it returns. When
        `capacity` records wait, `saturated` is True and callers hold back new entries.
        """
        if self._journal is None:
            raise ValueError("group commit needs a journal attached first (attach_journal)")
        with self._lock:
            conn, self._conn = self._conn, None
        self._writer.start_group_commit(self._journal, capacity, conn)

    @property
    def group_commit(self) -> bool:
        """True once `start_group_commit` was called."""
        return self._writer.continuous

    @property
    def saturated(self) -> bool:
        """The writer's queue is full: nothing is dropped, but new entries should wait."""
        return self._writer.saturated

    def expedite(self, grace_sec: float = STOP_GRACE_SEC) -> None:
        """A stop was requested: no database call may hold it for longer than `grace_sec`."""
        self.guard.expedite(grace_sec)

    @property
    def pending_count(self) -> int:
        """Records PostgreSQL has not acknowledged yet (journaled, or in memory if the journal failed)."""
        with self._lock:
            return self._writer.count

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
            records = self._writer.records()
            return sum(1 for record in records if ":unjournaled:" in str(record.get("uid", "")))

    @property
    def pending_legs(self) -> int:
        """Trade legs among the pending records."""
        with self._lock:
            return sum(1 for record in self._writer.records() if record["op"] == LEG)

    # -- writing ---------------------------------------------------------------------------------
    def _journaled(self, items: list[tuple[str, dict[str, Any]]]) -> tuple[Unit, bool]:
        """The records as journaled (one write for all), or kept in memory when the journal failed."""
        journal = self._journal
        if journal is None:
            return tuple({"op": op, **fields} for op, fields in items), False
        try:
            return tuple(journal.append_many(items)), True
        except JournalError as exc:
            self.journal_failed(exc)
        unit = []
        for op, fields in items:
            self._unjournaled += 1
            unit.append({"op": op, **fields, "uid": f"{journal.run_id}:unjournaled:{self._unjournaled}"})
        return tuple(unit), False

    def _write(self, items: list[tuple[str, dict[str, Any]]]) -> bool:
        """Journal the records, then send them in one transaction; False when not acknowledged (yet).

        With a journal attached, a record PostgreSQL did not acknowledge is never dropped: it stays
        pending for the writer thread, fsynced in the journal, or only in memory when the journal
        itself cannot be written (a full disk); the run then stops (`journal_error`) and says so.
        With group commit, the records are queued for the writer thread and False is returned.
        """
        unit, journaled = self._journaled(items)
        with self._lock:
            if self._writer.continuous:
                self._writer.put(unit)
                return False
            if self._writer.count and self._journal is not None:
                return self._defer(unit, journaled)
            try:
                conn = self._live_connection()
                with self.guard.bounded(conn), conn.transaction():
                    for record in unit:
                        apply_record(conn, record)
            except RETRYABLE as exc:
                self._drop_connection()
                if self._journal is None:
                    for record in unit:
                        self._count_failure(record, exc)
                    return False
                where = "journaled" if journaled else "kept in memory (journal unwritable)"
                log.warning(
                    "ledger write of %s not acknowledged (%s): %s, reconnecting in the background",
                    describe_record(unit[0]), first_line(exc), where,
                )  # fmt: skip
                return self._defer(unit, journaled)
            except psycopg.Error as exc:
                for record in unit:
                    self.refused(record, exc)
                return False
            self.acknowledged(unit)
            return True

    def _defer(self, unit: Unit, journaled: bool) -> bool:
        self.not_acknowledged(unit)
        if journaled and self._journal is not None:
            try:
                self._journal.sync()
            except JournalError as exc:
                self.journal_failed(exc)
        self._writer.put(unit)
        return False

    # -- what the writer thread reports (WriterSide) ---------------------------------------------
    def journal_failed(self, exc: JournalError) -> None:
        """Remember (and log once) that the journal could not be written or synced."""
        if self.journal_error is None:
            self.journal_error = exc
            if self.on_journal_error is not None:
                self.on_journal_error(exc)
            log.error("ledger journal unwritable, unacknowledged records are kept in memory: %s", exc)

    def acknowledged(self, records: Unit) -> None:
        """Count what PostgreSQL committed (a replayed duplicate counts once)."""
        for record in records:
            if record["op"] == LEG:
                self.db_inserts_ok += 1
                leg = record["row"]["leg"]
                self.acked_legs[leg] = self.acked_legs.get(leg, 0) + 1

    def not_acknowledged(self, records: Unit) -> None:
        """Count legs whose first write failed; they stay pending."""
        self.db_inserts_failed += sum(1 for record in records if record["op"] == LEG)

    def refused(self, record: Record, exc: psycopg.Error) -> None:
        """Count a record PostgreSQL refused; it is not retried."""
        self._count_failure(record, exc)
        self.rejected_records += 1

    def caught_up(self, conn: psycopg.Connection[Any] | None) -> None:
        """The writer replayed every pending record: its connection becomes the ledger's."""
        self._drop_connection()
        self._conn = conn
        self.reconnects += 1
        log.info("ledger reconnected; every pending record is acknowledged")

    def _count_failure(self, record: Record, exc: BaseException) -> None:
        if record["op"] == LEG:
            self.db_inserts_failed += 1
        elif record["op"] == EVENT:
            self.event_inserts_failed += 1
        log.error("ledger write of %s failed: %s", describe_record(record), first_line(exc))

    def drain(self, timeout_sec: float) -> int:
        """Give the writer thread up to `timeout_sec` to send what is pending; returns what is left."""
        return self._writer.wait_empty(max(0.0, timeout_sec))

    # -- the records -----------------------------------------------------------------------------
    def record_leg(self, row: LegRow) -> bool:
        """Insert one leg; True when PostgreSQL acknowledged it (a replayed duplicate counts once)."""
        return self._write([(LEG, {"run_id": row.run_id, "row": row.fields()})])

    def record_trade_leg(
        self, row: LegRow, event_type: str, payload: dict[str, Any], correlation_id: str | None
    ) -> bool:
        """Insert a leg and its event (TRADE_OPEN, TRADE_CLOSE) in one transaction; True when
        PostgreSQL acknowledged both."""
        leg = (LEG, {"run_id": row.run_id, "row": row.fields()})
        event = (EVENT, self._event_fields(row.run_id, event_type, payload, correlation_id))
        return self._write([leg, event])

    def _event_fields(
        self, run_id: str | None, event_type: str, payload: dict[str, Any], correlation_id: str | None
    ) -> dict[str, Any]:
        if event_type == "RUN_START" and run_id is not None:
            payload = {**self._run_facts.get(run_id, {"schema_version": SCHEMA_VERSION}), **payload}
        return {
            "run_id": run_id, "event_type": event_type, "payload": payload, "correlation_id": correlation_id,
        }  # fmt: skip

    def record_event(
        self, run_id: str | None, event_type: str, payload: dict[str, Any], correlation_id: str | None = None
    ) -> bool:
        """Append one event_log row; a failure is logged and counted (and journaled), never raised.

        A RUN_START payload is completed with the run's schema version, git sha and config hash
        from `record_run_start`, so every run's provenance is in the audit log.
        """
        return self._write([(EVENT, self._event_fields(run_id, event_type, payload, correlation_id))])

    def record_durable_event(self, run_id: str | None, event_type: str, payload: dict[str, Any]) -> bool:
        """`record_event`, saying whether the row will survive this process and a power cut:
        committed, or fsynced in the journal. What a live order needs before it is sent (`order_trail`)."""
        if self.record_event(run_id, event_type, payload):
            return True
        journal = self._journal
        if journal is None or self.journal_error is not None:
            return False
        try:
            journal.sync()
        except JournalError as exc:
            self.journal_failed(exc)
            return False
        return True

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
        return self._write([(RUN_END, fields)])

    def close(self) -> None:
        """Stop the writer thread (what it could not send stays journaled) and disconnect.

        Under group commit, records queued since the last drain (a run refused after it was
        registered) are first given the bound a synchronous write would have had, unless the
        writer is already failing to reach PostgreSQL.
        """
        if self._writer.continuous and not self._writer.failing:
            self._writer.wait_empty(self.guard.bound_sec)
        self._writer.close()
        with self._lock:
            self._drop_connection()
        self.guard.close()
