"""D77-4 §3.4's critical conditions read from the engine's `/metrics`, one scrape at a time.

D77-4 §2.3's monitor polls the metrics endpoint every 10 s for the DLQ count, the notifier's
availability, the loop latency p99, CPU and memory. `MetricsWatch` is that judgement, fed with
the exposition text and the time it was scraped, so it can be exercised without a clock; the
harness monitor does the HTTP. Each condition's threshold is in `MetricLimits`, whose defaults
are D77-4's values as `evidence.criteria` states them for every other judge of a run.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families

from evidence.criteria import (
    CPU_LIMIT_PCT,
    LOOP_LATENCY_P99_LIMIT_MS,
    MEMORY_GROWTH_LIMIT_PCT_PER_HOUR,
    RSS_FLOOR_MB,
    RSS_WARMUP_SEC,
    Windows,
)
from evidence.rss_growth import rss_growth_report

LATENCY: Final = "arbitrage_loop_latency_seconds"
DLQ: Final = "alert_dlq_total"
SENT: Final = "alert_sent_total"
NOTIFIER: Final = "notifier_available"
CPU_SECONDS: Final = "process_cpu_seconds_total"
RSS_BYTES: Final = "process_resident_memory_bytes"


@dataclass(frozen=True)
class MetricLimits:
    """When a scrape aborts the run (D77-4 §3.4, first group), and how often to scrape.

    `scrape_seconds` None means the session's ``--metrics-scrape-interval`` (10 s by default).
    """

    scrape_seconds: float | None = None
    dlq_limit: int = 0
    loop_latency_p99_seconds: float = LOOP_LATENCY_P99_LIMIT_MS / 1000.0
    loop_latency_window_seconds: float = Windows().loop_latency
    cpu_limit_pct: float = CPU_LIMIT_PCT
    cpu_window_seconds: float = Windows().cpu
    memory_growth_pct_per_hour: float = MEMORY_GROWTH_LIMIT_PCT_PER_HOUR
    memory_warmup_seconds: float = RSS_WARMUP_SEC
    memory_floor_mb: float = RSS_FLOOR_MB


def fetch(url: str, timeout: float) -> str:
    """One scrape over HTTP (raises OSError when the endpoint does not answer)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def sample_values(text: str) -> dict[str, float]:
    """Unlabelled samples by name, plus histogram buckets as `<name>_bucket{le}` keys."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            le = sample.labels.get("le")
            key = sample.name if le is None else f"{sample.name}{{{le}}}"
            values[key] = float(sample.value)
    return values


def buckets(values: Mapping[str, float], name: str) -> list[tuple[float, float]]:
    """The cumulative `(upper bound, count)` pairs of histogram `name`, in bound order."""
    prefix = f"{name}_bucket{{"
    found = [(float(key[len(prefix) : -1]), count) for key, count in values.items() if key.startswith(prefix)]
    return sorted(found)


def quantile(q: float, cumulative: Iterable[tuple[float, float]]) -> float | None:
    """PromQL's `histogram_quantile` over cumulative buckets; None when they hold no observation."""
    pairs = list(cumulative)
    if not pairs or pairs[-1][1] <= 0:
        return None
    rank = q * pairs[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for index, (bound, count) in enumerate(pairs):
        if count >= rank:
            if math.isinf(bound):
                return pairs[index - 1][0] if index > 0 else None
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return pairs[-1][0]


@dataclass
class _Sustained:
    """Since when a condition has held on every scrape, and the longest it held."""

    since: float | None = None
    longest: float = 0.0

    def update(self, holds: bool | None, now: float) -> float:
        if not holds:
            self.since = None
            return 0.0
        self.since = now if self.since is None else self.since
        self.longest = max(self.longest, now - self.since)
        return now - self.since


@dataclass
class MetricsWatch:
    """The state between scrapes: the previous one, the sustained conditions, the RSS samples."""

    limits: MetricLimits
    scrapes: int = 0
    last: dict[str, float] = field(default_factory=dict)
    last_at: float | None = None
    latency_p99: float | None = None
    cpu_pct: float | None = None
    rss: list[tuple[float, float]] = field(default_factory=list)
    growth_pct_per_hour: float | None = None
    _slow: _Sustained = field(default_factory=_Sustained)
    _busy: _Sustained = field(default_factory=_Sustained)

    def observe(self, text: str, now: float) -> str | None:
        """Judge one scrape taken at `now` (epoch seconds); the abort reason, or None."""
        values = sample_values(text)
        previous, previous_at = self.last, self.last_at
        self.scrapes += 1
        self.last, self.last_at = values, now
        limits = self.limits
        dlq = values.get(DLQ)
        if dlq is not None and dlq > limits.dlq_limit:
            return f"{DLQ} {dlq:g} > limit {limits.dlq_limit} (alerts dead-lettered)"
        notifier, sent = values.get(NOTIFIER), values.get(SENT, 0.0)
        if notifier == 0.0 and sent + (dlq or 0.0) > 0:
            return f"{NOTIFIER} 0 (notifier down; {sent:g} sent, {dlq or 0:g} dead-lettered)"
        return (
            self._latency(values, previous, now)
            or self._cpu(values, previous, previous_at, now)
            or self._memory(values, now)
        )

    def _latency(self, values: dict[str, float], previous: dict[str, float], now: float) -> str | None:
        current = buckets(values, LATENCY)
        before = dict(buckets(previous, LATENCY))
        self.latency_p99 = quantile(
            0.99, [(bound, count - before.get(bound, 0.0)) for bound, count in current]
        )
        limits = self.limits
        held = self._slow.update(
            None if self.latency_p99 is None else self.latency_p99 > limits.loop_latency_p99_seconds, now
        )
        if held >= limits.loop_latency_window_seconds:
            assert self.latency_p99 is not None
            return (
                f"loop latency p99 {self.latency_p99 * 1000:.0f} ms > limit "
                f"{limits.loop_latency_p99_seconds * 1000:g} ms for {held:.0f}s "
                f"(window {limits.loop_latency_window_seconds:g}s, from {LATENCY})"
            )
        return None

    def _cpu(
        self, values: dict[str, float], previous: dict[str, float], previous_at: float | None, now: float
    ) -> str | None:
        used, used_before = values.get(CPU_SECONDS), previous.get(CPU_SECONDS)
        self.cpu_pct = None
        if used is not None and used_before is not None and previous_at is not None and now > previous_at:
            self.cpu_pct = 100.0 * (used - used_before) / (now - previous_at)
        limits = self.limits
        held = self._busy.update(None if self.cpu_pct is None else self.cpu_pct > limits.cpu_limit_pct, now)
        if held >= limits.cpu_window_seconds:
            return (
                f"cpu {self.cpu_pct:.0f}% > limit {limits.cpu_limit_pct:g}% for {held:.0f}s "
                f"(window {limits.cpu_window_seconds:g}s, from {CPU_SECONDS})"
            )
        return None

    def _memory(self, values: dict[str, float], now: float) -> str | None:
        rss = values.get(RSS_BYTES)
        if rss is None:
            return None
        self.rss.append((now, rss / 1_048_576))
        limits = self.limits
        report = rss_growth_report(
            self.rss, limits.memory_warmup_seconds, limits.memory_growth_pct_per_hour, limits.memory_floor_mb
        )
        self.growth_pct_per_hour = report["pct_per_hour"]
        if report["exceeded"]:
            return (
                f"memory growth {report['pct_per_hour']:.1f}%/h > limit "
                f"{limits.memory_growth_pct_per_hour:g}%/h "
                f"(RSS {report['baseline_mb']:.1f} MB over {report['span_sec']:.0f}s, from {RSS_BYTES})"
            )
        return None

    def summary(self) -> dict[str, Any]:
        """What `monitor_summary.json` records of the scrapes."""
        last = self.last
        return {
            "scrapes": self.scrapes,
            "alert_dlq_total": last.get(DLQ),
            "alert_sent_total": last.get(SENT),
            "notifier_available": last.get(NOTIFIER),
            "loop_latency_p99_seconds": self.latency_p99,
            "loop_latency_p99_over_limit_longest_seconds": round(self._slow.longest, 3),
            "cpu_pct": None if self.cpu_pct is None else round(self.cpu_pct, 1),
            "cpu_over_limit_longest_seconds": round(self._busy.longest, 3),
            "rss_mb_last": round(self.rss[-1][1], 2) if self.rss else None,
            "memory_growth_pct_per_hour": self.growth_pct_per_hour,
        }
