"""RunWatcher: the heartbeat, beaten from its own timer thread.

A heartbeat logged from the trading loop goes quiet exactly when the loop stalls, and then
"heartbeat alive, bot dead" cannot be told from a healthy run. So the beat comes from its own
thread on an absolute schedule, and each line carries `last_loop_ts` and `loop_count` so a
reader can judge the loop's progress, not only the file's freshness.

A heartbeat that cannot be written (disk full, the evidence directory removed) is reported to
`on_write_error` once and the beating stops: the run must stop, fail-closed, not go on blind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from pydantic import ValidationError

from evidence.documents import HeartbeatLine
from evidence.writer import JsonlAppender

log = logging.getLogger("arbitrage.watcher")


@dataclass(frozen=True, slots=True)
class LoopProgress:
    """What the loop publishes after each tick; replaced whole, so reading it needs no lock."""

    loop_count: int = 0
    last_loop_ts: float | None = None
    kpi: dict[str, Any] = field(default_factory=dict)
    guards: dict[str, Any] = field(default_factory=dict)


class RunWatcher:
    """Writes heartbeat.jsonl at start, every `interval_sec`, and at stop, each line fsynced."""

    def __init__(
        self,
        path: Path,
        interval_sec: float,
        progress: Callable[[], LoopProgress],
        watchdog_level: Callable[[], str] = lambda: "OK",
        extra: Callable[[], dict[str, Any]] | None = None,
        on_beat: Callable[[dict[str, Any]], object] | None = None,
        on_write_error: Callable[[OSError], object] | None = None,
    ) -> None:
        self.interval_sec = interval_sec
        self._appender = JsonlAppender(path)
        self._on_write_error = on_write_error
        self.write_error: OSError | None = None
        self._progress = progress
        self._watchdog_level = watchdog_level
        self._on_beat = on_beat
        self._extra = extra
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.beat_epochs: list[float] = []
        self.last_rss_mb = 0.0
        self._contract_broken = False

    def beat(self, event: str) -> dict[str, Any]:
        """Write one heartbeat line now and return it."""
        progress = self._progress()
        now = time.time()
        self.last_rss_mb = round(self._process.memory_info().rss / 1_048_576, 2)
        with self._seq_lock:
            line = {
                "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
                "epoch_time": int(now),
                "epoch_time_precise": now,
                "seq": self._seq,
                "event": event,
                "kpi": progress.kpi,
                "guards": progress.guards,
                "last_loop_ts": progress.last_loop_ts,
                "loop_count": progress.loop_count,
                "rss_mb": self.last_rss_mb,
                "watchdog": self._watchdog_level(),
            }
            if self._extra is not None:
                line.update(self._extra())
            self._check_contract(line)
            try:
                self._appender.append(line)
            except OSError as exc:
                self._report(exc)
                raise
            self._seq += 1
            self.beat_epochs.append(now)
        if self._on_beat is not None:
            self._on_beat(line)
        return line

    def _check_contract(self, line: dict[str, Any]) -> None:
        """Log, once, a line that breaks `HeartbeatLine`; it is written all the same (it is evidence)."""
        if self._contract_broken:
            return
        try:
            HeartbeatLine.model_validate(line)
        except ValidationError as exc:
            self._contract_broken = True
            log.error("heartbeat line breaks its contract: %s", str(exc).splitlines()[:3])

    def _beat_or_report(self, event: str) -> None:
        """Beat; an OSError is reported once (`write_error`, `on_write_error`) and ends the beating."""
        if self.write_error is not None:
            return
        try:
            self.beat(event)
        except OSError:
            if self.write_error is None:
                raise

    def check_file(self) -> None:
        """Between beats: report a heartbeat file removed with its directory (one fstat)."""
        if self.write_error is None:
            try:
                self._appender.check_linked()
            except OSError as exc:
                self._report(exc)

    def _report(self, exc: OSError) -> None:
        if self.write_error is not None:
            return
        if exc.filename is None:
            exc = OSError(exc.errno, exc.strerror or str(exc), str(self._appender.path))
        self.write_error = exc
        if self._on_write_error is not None:
            self._on_write_error(exc)
        else:
            log.error("heartbeat write failed: %s", exc)

    def _run(self) -> None:
        due = time.monotonic() + self.interval_sec
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            if self.write_error is not None:
                return
            try:
                self._beat_or_report("beat")
            except Exception:
                log.exception("heartbeat failed")
            due += self.interval_sec
            if due < time.monotonic():
                due = time.monotonic() + self.interval_sec

    def start(self) -> None:
        """Write the start beat, then keep beating from a daemon thread."""
        self._beat_or_report("start")
        self._thread = threading.Thread(target=self._run, name="run-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and write the final beat; safe to call twice."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=self.interval_sec + 5.0)
        self._thread = None
        self._beat_or_report("stop")
        try:
            self._appender.close()
        except OSError as exc:
            self._report(exc)
