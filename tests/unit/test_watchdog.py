"""Watchdog levels, the ERROR -> CRITICAL escalation, logging on change only, and RateWindow."""

from __future__ import annotations

import logging
import threading

import pytest
from pydantic import ValidationError

from arbitrage.config import WatchdogConfig
from arbitrage.ops.watchdog import (
    Level,
    RateWindow,
    Watchdog,
    WatchdogLoop,
    WatchdogSignals,
    WatchdogVerdict,
)
from tests.support.records import Records

INTERVAL = 60.0
OK_SIGNALS = WatchdogSignals(
    market_data_lag_sec=0.5,
    redis_heartbeat_age_sec=INTERVAL,
    loop_latency_ms=5.0,
    rejections_per_min=0.0,
    errors_per_min=0.0,
)
ERROR_SIGNALS = WatchdogSignals(loop_latency_ms=6000.0)
WARN_SIGNALS = WatchdogSignals(loop_latency_ms=2500.0)


def make(config: WatchdogConfig | None = None, interval: float = INTERVAL) -> tuple[Watchdog, Records]:
    records = Records()
    return Watchdog(config or WatchdogConfig(), interval, logger=records.logger), records


def test_a_normal_paper_run_reads_ok_with_the_default_thresholds() -> None:
    watchdog, records = make()
    verdict = watchdog.evaluate(OK_SIGNALS)
    assert verdict.level is Level.OK
    assert verdict.reasons == ()
    assert records.records == []


@pytest.mark.parametrize(
    ("field", "warn", "error"),
    [
        ("market_data_lag_sec", 5.0, 15.0),
        ("redis_heartbeat_age_sec", 2 * INTERVAL + 5, 3 * INTERVAL + 5),
        ("loop_latency_ms", 2000.0, 5000.0),
        ("rejections_per_min", 20.0, 60.0),
        ("errors_per_min", 5.0, 10.0),
    ],
)
def test_each_signal_reaches_warn_and_error_strictly_above_its_thresholds(
    field: str, warn: float, error: float
) -> None:
    watchdog, _ = make()
    assert watchdog.thresholds[field] == (warn, error)
    assert watchdog.classify(WatchdogSignals(**{field: warn}))[0] is Level.OK
    level, reasons = watchdog.classify(WatchdogSignals(**{field: warn + 0.1}))
    assert level is Level.WARN
    assert reasons == (f"{field}={warn + 0.1:.1f} > WARN {warn:g}",)
    assert watchdog.classify(WatchdogSignals(**{field: error}))[0] is Level.WARN
    assert watchdog.classify(WatchdogSignals(**{field: error + 0.1}))[0] is Level.ERROR


def test_unmeasured_signals_are_ignored_and_the_worst_signal_sets_the_level() -> None:
    watchdog, _ = make()
    assert watchdog.classify(WatchdogSignals())[0] is Level.OK
    level, reasons = watchdog.classify(WatchdogSignals(loop_latency_ms=2500.0, errors_per_min=11.0))
    assert level is Level.ERROR
    assert len(reasons) == 2


def test_redis_age_thresholds_follow_the_heartbeat_interval() -> None:
    fast, _ = make(interval=1.0)
    assert fast.thresholds["redis_heartbeat_age_sec"] == (7.0, 8.0)
    assert fast.classify(WatchdogSignals(redis_heartbeat_age_sec=7.5))[0] is Level.WARN


def test_warn_error_then_three_errors_become_critical_with_one_log_line_per_change() -> None:
    watchdog, records = make()
    seen = [watchdog.evaluate(s) for s in (WARN_SIGNALS, WARN_SIGNALS, ERROR_SIGNALS, ERROR_SIGNALS)]
    assert [v.level for v in seen] == [Level.WARN, Level.WARN, Level.ERROR, Level.ERROR]
    assert [v.changed for v in seen] == [True, False, True, False]
    assert not any(v.should_stop for v in seen)
    critical = watchdog.evaluate(ERROR_SIGNALS)
    assert critical.level is Level.CRITICAL
    assert critical.should_stop and critical.changed
    assert critical.consecutive_errors == 3
    assert len(records.at(logging.WARNING)) == 1
    assert len(records.at(logging.ERROR)) == 1
    assert records.at(logging.CRITICAL) == [
        "watchdog ERROR -> CRITICAL after 3 consecutive ERROR evaluations, stopping: "
        "loop_latency_ms=6000.0 > ERROR 5000"
    ]
    assert watchdog.max_level is Level.CRITICAL


def test_errors_that_are_not_consecutive_never_escalate() -> None:
    watchdog, _ = make()
    for signals in (ERROR_SIGNALS, ERROR_SIGNALS, WARN_SIGNALS, ERROR_SIGNALS, ERROR_SIGNALS, OK_SIGNALS):
        assert watchdog.evaluate(signals).level is not Level.CRITICAL
    assert watchdog.level is Level.OK
    assert watchdog.max_level is Level.ERROR


def test_critical_is_latched_even_when_the_signals_recover() -> None:
    watchdog, records = make(WatchdogConfig(critical_after_errors=1))
    assert watchdog.evaluate(ERROR_SIGNALS).level is Level.CRITICAL
    logged = len(records.records)
    after = watchdog.evaluate(OK_SIGNALS)
    assert after.level is Level.CRITICAL
    assert after.should_stop and not after.changed
    assert after.reasons == ("loop_latency_ms=6000.0 > ERROR 5000",)
    assert len(records.records) == logged


def test_recovery_to_ok_is_logged_at_info_and_recorded_as_a_transition() -> None:
    watchdog, records = make()
    watchdog.evaluate(WARN_SIGNALS, now=100.0)
    watchdog.evaluate(OK_SIGNALS, now=102.0)
    assert records.at(logging.INFO) == ["watchdog WARN -> OK: all signals within thresholds"]
    summary = watchdog.summary()
    assert summary["level"] == "OK"
    assert summary["max_level"] == "WARN"
    assert summary["evaluations"] == 2
    assert [(t["from"], t["to"], t["epoch"]) for t in summary["transitions"]] == [
        ("OK", "WARN", 100.0),
        ("WARN", "OK", 102.0),
    ]


def test_config_rejects_a_warn_threshold_above_its_error_threshold_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match=r"loop_latency_warn_ms=6000\.0 is above loop_latency_error_ms"):
        WatchdogConfig(loop_latency_warn_ms=6000.0)
    with pytest.raises(ValidationError, match=r"Extra inputs are not permitted"):
        WatchdogConfig.model_validate({"max_ws_lag_ms": 5000})
    with pytest.raises(ValidationError):
        WatchdogConfig(critical_after_errors=0)


def test_rate_window_counts_events_in_the_trailing_minute_from_running_totals() -> None:
    window = RateWindow(60.0, start_total=0, now=0.0)
    assert window.observe(0, now=5.0) == 0.0
    assert window.observe(4, now=10.0) == 4.0
    assert window.observe(7, now=50.0) == 7.0
    assert window.observe(7, now=69.0) == 7.0
    assert window.observe(7, now=71.0) == 3.0
    assert window.observe(7, now=111.0) == 0.0
    assert window.observe(9, now=112.0) == 2.0


def test_rate_window_scales_a_shorter_window_to_per_minute() -> None:
    window = RateWindow(30.0, start_total=10, now=0.0)
    assert window.observe(13, now=20.0) == 6.0
    with pytest.raises(ValueError, match="positive"):
        RateWindow(0.0)


def test_watchdog_loop_calls_on_critical_once_from_its_own_thread() -> None:
    watchdog, _ = make()
    fired: list[WatchdogVerdict] = []
    reached = threading.Event()

    def on_critical(verdict: WatchdogVerdict) -> None:
        fired.append(verdict)
        reached.set()

    verdicts: list[WatchdogVerdict] = []
    loop = WatchdogLoop(
        watchdog, lambda: ERROR_SIGNALS, on_critical, interval_sec=0.01, on_verdict=verdicts.append
    )
    loop.start()
    try:
        assert reached.wait(timeout=10.0), "watchdog loop never reached CRITICAL"
    finally:
        loop.stop()
    assert len(fired) == 1
    assert fired[0].level is Level.CRITICAL
    assert watchdog.evaluations >= 3
    assert [v.level for v in verdicts[:3]] == [Level.ERROR, Level.ERROR, Level.CRITICAL]
    loop.stop()
