"""The process-wide stop request: what SIGTERM/SIGINT, the guards and the run itself ask for.

The handlers are installed by the entry point before anything slow happens (argument parsing,
heavy imports, service start-up), so a signal at any moment of a run's life is a request to
stop, answered with exit 1, and never a bare signal death. This module imports nothing heavy
for that reason.
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
import threading
import time
from types import FrameType


class StopRequest:
    """A one-way latch with the first reason given; safe to set from threads and signal handlers."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._reasons: list[str] = []
        self.requested_at: float | None = None
        """When the first stop was asked for (`time.monotonic`); None while none was."""

    def request(self, reason: str) -> None:
        """Ask to stop; the first reason wins."""
        self._stamp()
        self._reasons.append(reason)
        self.event.set()

    def request_from_signal(self, reason: str) -> None:
        """Like `request`, but never blocks: the handler may interrupt a thread holding the event's lock."""
        self._stamp()
        self._reasons.append(reason)
        with contextlib.suppress(RuntimeError):  # interpreter shutdown: nothing is left to wake
            threading.Thread(target=self.event.set, name="stop-request", daemon=True).start()

    def _stamp(self) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()

    def deadline(self, after_sec: float) -> float | None:
        """`after_sec` after the first stop request (`time.monotonic`), or None while none was made."""
        return None if self.requested_at is None else self.requested_at + after_sec

    @property
    def reason(self) -> str | None:
        return self._reasons[0] if self._reasons else None

    def is_set(self) -> bool:
        return bool(self._reasons)


PROCESS = StopRequest()
"""The stop request of this process: the entry point's signal handlers set it."""

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_signal_handlers(stop: StopRequest = PROCESS) -> None:
    """Make SIGTERM and SIGINT requests to stop (`stop.reason` is the signal's name), and SIGQUIT a
    request for every thread's stack on stderr (nothing else changes): what an operator, or the
    chaos checker, asks of a process that does not exit."""
    stream = sys.__stderr__
    if stream is not None:
        with contextlib.suppress(OSError, ValueError):  # no file descriptor behind it: no dump
            faulthandler.register(signal.SIGQUIT, file=stream, all_threads=True)

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.request_from_signal(signal.Signals(signum).name)

    for signum in _SIGNALS:
        signal.signal(signum, handler)


def restore_default_handlers() -> None:
    """Give SIGTERM and SIGINT back their default meaning, for commands without a graceful stop."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def startup_refusal(stop: StopRequest = PROCESS) -> str | None:
    """The operator's line when a stop was requested before the run began, else None."""
    if not stop.is_set():
        return None
    return f"arbitrage: stopped by {stop.reason} during start-up; nothing was started"
