"""A client-side deadline for every PostgreSQL call.

`statement_timeout` is enforced by the server, so a frozen backend or a silent network never
fires it, and libpq would wait forever. The guard watches the calls in flight from one
background thread and, when a call outlives its deadline, shuts the connection's socket down:
the blocked call then fails at once with a connection error, and the connection is discarded.
A stop request shortens every deadline, in flight or to come, so that a stop is never held by
the database for longer than the stop grace.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg

log = logging.getLogger("arbitrage.pg_deadline")

POLL_SEC = 0.05


class CallTimedOut(psycopg.OperationalError):
    """A call got no answer before its client-side deadline; its connection was cut."""


def cut_connection(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down, so that any call blocked on it returns with an error."""
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


class DeadlineGuard:
    """Bounds PostgreSQL calls on the client side; one background thread serves every call."""

    def __init__(self, bound_sec: float) -> None:
        self.bound_sec = bound_sec
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[psycopg.Connection[Any], float]] = {}
        self._cut: set[int] = set()
        self._tokens = itertools.count()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="pg-deadline", daemon=True)
            self._thread.start()

    def expedite(self, grace_sec: float) -> None:
        """A stop was requested: no call, in flight or later, may take longer than `grace_sec`."""
        with self._lock:
            self.bound_sec = min(self.bound_sec, grace_sec)
            latest = time.monotonic() + grace_sec
            for token, (conn, deadline) in list(self._calls.items()):
                self._calls[token] = (conn, min(deadline, latest))

    @contextlib.contextmanager
    def bounded(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Run the block's calls on `conn` under the deadline; CallTimedOut when it was cut."""
        with self._lock:
            self._ensure_thread()
            token = next(self._tokens)
            bound = self.bound_sec
            self._calls[token] = (conn, time.monotonic() + bound)
        try:
            yield
        except psycopg.Error as exc:
            with self._lock:
                was_cut = token in self._cut
            if was_cut:
                raise CallTimedOut(f"no answer from PostgreSQL within {bound:g}s (connection cut)") from exc
            raise
        finally:
            with self._lock:
                self._calls.pop(token, None)
                self._cut.discard(token)

    def _watch(self) -> None:
        while not self._closed.wait(POLL_SEC):
            now = time.monotonic()
            with self._lock:
                overdue = [
                    (token, conn)
                    for token, (conn, deadline) in self._calls.items()
                    if deadline <= now and token not in self._cut
                ]
                self._cut.update(token for token, _ in overdue)
            for _, conn in overdue:
                cut_connection(conn)

    def close(self) -> None:
        """Stop the watcher thread; calls made afterwards start it again."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        self._closed.clear()
