"""Evidence write failures: the first one stops the run, fail-closed, and becomes its one line.

A run whose evidence cannot be written (disk full, the directory removed, an I/O error) can no
longer prove anything it does, so it must not go on trading. Every writer into the evidence
directory (the heartbeat thread, the engine log, the close-out) reports its OSError here; the
first report asks the run to stop, and the close-out prints the line naming the path and cause.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("arbitrage.evidence")

STOP_REASON = "EVIDENCE_WRITE_FAILED"


@dataclass(frozen=True, slots=True)
class EvidenceFailure:
    """Which evidence path could not be written, and why."""

    path: str
    cause: str

    def line(self) -> str:
        """The operator's one line."""
        return f"arbitrage: evidence write failed: {self.path}: {self.cause}; the run stopped ({STOP_REASON})"


def describe(exc: OSError, where: Path | None = None) -> EvidenceFailure:
    """The path and cause of an OSError, as the operator should read them."""
    path = exc.filename if exc.filename is not None else where
    cause = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno is not None:
        cause = f"{cause} (errno {exc.errno})"
    return EvidenceFailure(str(path) if path is not None else "evidence directory", cause)


class EvidenceFailures:
    """Keeps the run's first evidence write failure; `on_first` (the stop request) runs once."""

    def __init__(self, on_first: Callable[[], None], where: Path | None = None) -> None:
        self._on_first = on_first
        self._lock = threading.Lock()
        self.where = where
        self.first: EvidenceFailure | None = None

    def report(self, exc: OSError) -> EvidenceFailure:
        """Record a failed write (from any thread); the first one stops the run. Returns the first."""
        failure = describe(exc, self.where)
        with self._lock:
            if self.first is not None:
                return self.first
            self.first = failure
        self._on_first()
        log.error("evidence write failed, stopping the run: %s: %s", failure.path, failure.cause)
        return failure
