"""SysMonitor reads the real process, judges thresholds, and fits RSS growth per hour."""

from __future__ import annotations

import logging
import threading

import pytest
from pydantic import ValidationError

from arbitrage.config import SysMonConfig
from arbitrage.ops.sysmon import (
    ResourceSample,
    SysMonitor,
    rss_growth_mb_per_hour,
    rss_growth_report,
)
from arbitrage.ops.watchdog import Level
from tests.support.records import Records

MB = 1_048_576


def monitor(config: SysMonConfig | None = None) -> tuple[SysMonitor, Records]:
    records = Records()
    return SysMonitor(config or SysMonConfig(), logger=records.logger), records


def test_a_sample_reads_this_process_and_is_ok_under_the_default_thresholds() -> None:
    mon, records = monitor()
    sample = mon.sample()
    assert 1.0 < sample.rss_mb < 300.0
    assert sample.threads >= 1
    assert sample.open_fds >= 1
    assert sample.cpu_pct >= 0.0
    assert sample.level is Level.OK
    assert records.records == []
    assert sample.to_json() == {
        "cpu_pct": round(sample.cpu_pct, 1),
        "rss_mb": round(sample.rss_mb, 2),
        "open_fds": sample.open_fds,
        "threads": sample.threads,
        "level": "OK",
    }


def test_rss_follows_a_real_allocation() -> None:
    mon, _ = monitor()
    before = mon.sample().rss_mb
    ballast = b"\x01" * (64 * MB)
    after = mon.sample().rss_mb
    assert after - before > 48.0, f"rss {before:.1f} -> {after:.1f} MB after allocating 64 MB"
    assert len(ballast) == 64 * MB
    assert [rss for _, rss in mon.rss_series()] == [before, after]


def test_rss_over_its_thresholds_sets_the_level_and_logs_once_per_change() -> None:
    mon, records = monitor(SysMonConfig(warn_rss_mb=1.0, max_rss_mb=2.0))
    first, second = mon.sample(), mon.sample()
    assert first.level is Level.ERROR and second.level is Level.ERROR
    assert first.reasons[0].startswith("rss_mb=") and first.reasons[0].endswith("> ERROR 2")
    assert len(records.at(logging.ERROR)) == 1
    assert mon.summary()["max_level"] == "ERROR"


def test_cpu_counts_only_when_it_stays_high_for_the_sustain_time() -> None:
    mon, _ = monitor(SysMonConfig(cpu_sustain_sec=120.0))
    assert mon.classify(95.0, 50.0, 10, 5, now=0.0)[0] is Level.OK
    assert mon.classify(95.0, 50.0, 10, 5, now=119.0)[0] is Level.OK
    level, reasons = mon.classify(95.0, 50.0, 10, 5, now=120.0)
    assert level is Level.ERROR
    assert reasons == ("cpu_pct=95.0 > ERROR 90 for 120s",)
    assert mon.classify(80.0, 50.0, 10, 5, now=130.0)[0] is Level.WARN
    assert mon.classify(50.0, 50.0, 10, 5, now=131.0)[0] is Level.OK
    assert mon.classify(95.0, 50.0, 10, 5, now=140.0)[0] is Level.OK


def test_descriptors_and_threads_count_at_once() -> None:
    mon, _ = monitor()
    assert mon.classify(1.0, 50.0, 513, 5, now=0.0)[0] is Level.WARN
    assert mon.classify(1.0, 50.0, 901, 5, now=0.0)[0] is Level.ERROR
    level, reasons = mon.classify(1.0, 50.0, 10, 65, now=0.0)
    assert level is Level.WARN
    assert reasons == ("threads=65.0 > WARN 64",)


def test_growth_per_hour_is_the_least_squares_slope() -> None:
    samples = [(float(t), 100.0 + t * 10.0 / 3600.0) for t in range(0, 600, 10)]
    growth = rss_growth_mb_per_hour(samples, warmup_sec=0.0)
    assert growth == pytest.approx(10.0)
    wobble = [(t, rss + (0.5 if i % 2 else -0.5)) for i, (t, rss) in enumerate(samples)]
    assert rss_growth_mb_per_hour(wobble, warmup_sec=0.0) == pytest.approx(10.0, abs=0.5)


def test_growth_skips_the_warm_up() -> None:
    warming = [(float(t), 40.0 + t) for t in range(0, 60, 5)]
    steady = [(float(t), 100.0) for t in range(60, 600, 5)]
    assert rss_growth_mb_per_hour(warming + steady, warmup_sec=60.0) == pytest.approx(0.0)
    unskipped = rss_growth_mb_per_hour(warming + steady, warmup_sec=0.0)
    assert unskipped is not None and unskipped > 100.0


@pytest.mark.parametrize(
    ("samples", "warmup"),
    [
        ([], 0.0),
        ([(0.0, 50.0)], 0.0),
        ([(0.0, 50.0), (30.0, 60.0)], 60.0),
        ([(70.0, 50.0), (70.0, 51.0)], 0.0),
    ],
)
def test_growth_is_unknown_without_two_distinct_samples_after_the_warm_up(
    samples: list[tuple[float, float]], warmup: float
) -> None:
    assert rss_growth_mb_per_hour(samples, warmup_sec=warmup) is None


def test_the_report_flags_growth_only_above_both_the_rate_and_the_floor() -> None:
    ten_minutes = [(float(t), 100.0 + t * 20.0 / 3600.0) for t in range(0, 600, 10)]
    short = rss_growth_report(ten_minutes, 0.0, limit_pct_per_hour=10.0, floor_mb=16.0)
    assert short["mb_per_hour"] == pytest.approx(20.0)
    assert short["pct_per_hour"] == pytest.approx(20.0)
    assert short["exceeded"] is False
    two_hours = [(float(t), 100.0 + t * 20.0 / 3600.0) for t in range(0, 7200, 60)]
    long = rss_growth_report(two_hours, 0.0, limit_pct_per_hour=10.0, floor_mb=16.0)
    assert long["exceeded"] is True
    assert long["samples"] == 120
    assert rss_growth_report([], 60.0, 10.0, 16.0)["exceeded"] is None


def test_the_sampling_thread_feeds_on_sample_and_takes_a_final_sample_at_stop() -> None:
    got: list[ResourceSample] = []
    enough = threading.Event()

    def on_sample(sample: ResourceSample) -> None:
        got.append(sample)
        if len(got) >= 3:
            enough.set()

    mon = SysMonitor(SysMonConfig(sample_interval_sec=0.02), on_sample=on_sample)
    mon.start()
    try:
        assert enough.wait(timeout=10.0), f"only {len(got)} samples arrived"
    finally:
        mon.stop()
    taken = len(got)
    mon.stop()
    assert len(got) == taken
    assert len(mon.rss_series()) == taken
    assert mon.latest is got[-1]
    summary = mon.summary()
    assert summary["last"] == got[-1].to_json()
    assert summary["peak"]["rss_mb"] >= got[0].rss_mb - 0.01
    assert summary["rss_growth"]["warmup_sec"] == 60.0


def test_config_rejects_warn_above_max_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match=r"warn_rss_mb=600\.0 is above max_rss_mb=500\.0"):
        SysMonConfig(warn_rss_mb=600.0)
    with pytest.raises(ValidationError):
        SysMonConfig.model_validate({"enabled": True})
