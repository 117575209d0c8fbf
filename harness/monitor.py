"""The live monitor of a running engine (D77-4 §2.3): abort early, and say why.

A soak that has already logged an ERROR, whose heartbeat went quiet, or whose memory runs away
will fail anyway; waiting out its remaining hour only hides the cause. The monitor watches the log
stream, the heartbeat file's freshness and the process's RSS and CPU, and, when the engine serves
metrics, scrapes them every ``limits.metrics.scrape_seconds`` for D77-4 §3.4's critical conditions
(``harness.metrics_watch``). On the first breach it calls ``on_abort`` with a one-line reason.
``document()`` is what ``monitor_summary.json`` holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from evidence.documents import Manifest, beat_epoch, parse_document
from evidence.invariants import HEARTBEAT_SLACK_SECONDS
from evidence.names import HEARTBEAT, MANIFEST
from evidence.reader import CorruptEvidenceError, read_json, read_jsonl
from harness.metrics_watch import MetricLimits, MetricsWatch, fetch
from harness.options import DEFAULT_SCRAPE_SECONDS
from harness.warnfail import LogEvent

SCRAPE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class MonitorLimits:
    """When to abort a run. Defaults follow D77-4 §3.4 and the heartbeat invariant (interval + 5 s).

    Bootstrap is not held to the heartbeat limit: the engine's run, and its first beat, start only
    after its market source is ready, so until then the startup timeouts apply instead.
    RSS growth is judged only after ``rss_warmup_seconds`` and over at least
    ``rss_growth_window_seconds``, and must also exceed ``rss_growth_floor_mb``, so allocator
    noise in a short run cannot trip it. CPU must stay above its limit for ``cpu_window_seconds``.
    """

    heartbeat_slack_seconds: float = HEARTBEAT_SLACK_SECONDS
    evidence_timeout_seconds: float = 60.0
    first_beat_timeout_seconds: float = 120.0
    rss_limit_mb: float = 2048.0
    rss_warmup_seconds: float = 60.0
    rss_growth_window_seconds: float = 600.0
    rss_growth_pct_per_hour: float = 10.0
    rss_growth_floor_mb: float = 16.0
    cpu_limit_pct: float = 80.0
    cpu_window_seconds: float = 600.0
    poll_seconds: float = 1.0
    metrics: MetricLimits = field(default_factory=MetricLimits)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class RunMonitor:
    """Polls one engine process from its own thread; log records are pushed in by the reader."""

    def __init__(
        self,
        pid: int,
        limits: MonitorLimits,
        evidence_dir: Callable[[], Path | None],
        on_abort: Callable[[str], None],
        metrics_url: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.pid = pid
        self.limits = limits
        self._evidence_dir = evidence_dir
        self._on_abort = on_abort
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = time.time()
        self._ended: float | None = None
        self.abort_reason: str | None = None
        self._log_reason: str | None = None
        self.log_counts: dict[str, int] = {}
        self._evidence_seen: float | None = None
        self._interval: float | None = None
        self._beats = 0
        self._heartbeat_done = False
        self.max_heartbeat_age = 0.0
        self._rss: list[float] = []
        self._rss_base: tuple[float, float] | None = None
        self._growth_pct_per_hour: float | None = None
        self._cpu: list[float] = []
        self._cpu_over_since: float | None = None
        self._metrics_url = metrics_url
        self._metrics = MetricsWatch(limits.metrics)
        self._next_scrape = 0.0
        self._scrape_errors = 0
        self._last_scrape_error: str | None = None
        try:
            self._process: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._process = None

    # -- log stream, called from the stderr reader thread ------------------------------------
    def on_event(self, event: LogEvent, allowed: bool) -> None:
        """Count a record; an unallowed ERROR, CRITICAL or Traceback aborts the run."""
        traceback = "Traceback (most recent call last)" in event.message
        with self._lock:
            self.log_counts[event.levelname] = self.log_counts.get(event.levelname, 0) + 1
            if traceback:
                self.log_counts["traceback"] = self.log_counts.get("traceback", 0) + 1
            if allowed or self._log_reason is not None:
                return
            if event.levelno >= logging.ERROR or traceback:
                first_line = event.message.splitlines()[0] if event.message else ""
                self._log_reason = f"log: {event.levelname} [{event.logger}] {first_line[:300]}"
        self._wake.set()

    # -- the polling thread -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"engine-monitor-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; safe to call twice, and from the monitor's own abort callback."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        if self._ended is None:
            self._ended = time.time()

    def _run(self) -> None:
        while not self._stop.is_set():
            reason = self._check()
            if reason is not None:
                self.abort_reason = reason
                self._on_abort(reason)
                return
            self._wake.wait(self.limits.poll_seconds)
            self._wake.clear()

    def _alive(self) -> bool:
        if self._process is None:
            return False
        try:
            return self._process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _check(self) -> str | None:
        with self._lock:
            if self._log_reason is not None:
                return self._log_reason
        if not self._alive():
            self._stop.set()
            return None
        now = time.time()
        return self._check_heartbeat(now) or self._check_resources(now) or self._check_metrics(now)

    def _check_heartbeat(self, now: float) -> str | None:
        evidence = self._evidence_dir()
        if evidence is None:
            waited = now - self._started
            if waited > self.limits.evidence_timeout_seconds:
                return f"no evidence directory announced after {waited:.0f}s"
            return None
        if self._evidence_seen is None:
            self._evidence_seen = now
        if self._heartbeat_done:
            return None
        if self._interval is None:
            try:
                manifest = parse_document(Manifest, read_json(evidence / MANIFEST))
            except (OSError, CorruptEvidenceError):
                return None
            if manifest is None:
                return None
            self._interval = manifest.heartbeat_interval_seconds
        try:
            records = read_jsonl(evidence / HEARTBEAT).records
        except FileNotFoundError:
            records = []
        except CorruptEvidenceError as exc:
            return f"heartbeat corrupt: {exc}"
        self._beats = len(records)
        if not records:
            waited = now - self._evidence_seen
            if waited > self.limits.first_beat_timeout_seconds:
                return (
                    f"no heartbeat {waited:.0f}s after the evidence directory appeared "
                    f"> limit {self.limits.first_beat_timeout_seconds:.0f}s"
                )
            return None
        if records[-1].get("event") == "stop":
            self._heartbeat_done = True
            return None
        last = beat_epoch(records[-1])
        if last is None:
            return f"heartbeat line {len(records)} has no epoch_time"
        age = now - last
        self.max_heartbeat_age = max(self.max_heartbeat_age, age)
        limit = self._interval + self.limits.heartbeat_slack_seconds
        if age > limit:
            return (
                f"heartbeat stale: last beat {age:.1f}s ago > limit {limit:.1f}s "
                f"(interval {self._interval:g}s + {self.limits.heartbeat_slack_seconds:g}s), "
                f"{len(records)} beats so far"
            )
        return None

    def _check_resources(self, now: float) -> str | None:
        assert self._process is not None
        try:
            rss_mb = self._process.memory_info().rss / 1_048_576
            cpu = self._process.cpu_percent(None)
        except psutil.NoSuchProcess:
            return None
        self._rss.append(rss_mb)
        self._cpu.append(cpu)
        limits = self.limits
        if rss_mb > limits.rss_limit_mb:
            return f"rss {rss_mb:.1f} MB > limit {limits.rss_limit_mb:.1f} MB"
        if now - self._started >= limits.rss_warmup_seconds:
            if self._rss_base is None:
                self._rss_base = (now, rss_mb)
            span = now - self._rss_base[0]
            if span >= limits.rss_growth_window_seconds and self._rss_base[1] > 0:
                growth = rss_mb - self._rss_base[1]
                self._growth_pct_per_hour = growth / self._rss_base[1] * 100.0 * 3600.0 / span
                if (
                    self._growth_pct_per_hour > limits.rss_growth_pct_per_hour
                    and growth > limits.rss_growth_floor_mb
                ):
                    base_mb = self._rss_base[1]
                    return (
                        f"rss growth {self._growth_pct_per_hour:.1f}%/h > limit "
                        f"{limits.rss_growth_pct_per_hour:.1f}%/h ({base_mb:.1f} -> {rss_mb:.1f} MB "
                        f"over {span / 60:.1f} min)"
                    )
        if cpu <= limits.cpu_limit_pct:
            self._cpu_over_since = None
        elif self._cpu_over_since is None:
            self._cpu_over_since = now
        elif now - self._cpu_over_since >= limits.cpu_window_seconds:
            return (
                f"cpu {cpu:.0f}% > limit {limits.cpu_limit_pct:.0f}% for "
                f"{now - self._cpu_over_since:.0f}s (window {limits.cpu_window_seconds:.0f}s)"
            )
        return None

    def _check_metrics(self, now: float) -> str | None:
        """Scrape when due; judged only while the run goes (not after the heartbeat's stop line)."""
        url = self._metrics_url()
        if url is None or self._heartbeat_done or now < self._next_scrape:
            return None
        self._next_scrape = now + self._scrape_seconds()
        try:
            reason = self._metrics.observe(fetch(url, SCRAPE_TIMEOUT_SECONDS), now)
        except (OSError, ValueError) as exc:
            self._scrape_errors += 1
            self._last_scrape_error = f"{type(exc).__name__}: {exc}"
            return None
        return None if reason is None else f"metrics: {reason} ({url})"

    def _scrape_seconds(self) -> float:
        configured = self.limits.metrics.scrape_seconds
        return DEFAULT_SCRAPE_SECONDS if configured is None else configured

    # -- the record ---------------------------------------------------------------------------
    def document(self, exit_code: int | None, run_id: str | None) -> dict[str, Any]:
        """The content of ``monitor_summary.json``."""
        ended = self._ended if self._ended is not None else time.time()
        rss = self._rss
        with self._lock:
            counts = dict(self.log_counts)
        interval = self._interval
        return {
            "run_id": run_id,
            "pid": self.pid,
            "started_at": _iso(self._started),
            "ended_at": _iso(ended),
            "monitored_seconds": round(ended - self._started, 3),
            "aborted": self.abort_reason is not None,
            "abort_reason": self.abort_reason,
            "exit_code": exit_code,
            "limits": asdict(self.limits),
            "log_records": counts,
            "heartbeat": {
                "interval_seconds": interval,
                "limit_seconds": None if interval is None else interval + self.limits.heartbeat_slack_seconds,
                "beats_seen": self._beats,
                "max_age_seconds": round(self.max_heartbeat_age, 3),
            },
            "rss_mb": {
                "first": round(rss[0], 2) if rss else None,
                "peak": round(max(rss), 2) if rss else None,
                "last": round(rss[-1], 2) if rss else None,
                "growth_pct_per_hour": self._growth_pct_per_hour,
            },
            "cpu_pct": {
                "mean": round(sum(self._cpu) / len(self._cpu), 1) if self._cpu else None,
                "max": round(max(self._cpu), 1) if self._cpu else None,
            },
            "samples": len(rss),
            "metrics": {
                "url": self._metrics_url(),
                "scrape_seconds": self._scrape_seconds(),
                "scrape_errors": self._scrape_errors,
                "last_scrape_error": self._last_scrape_error,
                **self._metrics.summary(),
            },
        }
