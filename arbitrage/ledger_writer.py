"""The ledger's writer thread: records PostgreSQL has not acknowledged yet, sent a batch per transaction.

Records wait here in order, in units that are committed together (a leg and its event). With
group commit on, every journaled record comes through here and the caller's thread never waits
for PostgreSQL; without it, only the records a failed write left pending do, and the thread hands
its connection back to the ledger once it has caught up (the healer).

A batch is one transaction (`apply_batch`), acknowledged whole or not at all. A connection
failure leaves the batch queued and the thread reconnects with bounded backoff; a record the
database refuses is found by resending the batch one unit per transaction, a record per
statement (`apply_record`), and is counted and dropped as before. Nothing is ever dropped for
room: `saturated` tells the caller the queue holds `capacity` records, and the caller stops adding
what it can refuse (new entries).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import psycopg

from arbitrage.journal import JournalError, LedgerJournal
from arbitrage.ledger_conn import RETRYABLE, first_line
from arbitrage.ledger_records import apply_batch, apply_record, describe_record
from arbitrage.pg_deadline import DeadlineGuard

log = logging.getLogger("arbitrage.ledger")

Record = dict[str, Any]
Unit = tuple[Record, ...]

DEFAULT_CAPACITY = 4096
"""Records the queue holds before new entries are held back (about 1 MB of records)."""
MAX_BATCH = 512
"""Records per transaction: large enough to catch up after an outage in a few round trips."""
GATHER_SEC = 0.005
"""How long a batch may gather before it is sent: a tick's own work is done by then."""
BACKOFF_START_SEC = 0.1
BACKOFF_CAP_SEC = 2.0


class WriterSide(Protocol):
    """What the writer tells the ledger that owns it."""

    def acknowledged(self, records: Unit) -> None:
        """PostgreSQL committed these records."""

    def refused(self, record: Record, exc: psycopg.Error) -> None:
        """PostgreSQL refused this record (not a connection failure): it will not be retried."""

    def not_acknowledged(self, records: Unit) -> None:
        """A group-committed batch failed for the first time with these records in it."""

    def journal_failed(self, exc: JournalError) -> None:
        """The journal could not be synced after a batch failed."""

    def caught_up(self, conn: psycopg.Connection[Any] | None) -> None:
        """The queue is empty after a failure was healed: `conn` is the ledger's connection again."""


class LedgerWriter:
    """A queue of unacknowledged units and the one thread that sends them, oldest first."""

    def __init__(
        self, connect: Callable[[], psycopg.Connection[Any]], guard: DeadlineGuard, lock: threading.RLock,
        side: WriterSide,
    ) -> None:  # fmt: skip
        self._connect = connect
        self._guard = guard
        self._lock = lock
        self._changed = threading.Condition(lock)
        self._side = side
        self._units: deque[Unit] = deque()
        self._count = 0
        self._counted_failed = 0
        self._running = False
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._nudged = threading.Event()
        self._waiters = 0
        """Cuts a reconnect backoff short: someone is waiting for the queue to empty (a stop)."""
        self._conn: psycopg.Connection[Any] | None = None
        self._failing = False
        self.capacity = DEFAULT_CAPACITY
        self.max_batch = MAX_BATCH
        self.journal: LedgerJournal | None = None
        self.continuous = False
        """Group commit: the thread runs for good and every record comes through the queue."""

    # -- the queue -------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Records queued, not yet acknowledged or refused."""
        return self._count

    @property
    def saturated(self) -> bool:
        """The queue holds `capacity` records or more: hold back whatever can wait."""
        return self._count >= self.capacity

    @property
    def failing(self) -> bool:
        """The last batch failed for want of a connection and nothing was acknowledged since."""
        return self._failing

    def records(self) -> Iterator[Record]:
        """Every queued record, oldest first (call with the ledger's lock held)."""
        for unit in self._units:
            yield from unit

    def put(self, unit: Unit) -> None:
        """Queue a unit (the caller holds the ledger's lock) and make sure the thread sends it."""
        self._units.append(unit)
        self._count += len(unit)
        if len(self._units) == 1 or self._count >= self.max_batch:
            self._changed.notify_all()
        self.ensure_running()

    def ensure_running(self) -> None:
        """Start the thread unless it runs (the caller holds the ledger's lock)."""
        if self._running or self._closing.is_set():
            return
        self._running = True
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def start_group_commit(
        self, journal: LedgerJournal, capacity: int, conn: psycopg.Connection[Any] | None
    ) -> None:
        """Send every record from this thread from now on, on `conn` (the ledger's own connection,
        so that the run still writes on one); `journal` is synced when a batch fails."""
        with self._lock:
            self.journal, self.capacity, self.continuous = journal, capacity, True
            if self._conn is None:
                self._conn = conn
            elif conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            self.ensure_running()

    def wait_empty(self, timeout_sec: float) -> int:
        """Wait up to `timeout_sec` for the queue to empty; returns the records still queued."""
        with self._lock:
            if self._count:
                self.ensure_running()
                self._nudged.set()
            self._waiters += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(lambda: self._count == 0 or self._closing.is_set(), timeout_sec)
            finally:
                self._waiters -= 1
            return self._count

    # -- the thread ------------------------------------------------------------------------------
    def _next_batch(self) -> list[Unit] | None:
        """The oldest units up to `max_batch` records; None when the thread should end."""
        with self._lock:
            while not self._units or self._closing.is_set():
                if self._closing.is_set() or not self.continuous:
                    self._finish_locked()
                    return None
                self._changed.wait(0.5)
            self._gather()
            batch: list[Unit] = []
            size = 0
            for unit in self._units:
                if batch and size + len(unit) > self.max_batch:
                    break
                batch.append(unit)
                size += len(unit)
            return batch

    def _gather(self) -> None:
        """Under group commit, let a batch gather for up to GATHER_SEC (the lock held by the caller):
        the tick that queued the first unit finishes before this thread competes with it."""
        if not self.continuous:
            return
        deadline = time.monotonic() + GATHER_SEC
        while self._count < self.max_batch and not self._waiters and not self._closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._changed.wait(left)

    def _finish_locked(self) -> None:
        self._running = False
        if not self.continuous and not self._closing.is_set():
            conn, self._conn = self._conn, None
            self._side.caught_up(conn)

    def _run(self) -> None:
        backoff = BACKOFF_START_SEC
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._send(batch)
            except RETRYABLE as exc:
                self._lost_connection(batch, exc)
                self._nudged.wait(BACKOFF_START_SEC if self._waiters else backoff)
                self._nudged.clear()
                backoff = min(backoff * 2, BACKOFF_CAP_SEC)
                continue
            backoff = BACKOFF_START_SEC

    def _live_connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _send(self, batch: list[Unit]) -> None:
        """Commit `batch` in one transaction; on a refusal, find the refused units one by one."""
        conn = self._live_connection()
        try:
            with self._guard.bounded(conn), conn.transaction():
                apply_batch(conn, [record for unit in batch for record in unit])
        except RETRYABLE:
            raise
        except psycopg.Error:
            for unit in batch:
                self._send_alone(conn, unit)
            return
        self._acknowledged(len(batch))

    def _send_alone(self, conn: psycopg.Connection[Any], unit: Unit) -> None:
        try:
            with self._guard.bounded(conn), conn.transaction():
                for record in unit:
                    apply_record(conn, record)
        except RETRYABLE:
            raise
        except psycopg.Error as exc:
            with self._lock:
                self._pop(1)
                for record in unit:
                    self._side.refused(record, exc)
            return
        self._acknowledged(1)

    def _acknowledged(self, units: int) -> None:
        with self._lock:
            for unit in self._pop(units):
                self._side.acknowledged(unit)
            healed, self._failing = self._failing, False
        if healed and self.continuous:
            log.info("ledger reconnected; the queued records are being acknowledged")

    def _pop(self, units: int) -> list[Unit]:
        done = [self._units.popleft() for _ in range(units)]
        self._count -= sum(len(unit) for unit in done)
        self._counted_failed = max(0, self._counted_failed - units)
        self._changed.notify_all()
        return done

    def _lost_connection(self, batch: list[Unit], exc: Exception) -> None:
        """The batch stays queued; in group commit, its units are counted as failed once, and the
        first failure after a healthy stretch is logged."""
        self._drop()
        if self.continuous and self.journal is not None:
            try:
                self.journal.sync()
            except JournalError as err:
                self._side.journal_failed(err)
        with self._lock:
            first, self._failing = not self._failing, True
            fresh = batch[self._counted_failed :] if self.continuous else []
            self._counted_failed = max(self._counted_failed, len(batch))
            for unit in fresh:
                self._side.not_acknowledged(unit)
        if first and self.continuous:
            log.warning(
                "ledger write of %s (and %d more records) not acknowledged (%s): journaled,"
                " reconnecting in the background",
                describe_record(batch[0][0]), sum(len(unit) for unit in batch) - 1, first_line(exc),
            )  # fmt: skip

    def close(self, timeout_sec: float = 2.0) -> None:
        """Stop the thread; what is still queued stays in the journal for the next start."""
        with self._lock:
            self._closing.set()
            self._nudged.set()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=timeout_sec)
        self._drop()
