"""SysMonitor: the engine process's CPU, memory, file descriptors and threads (D11 §3).

Memory that grows until the process dies is the commonest long-run failure in every peer
project, so RSS is sampled on a fixed cadence from a thread of its own and kept as a series:
`rss_growth_mb_per_hour` fits a least-squares line through it after a warm-up, which a
slow leak cannot hide from behind allocator noise. Each sample also gets a level against the
configured thresholds; a change of level is logged (WARN as a WARNING, so WARN = FAIL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from arbitrage.config.sysmon import SysMonConfig
from arbitrage.ops.watchdog import Level, breaches
from evidence.rss_growth import rss_growth_mb_per_hour, rss_growth_report

log = logging.getLogger("arbitrage.sysmon")

__all__ = ["ResourceSample", "SysMonitor", "rss_growth_mb_per_hour", "rss_growth_report"]

SERIES_MAX_SAMPLES = 50_000
_MB = 1_048_576


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """One reading of the process; `mono` orders samples, `epoch` dates them."""

    epoch: float
    mono: float
    cpu_pct: float
    rss_mb: float
    open_fds: int
    threads: int
    level: Level
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The heartbeat's `sys` field."""
        return {
            "cpu_pct": round(self.cpu_pct, 1),
            "rss_mb": round(self.rss_mb, 2),
            "open_fds": self.open_fds,
            "threads": self.threads,
            "level": self.level.value,
        }


class SysMonitor:
    """Samples this process every `sample_interval_sec` from a daemon thread, or on demand."""

    def __init__(
        self,
        config: SysMonConfig,
        process: psutil.Process | None = None,
        on_sample: Callable[[ResourceSample], object] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._process = process or psutil.Process()
        self._on_sample = on_sample
        self._log = logger or log
        self._lock = threading.Lock()
        self._series: deque[tuple[float, float]] = deque(maxlen=SERIES_MAX_SAMPLES)
        self._cpu_over: dict[Level, float | None] = {Level.WARN: None, Level.ERROR: None}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.level = Level.OK
        self.max_level = Level.OK
        self.latest: ResourceSample | None = None
        self.peaks: dict[str, float] = {"cpu_pct": 0.0, "rss_mb": 0.0, "open_fds": 0.0, "threads": 0.0}
        self._process.cpu_percent(interval=None)

    def classify(
        self, cpu_pct: float, rss_mb: float, open_fds: int, threads: int, now: float
    ) -> tuple[Level, tuple[str, ...]]:
        """The level of one reading and the breaches behind it; tracks how long CPU has been high."""
        c = self.config
        level = Level.OK
        reasons: list[str] = []
        for found, limit in ((Level.ERROR, c.max_cpu_pct), (Level.WARN, c.warn_cpu_pct)):
            if cpu_pct <= limit:
                self._cpu_over[found] = None
                continue
            since = self._cpu_over[found]
            if since is None:
                since = self._cpu_over[found] = now
            if now - since >= c.cpu_sustain_sec and level.rank < found.rank:
                level = found
                reasons.append(f"cpu_pct={cpu_pct:.1f} > {found.value} {limit:g} for {now - since:.0f}s")
        found, more = breaches(
            (
                ("rss_mb", rss_mb, c.warn_rss_mb, c.max_rss_mb),
                ("open_fds", open_fds, c.warn_open_fds, c.max_open_fds),
                ("threads", threads, c.warn_threads, c.max_threads),
            )
        )
        return found if found.rank > level.rank else level, (*reasons, *more)

    def sample(self) -> ResourceSample:
        """Read the process now, record RSS in the series, and log a change of level."""
        with self._lock:
            mono, epoch = time.monotonic(), time.time()
            with self._process.oneshot():
                cpu_pct = self._process.cpu_percent(interval=None)
                rss_mb = self._process.memory_info().rss / _MB
                open_fds = self._process.num_fds()
                threads = self._process.num_threads()
            level, reasons = self.classify(cpu_pct, rss_mb, open_fds, threads, mono)
            sample = ResourceSample(epoch, mono, cpu_pct, rss_mb, open_fds, threads, level, reasons)
            self._series.append((mono, rss_mb))
            for name in self.peaks:
                self.peaks[name] = max(self.peaks[name], float(getattr(sample, name)))
            previous, self.level, self.latest = self.level, level, sample
            if level.rank > self.max_level.rank:
                self.max_level = level
        if level is not previous:
            if level is Level.OK:
                self._log.info("resources %s -> OK: all within thresholds", previous.value)
            else:
                self._log.log(
                    level.log_level, "resources %s -> %s: %s", previous.value, level.value, "; ".join(reasons)
                )
        if self._on_sample is not None:
            self._on_sample(sample)
        return sample

    def rss_series(self) -> list[tuple[float, float]]:
        """`(monotonic seconds, rss_mb)` of every kept sample, oldest first."""
        with self._lock:
            return list(self._series)

    def _run(self) -> None:
        while not self._stop.wait(self.config.sample_interval_sec):
            try:
                self.sample()
            except Exception:
                self._log.exception("resource sample failed")

    def start(self) -> None:
        """Take the first sample now, then keep sampling from a daemon thread."""
        self.sample()
        self._thread = threading.Thread(target=self._run, name="sysmon", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and take a final sample; safe to call twice."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=self.config.sample_interval_sec + 5.0)
        self._thread = None
        self.sample()

    def summary(self) -> dict[str, Any]:
        """The resources part of kpi.json: last sample, peaks, worst level, and the RSS soak."""
        c = self.config
        return {
            "last": None if self.latest is None else self.latest.to_json(),
            "peak": {name: round(value, 2) for name, value in self.peaks.items()},
            "max_level": self.max_level.value,
            "sample_interval_sec": c.sample_interval_sec,
            "rss_growth": rss_growth_report(
                self.rss_series(), c.rss_warmup_sec, c.rss_growth_limit_pct_per_hour, c.rss_growth_floor_mb
            ),
        }
