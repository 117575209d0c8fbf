"""RSS growth per hour: the memory-leak rule, shared by the engine's monitor and every judge.

Memory that grows until the process dies is the commonest long-run failure, and allocator noise
over a short span extrapolates to large hourly rates. So growth is a least-squares slope after a
warm-up, and it counts as exceeded only when the rate is over its limit *and* the fitted growth
over the measured span is over a floor. The engine's monitor reports it in kpi.json; `verify`
recomputes it from the heartbeat's RSS samples with the same function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def rss_growth_mb_per_hour(samples: Sequence[tuple[float, float]], warmup_sec: float) -> float | None:
    """Least-squares slope of RSS, in MB per hour, over the samples after the warm-up.

    `samples` are `(seconds, rss_mb)` in time order; the warm-up is measured from the first
    one. None when fewer than two samples remain or they span no time.
    """
    fitted = _fit(samples, warmup_sec)
    return None if fitted is None else fitted[0] * 3600.0


def _fit(samples: Sequence[tuple[float, float]], warmup_sec: float) -> tuple[float, float, int, float] | None:
    """(slope per second, fitted RSS at the first kept sample, samples kept, span) or None."""
    if not samples:
        return None
    start = samples[0][0] + warmup_sec
    kept = [(t, rss) for t, rss in samples if t >= start]
    if len(kept) < 2:
        return None
    n = len(kept)
    mean_t = sum(t for t, _ in kept) / n
    mean_r = sum(r for _, r in kept) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in kept)
    if var_t <= 0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in kept) / var_t
    first_t = kept[0][0]
    return slope, mean_r + slope * (first_t - mean_t), n, kept[-1][0] - first_t


def rss_growth_report(
    samples: Sequence[tuple[float, float]], warmup_sec: float, limit_pct_per_hour: float, floor_mb: float
) -> dict[str, Any]:
    """The memory-soak verdict for kpi.json.

    Growth counts as exceeded only when the hourly rate is over the limit *and* the fitted
    growth across the measured span is over `floor_mb`: a short run's allocator noise
    extrapolates to large hourly rates without any leak behind it.
    """
    fitted = _fit(samples, warmup_sec)
    report: dict[str, Any] = {
        "warmup_sec": warmup_sec,
        "limit_pct_per_hour": limit_pct_per_hour,
        "floor_mb": floor_mb,
        "samples": 0,
        "span_sec": 0.0,
        "baseline_mb": None,
        "mb_per_hour": None,
        "pct_per_hour": None,
        "exceeded": None,
    }
    if fitted is None:
        return report
    slope, baseline, count, span = fitted
    mb_per_hour = slope * 3600.0
    pct_per_hour = mb_per_hour / baseline * 100.0 if baseline > 0 else None
    report.update(
        samples=count,
        span_sec=round(span, 3),
        baseline_mb=round(baseline, 3),
        mb_per_hour=round(mb_per_hour, 4),
        pct_per_hour=None if pct_per_hour is None else round(pct_per_hour, 4),
        exceeded=pct_per_hour is not None and pct_per_hour > limit_pct_per_hour and slope * span > floor_mb,
    )
    return report
