"""EngineMetrics over real HTTP: the D98 names exactly, live values, and a port freed at close."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage.config import MetricsConfig, RateLimitConfig, SysMonConfig
from arbitrage.market.backoff import RateLimits
from arbitrage.ops.metrics import (
    D98_LINT_EXCEPTIONS,
    D98_METRICS,
    EXTRA_METRICS,
    LATENCY_BUCKETS_SECONDS,
    PROCESS_METRICS,
    EngineMetrics,
)
from arbitrage.ops.sysmon import SysMonitor
from arbitrage.ops.watchdog import Level

README = Path(__file__).resolve().parents[2] / "README.md"


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5.0) as response:
        assert response.status == 200
        body: bytes = response.read()
    return body.decode()


def samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "le" not in sample.labels
    }


def families(text: str) -> set[str]:
    """Family names as exposed: counters with `_total`, the info metric with `_info`."""
    suffix = {"counter": "_total", "info": "_info"}
    return {family.name + suffix.get(family.type, "") for family in text_string_to_metric_families(text)}


@pytest.fixture
def metrics() -> Iterator[EngineMetrics]:
    engine_metrics = EngineMetrics()
    yield engine_metrics
    engine_metrics.close()


def test_the_endpoint_serves_exactly_the_documented_names(metrics: EngineMetrics) -> None:
    url = metrics.serve(0)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    assert int(url.split(":")[2].split("/")[0]) > 0
    served = families(fetch(url))
    assert served == set(D98_METRICS) | set(EXTRA_METRICS) | set(PROCESS_METRICS)
    assert "arbitrage_heartbeat_age_seconds" in served
    assert len(D98_METRICS) == 10
    assert set(D98_LINT_EXCEPTIONS) < set(D98_METRICS)


def test_the_latency_histogram_is_in_seconds_and_run_info_names_the_run(metrics: EngineMetrics) -> None:
    metrics.set_run_info(run_id="smoke_1", phase="smoke", mode="paper")
    for latency_ms in (0.7, 3.0, 40.0, 120.0):
        metrics.observe_tick(latency_ms)
    text = metrics.scrape()
    scraped = samples(text)
    assert scraped["arbitrage_loop_latency_seconds_count"] == 4.0
    assert abs(scraped["arbitrage_loop_latency_seconds_sum"] - 0.1637) < 1e-9
    assert scraped["arbitrage_loop_latency_ms"] == 120.0
    counts = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "arbitrage_loop_latency_seconds_bucket"
    }
    assert counts["0.001"] == 1.0 and counts["0.05"] == 3.0 and counts["0.1"] == 3.0 and counts["+Inf"] == 4.0
    assert {0.05, 0.1} <= set(LATENCY_BUCKETS_SECONDS)
    info = [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "arbitrage_run_info"
    ]
    assert len(info) == 1 and info[0]["run_id"] == "smoke_1"
    assert info[0]["phase"] == "smoke" and info[0]["mode"] == "paper"
    assert info[0]["version"] not in ("", "unknown")
    assert scraped["process_resident_memory_bytes"] > 0


def test_loop_latency_is_the_processing_time_and_the_whole_tick_has_its_own_histogram(
    metrics: EngineMetrics,
) -> None:
    for processing_ms, tick_ms in ((4.0, 540.0), (6.0, 610.0)):
        metrics.observe_tick(processing_ms, tick_ms)
    scraped = samples(metrics.scrape())
    assert scraped["arbitrage_loop_latency_ms"] == 6.0
    assert abs(scraped["arbitrage_loop_latency_seconds_sum"] - 0.010) < 1e-9
    assert abs(scraped["arbitrage_tick_duration_seconds_sum"] - 1.150) < 1e-9
    assert scraped["arbitrage_tick_duration_seconds_count"] == 2.0


def test_scraping_during_a_run_shows_live_values(metrics: EngineMetrics) -> None:
    url = metrics.serve(0)
    metrics.observe_tick(3.25)
    metrics.follow_rate_limit_wait(lambda: 0.2)
    metrics.update_trading(
        round_trips=4, wins=3, pnl_usd=-1.5, open_positions=2, exchange_errors=7, failed_fills=1
    )
    metrics.set_watchdog_level(Level.ERROR)
    metrics.update_alerts(sent=2, dlq=1, available=True)
    metrics.update_guard_triggers(5)
    first = samples(fetch(url))
    assert first["arbitrage_guard_triggers_total"] == 5.0
    assert first["arbitrage_loop_latency_ms"] == 3.25
    assert first["arbitrage_rate_limit_wait_seconds"] == 0.2
    assert first["arbitrage_round_trips_total"] == 4.0
    assert first["arbitrage_win_rate"] == 0.75
    assert first["arbitrage_pnl_usd_total"] == -1.5
    assert first["arbitrage_open_positions"] == 2.0
    assert first["arbitrage_exchange_errors_total"] == 7.0
    assert first["arbitrage_failed_fills_total"] == 1.0
    assert first["arbitrage_watchdog_level"] == 2.0
    assert first["alert_sent_total"] == 2.0
    assert first["alert_dlq_total"] == 1.0
    assert first["notifier_available"] == 1.0
    metrics.update_trading(
        round_trips=6, wins=3, pnl_usd=2.0, open_positions=0, exchange_errors=5, failed_fills=1
    )
    second = samples(fetch(url))
    assert second["arbitrage_round_trips_total"] == 6.0
    assert second["arbitrage_win_rate"] == 0.5
    assert second["arbitrage_exchange_errors_total"] == 7.0, "a counter never moves down"


def test_cpu_and_memory_come_from_a_real_resource_sample(metrics: EngineMetrics) -> None:
    sample = SysMonitor(SysMonConfig()).sample()
    metrics.update_resources(sample)
    scraped = samples(metrics.scrape())
    assert scraped["arbitrage_memory_mb"] == sample.rss_mb
    assert scraped["arbitrage_cpu_percent"] == sample.cpu_pct


def test_heartbeat_age_is_computed_at_scrape_time(metrics: EngineMetrics) -> None:
    metrics.mark_heartbeat(time.time() - 30.0)
    age = samples(metrics.scrape())["arbitrage_heartbeat_age_seconds"]
    assert 30.0 <= age < 3600.0
    metrics.mark_heartbeat()
    assert samples(metrics.scrape())["arbitrage_heartbeat_age_seconds"] < age


def test_engines_in_one_process_keep_separate_registries() -> None:
    one, two = EngineMetrics(), EngineMetrics()
    one.update_trading(
        round_trips=3, wins=1, pnl_usd=0.0, open_positions=0, exchange_errors=0, failed_fills=0
    )
    assert samples(one.scrape())["arbitrage_round_trips_total"] == 3.0
    assert samples(two.scrape())["arbitrage_round_trips_total"] == 0.0


def test_close_frees_the_port_and_is_idempotent() -> None:
    metrics = EngineMetrics()
    url = metrics.serve(0)
    port = int(url.split(":")[2].split("/")[0])
    metrics.close()
    metrics.close()
    with pytest.raises(urllib.error.URLError):
        fetch(url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_serve_refuses_a_taken_port_a_second_start_and_no_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError):
            EngineMetrics().serve(taken.getsockname()[1])
    with pytest.raises(ValueError, match="no metrics port"):
        EngineMetrics(MetricsConfig()).serve()
    metrics = EngineMetrics(MetricsConfig(port=0))
    try:
        metrics.serve()
        with pytest.raises(RuntimeError, match="already serving"):
            metrics.serve(0)
    finally:
        metrics.close()


def test_the_snapshot_file_is_the_final_scrape(metrics: EngineMetrics, tmp_path: Path) -> None:
    metrics.update_trading(
        round_trips=1, wins=1, pnl_usd=0.5, open_positions=0, exchange_errors=0, failed_fills=0
    )
    path = tmp_path / "metrics_snapshot.prom"
    metrics.write_snapshot(path)
    text = path.read_text()
    scraped = samples(text)
    assert scraped["arbitrage_round_trips_total"] == 1.0
    assert not any(name.endswith("_created") for name in scraped)
    for name in D98_METRICS:
        assert f"\n{name} " in text or text.startswith(f"{name} ")


def test_rate_limit_wait_is_the_back_off_left_when_scraped(metrics: EngineMetrics) -> None:
    now = [100.0]
    limits = RateLimits(RateLimitConfig(base_sec=2.0), clock=lambda: now[0])
    metrics.follow_rate_limit_wait(limits.longest_wait)
    assert samples(metrics.scrape())["arbitrage_rate_limit_wait_seconds"] == 0.0
    limits.on_limited("binance", 418, 30.0)
    now[0] += 10.0
    assert samples(metrics.scrape())["arbitrage_rate_limit_wait_seconds"] == 20.0
    now[0] += 25.0
    assert samples(metrics.scrape())["arbitrage_rate_limit_wait_seconds"] == 0.0


def test_the_readme_lists_every_lint_exception() -> None:
    section = README.read_text().split("### Metrics and promtool", 1)
    assert len(section) == 2, "README has no '### Metrics and promtool' section"
    listed = set(re.findall(r"`(arbitrage_\w+)`", section[1].split("\n## ", 1)[0].split("\n### ", 1)[0]))
    assert set(D98_LINT_EXCEPTIONS) <= listed, f"README lists {sorted(listed)}"
