"""D77-4 §3.4's critical conditions judged from scrapes of a real EngineMetrics registry.

The scrape times are given, not measured: each test says when each scrape was taken, so the
"sustained for N minutes" rules are exercised without waiting for them.
"""

from __future__ import annotations

import pytest

from arbitrage.ops.metrics import EngineMetrics
from evidence.criteria import CPU_LIMIT_PCT, LOOP_LATENCY_P99_LIMIT_MS, Windows
from harness.metrics_watch import MetricLimits, MetricsWatch, buckets, quantile, sample_values

T0 = 1_800_000_000.0


def watch(**limits: float) -> MetricsWatch:
    return MetricsWatch(MetricLimits(**limits))  # type: ignore[arg-type]


def test_the_defaults_are_d77_4s_as_evidence_criteria_states_them() -> None:
    limits = MetricLimits()
    assert limits.loop_latency_p99_seconds * 1000 == LOOP_LATENCY_P99_LIMIT_MS == 100.0
    assert limits.loop_latency_window_seconds == Windows().loop_latency == 300.0
    assert limits.cpu_limit_pct == CPU_LIMIT_PCT == 80.0
    assert limits.cpu_window_seconds == Windows().cpu == 600.0
    assert limits.memory_growth_pct_per_hour == 10.0
    assert limits.dlq_limit == 0


def test_quantile_interpolates_like_histogram_quantile() -> None:
    cumulative = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, cumulative) == pytest.approx(0.01)
    assert quantile(0.7, cumulative) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert quantile(0.99, cumulative) == pytest.approx(0.1 + 0.9 * 9 / 10)
    assert quantile(0.99, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.99, [(0.1, 1.0), (float("inf"), 5.0)]) == 0.1, "beyond the last bound: that bound"


def test_a_dead_lettered_alert_aborts_on_the_first_scrape_that_shows_it() -> None:
    metrics, judge = EngineMetrics(), watch()
    metrics.update_alerts(sent=1, dlq=0, available=True)
    assert judge.observe(metrics.scrape(), T0) is None
    metrics.update_alerts(sent=1, dlq=2, available=False)
    assert judge.observe(metrics.scrape(), T0 + 10) == "alert_dlq_total 2 > limit 0 (alerts dead-lettered)"
    assert judge.summary()["alert_dlq_total"] == 2.0 and judge.summary()["scrapes"] == 2


def test_an_unconfigured_notifier_is_not_down_but_a_failing_one_is() -> None:
    metrics, judge = EngineMetrics(), watch(dlq_limit=5)
    metrics.update_alerts(sent=0, dlq=0, available=False)
    assert judge.observe(metrics.scrape(), T0) is None, "no channel configured: nothing was due"
    metrics.update_alerts(sent=3, dlq=1, available=False)
    reason = judge.observe(metrics.scrape(), T0 + 10)
    assert reason == "notifier_available 0 (notifier down; 3 sent, 1 dead-lettered)"


def test_loop_latency_p99_aborts_only_once_over_the_limit_for_the_whole_window() -> None:
    metrics, judge = EngineMetrics(), watch(loop_latency_window_seconds=30.0)
    assert judge.observe(metrics.scrape(), T0) is None
    for second in range(10, 40, 10):
        for _ in range(50):
            metrics.observe_tick(150.0)
        reason = judge.observe(metrics.scrape(), T0 + second)
        assert reason is None, f"{second}s: held only {second - 10}s of the 30s window"
        assert judge.latency_p99 is not None and 0.1 < judge.latency_p99 <= 0.25
    for _ in range(50):
        metrics.observe_tick(150.0)
    reason = judge.observe(metrics.scrape(), T0 + 40)
    assert reason is not None and reason.startswith("loop latency p99 248 ms > limit 100 ms for 30s")


def test_a_fast_interval_resets_the_latency_window() -> None:
    metrics, judge = EngineMetrics(), watch(loop_latency_window_seconds=20.0)
    judge.observe(metrics.scrape(), T0)
    for second, latency_ms in ((10, 150.0), (20, 2.0), (30, 150.0), (40, 150.0)):
        for _ in range(100):
            metrics.observe_tick(latency_ms)
        assert judge.observe(metrics.scrape(), T0 + second) is None, second
    assert judge.summary()["loop_latency_p99_over_limit_longest_seconds"] == 10.0


CPU_SCRAPE = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n"


def test_cpu_over_80_percent_for_the_window_aborts() -> None:
    judge = watch(cpu_window_seconds=600.0)
    for step in range(61):
        assert judge.observe(CPU_SCRAPE.format(cpu=step * 9.0), T0 + step * 10) is None, step
    reason = judge.observe(CPU_SCRAPE.format(cpu=61 * 9.0), T0 + 610)
    assert reason is not None and reason.startswith("cpu 90% > limit 80% for 600s (window 600s")


def test_cpu_below_the_limit_never_aborts() -> None:
    judge = watch(cpu_window_seconds=20.0)
    for step in range(10):
        assert judge.observe(CPU_SCRAPE.format(cpu=step * 7.0), T0 + step * 10) is None
    assert judge.cpu_pct == pytest.approx(70.0)


RSS_SCRAPE = "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}\n"


def test_memory_growth_over_10_percent_per_hour_aborts_after_the_warm_up() -> None:
    judge = watch(memory_warmup_seconds=60.0, memory_floor_mb=1.0)
    mb = 1_048_576
    reason = None
    for step in range(0, 40):
        reason = judge.observe(RSS_SCRAPE.format(rss=(100 + step * 0.5) * mb), T0 + step * 10)
        if reason is not None:
            break
    assert reason is not None and reason.startswith("memory growth ")
    assert "> limit 10%/h" in reason and "process_resident_memory_bytes" in reason
    steady = watch(memory_warmup_seconds=60.0, memory_floor_mb=1.0)
    for step in range(0, 40):
        assert steady.observe(RSS_SCRAPE.format(rss=100 * mb), T0 + step * 10) is None


def test_histogram_buckets_are_read_in_bound_order() -> None:
    metrics = EngineMetrics()
    metrics.observe_tick(7.0)
    pairs = buckets(sample_values(metrics.scrape()), "arbitrage_loop_latency_seconds")
    assert [bound for bound, _ in pairs] == sorted(bound for bound, _ in pairs)
    assert pairs[-1] == (float("inf"), 1.0)
    assert dict(pairs)[0.005] == 0.0 and dict(pairs)[0.01] == 1.0
