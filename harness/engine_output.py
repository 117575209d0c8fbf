"""EngineOutput: an engine subprocess's stdout and stderr, read as they arrive.

The engine announces its evidence directory and metrics URL on stdout (``evidence: DIR``,
``metrics: URL``) and logs JSON lines on stderr. Both pipes are read on their own threads, so
neither can fill up and stall the engine; every WARNING-or-worse record is handed on at once.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from harness.warnfail import LogEvent

EVIDENCE_PREFIX = "evidence: "
METRICS_PREFIX = "metrics: "


class EngineOutput:
    """The lines, log records and announcements of one engine process."""

    def __init__(self, cwd: Path, on_warning: Callable[[LogEvent], None]) -> None:
        self._cwd = cwd
        self._on_warning = on_warning
        self._lock = threading.Lock()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._records: list[LogEvent] = []
        self._readers: list[threading.Thread] = []
        self._pid: int | None = None
        self._evidence_dir: Path | None = None
        self._metrics_url: str | None = None
        self.evidence_announced = threading.Event()
        """Set once the engine has printed its evidence directory."""
        self.metrics_announced = threading.Event()
        """Set once the engine has printed its metrics URL."""

    def pump(self, proc: subprocess.Popen[str]) -> None:
        """Start reading ``proc``'s stdout and stderr (both must be text pipes)."""
        assert proc.stdout is not None and proc.stderr is not None
        self._pid = proc.pid
        for target, stream in ((self._read_stdout, proc.stdout), (self._read_stderr, proc.stderr)):
            reader = threading.Thread(
                target=target, args=(stream,), name=f"engine-{target.__name__}", daemon=True
            )
            reader.start()
            self._readers.append(reader)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds per reader for the pipes to reach end of file."""
        for reader in self._readers:
            reader.join(timeout=timeout)

    @property
    def evidence_dir(self) -> Path | None:
        """The announced evidence directory, relative paths taken from the engine's cwd."""
        return self._evidence_dir

    @property
    def metrics_url(self) -> str | None:
        """The announced metrics URL."""
        return self._metrics_url

    @property
    def run_id(self) -> str | None:
        """The run id: the evidence directory's name."""
        return None if self._evidence_dir is None else self._evidence_dir.name

    @property
    def stdout(self) -> list[str]:
        """Every stdout line so far."""
        with self._lock:
            return list(self._stdout)

    @property
    def stderr(self) -> list[str]:
        """Every non-blank stderr line so far."""
        with self._lock:
            return list(self._stderr)

    @property
    def records(self) -> list[LogEvent]:
        """The stderr lines as log records, every level."""
        with self._lock:
            return list(self._records)

    def _read_stdout(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            with self._lock:
                self._stdout.append(line)
            if line.startswith(EVIDENCE_PREFIX) and self._evidence_dir is None:
                path = Path(line.removeprefix(EVIDENCE_PREFIX).strip())
                self._evidence_dir = path if path.is_absolute() else self._cwd / path
                self.evidence_announced.set()
            elif line.startswith(METRICS_PREFIX) and self._metrics_url is None:
                self._metrics_url = line.removeprefix(METRICS_PREFIX).strip()
                self.metrics_announced.set()

    def _read_stderr(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            event = LogEvent.from_line(line, f"engine pid {self._pid}", self.run_id)
            with self._lock:
                self._stderr.append(line)
                self._records.append(event)
            if event.levelno >= logging.WARNING:
                self._on_warning(event)
