"""The anomaly table (D98 §3.2): every row trips on a measurement series built to cross it, and not
on the same series kept just inside it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from arbitrage.config import ConfigError, load_config
from arbitrage.config.anomaly import RULES, AnomalyConfig, AnomalyRule
from arbitrage.ops.anomaly import AnomalyTable, Measurements

START = 1000.0


def series(table: AnomalyTable, readings: list[Measurements]) -> list[tuple[float, str, str]]:
    """(time, rule, action) of every trip over the readings, in order."""
    return [(m.mono, trip.name, trip.action) for m in readings for trip in table.evaluate(m)]


def every(seconds: float, step: float, **values: float | int | None) -> list[Measurements]:
    return [Measurements(mono=START + step * i, **values) for i in range(1, int(seconds / step) + 1)]  # type: ignore[arg-type]


def test_the_defaults_are_the_runbooks_rows() -> None:
    c = AnomalyConfig()
    rows = {
        name: (getattr(c, name).threshold, getattr(c, name).sustain_sec, getattr(c, name).action)
        for name in RULES
    }
    assert rows == {
        "loop_latency": (100.0, 60.0, "kill"),
        "cpu": (80.0, 120.0, "kill"),
        "memory": (300.0, 0.0, "kill"),
        "pnl_drop": (50.0, 0.0, "kill"),
        "exchange_errors": (10.0, 0.0, "kill"),
        "rate_limit_hits": (5.0, 0.0, "kill"),
        "no_entry": (300.0, 0.0, "investigate"),
        "no_exit": (600.0, 0.0, "investigate"),
    }
    assert (c.pnl_drop.window_sec, c.exchange_errors.window_sec, c.rate_limit_hits.window_sec) == (
        1800,
        60,
        600,
    )


@pytest.mark.parametrize(
    ("rule", "field", "over", "under", "sustain"),
    [("loop_latency", "loop_latency_ms", 150.0, 100.0, 60.0), ("cpu", "cpu_pct", 95.0, 80.0, 120.0)],
)
def test_a_level_row_trips_only_once_held_for_its_sustain_time(
    rule: str, field: str, over: float, under: float, sustain: float
) -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    assert [t for t in series(table, every(sustain * 3, 2.0, **{field: under})) if t[1] == rule] == []
    table = AnomalyTable(AnomalyConfig(), START)
    trips = [t for t in series(table, every(sustain + 10, 2.0, **{field: over})) if t[1] == rule]
    assert trips == [(START + 2.0 + sustain, rule, "kill")]


def test_one_fast_reading_restarts_the_sustain_clock() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    slow = every(58, 2.0, loop_latency_ms=150.0)
    fast = Measurements(mono=START + 59, loop_latency_ms=20.0)
    slow_again = [replace(m, mono=m.mono + 60) for m in slow]
    assert [t for t in series(table, [*slow, fast, *slow_again]) if t[1] == "loop_latency"] == []


def test_memory_trips_at_once_above_300_mb() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    assert series(table, [Measurements(START + 1, rss_mb=300.0)]) == []
    assert series(table, [Measurements(START + 2, rss_mb=300.5)]) == [(START + 2, "memory", "kill")]
    assert series(table, [Measurements(START + 3, rss_mb=400.0)]) == [], "a kill row fires once"


def test_a_pnl_fall_of_more_than_50_usd_within_30_minutes_trips() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    rise_then_fall = [Measurements(START + 60 * i, pnl_usd=p) for i, p in enumerate([10, 30, 5, -19.9], 1)]
    assert series(table, rise_then_fall) == []
    assert series(table, [Measurements(START + 300, pnl_usd=-20.5)]) == [(START + 300, "pnl_drop", "kill")]
    trip = table.trips[0]
    assert (trip.stop_reason, round(trip.observed, 4)) == ("ANOMALY_PNL_DROP", 50.5)


def test_a_slow_bleed_over_more_than_30_minutes_does_not_trip() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    bleed = [
        Measurements(START + 60 * i, pnl_usd=-1.5 * i, entries_total=i, exits_total=i) for i in range(1, 61)
    ]
    assert series(table, bleed) == [], "1.5 USD a minute loses at most 45 USD in any 30 minutes"


def test_more_than_10_exchange_errors_in_a_minute_trip() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    ten_a_minute = [Measurements(START + 6 * i, exchange_errors_total=i) for i in range(1, 31)]
    assert series(table, ten_a_minute) == []
    table = AnomalyTable(AnomalyConfig(), START)
    burst = [Measurements(START + 5 * i, exchange_errors_total=i) for i in range(1, 13)]
    assert series(table, burst) == [(START + 55, "exchange_errors", "kill")]


def test_more_than_5_rate_limit_hits_in_10_minutes_trip() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    spread = [
        Measurements(START + 130 * i, rate_limit_hits_total=i, entries_total=i, exits_total=i)
        for i in range(1, 12)
    ]
    assert series(table, spread) == [], "one hit every 130 s is at most 5 in any 10 minutes"
    table = AnomalyTable(AnomalyConfig(), START)
    hits = [Measurements(START + 60 * i, rate_limit_hits_total=i, entries_total=i) for i in range(1, 7)]
    assert series(table, hits) == [(START + 360, "rate_limit_hits", "kill")]


def test_no_entry_for_5_minutes_and_no_exit_for_10_raise_investigate_alerts_once_per_episode() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    idle = every(700, 10.0)
    assert series(table, idle) == [
        (START + 310, "no_entry", "investigate"),
        (START + 610, "no_exit", "investigate"),
    ]
    entered = Measurements(START + 710, entries_total=1)
    assert series(table, [entered]) == []
    later = [Measurements(START + 710 + 10 * i, entries_total=1) for i in range(1, 32)]
    assert series(table, later) == [(START + 1020, "no_entry", "investigate")]


def test_each_rule_is_overridable_on_its_own_and_disableable() -> None:
    config = load_config(
        env={"ARB_ANOMALY__CPU__SUSTAIN_SEC": "4", "ARB_ANOMALY__MEMORY__ENABLED": "false"}, path=None
    ).anomaly
    assert (config.cpu.sustain_sec, config.cpu.threshold, config.memory.enabled) == (4.0, 80.0, False)
    table = AnomalyTable(config, START)
    assert "memory" not in table.rules
    readings = every(6, 2.0, cpu_pct=90.0, rss_mb=900.0)
    assert [t for t in series(table, readings) if t[1] in ("cpu", "memory")] == [(START + 6, "cpu", "kill")]


def test_a_bad_override_is_one_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"anomaly\.cpu\.threshold.*ARB_ANOMALY__CPU__THRESHOLD"):
        load_config(env={"ARB_ANOMALY__CPU__THRESHOLD": "-1"})
    with pytest.raises(ValueError, match="action"):
        AnomalyRule(threshold=1, action="panic")  # type: ignore[arg-type]


def test_unmeasured_readings_never_trip() -> None:
    table = AnomalyTable(AnomalyConfig(), START)
    assert [t for t in series(table, every(300, 2.0)) if t[2] == "kill"] == []
