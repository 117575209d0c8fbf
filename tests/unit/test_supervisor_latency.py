"""The supervisor hands each judge its own tick time: the watchdog the whole tick (a stalled fetch is
a stalled loop), the anomaly table the engine's processing time (D98's loop latency)."""

from __future__ import annotations

import time

from arbitrage.config import AppConfig
from arbitrage.ops.supervisor import Supervisor


def supervisor() -> Supervisor:
    return Supervisor(AppConfig(), "smoke_20250101T000000Z_abcdef", "", lambda reason: None)


def test_a_tick_spent_waiting_for_books_is_slow_for_the_watchdog_only() -> None:
    s = supervisor()
    v = s.vitals
    v.loop_count, v.last_latency_ms, v.last_processing_ms = 5, 550.0, 4.0
    assert s._signals().loop_latency_ms == 550.0
    assert s.measurements().loop_latency_ms == 4.0


def test_processing_in_progress_counts_from_when_the_books_arrived() -> None:
    s = supervisor()
    v = s.vitals
    now = time.monotonic()
    v.loop_count, v.last_latency_ms, v.last_processing_ms = 5, 10.0, 2.0
    v.tick_started_at, v.processing_started_at = now - 30.0, now - 20.0
    watchdog, anomaly = s._signals().loop_latency_ms, s.measurements().loop_latency_ms
    assert watchdog is not None and anomaly is not None
    assert watchdog >= 30_000.0 and 20_000.0 <= anomaly < watchdog - 5_000.0


def test_the_first_tick_is_not_judged_until_it_runs_long() -> None:
    s = supervisor()
    s.vitals.loop_count, s.vitals.last_processing_ms = 1, 900.0
    assert s.measurements().loop_latency_ms is None
