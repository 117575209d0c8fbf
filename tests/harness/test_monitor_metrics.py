"""The harness monitor reads a real engine's /metrics and stops the run on D77-4 §3.4's conditions.

The engine's alerts go to a loopback Telegram Bot API that answers 500, so its run-start alert
is dead-lettered and `alert_dlq_total` rises in the scrape. The log record of that dead letter is
allowed here and the engine's own stop-on-ERROR policy is off, so it is the scrape, not a log
rule, that must stop the run.
"""

from __future__ import annotations

import pytest

from evidence.names import MONITOR_SUMMARY
from evidence.reader import read_json
from harness.engine import EngineLauncher
from harness.metrics_watch import MetricLimits
from harness.monitor import MonitorLimits
from tests.support.fake_telegram import FakeTelegram

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "123456:metrics-monitor-token"
RUN = [
    "--phase",
    "smoke",
    "--duration",
    "60s",
    "--heartbeat-interval",
    "1",
    "--metrics-port",
    "0",
    "--seed",
    "7",
]
FAST = MonitorLimits(poll_seconds=0.2, metrics=MetricLimits(scrape_seconds=0.5))


@pytest.mark.allow_log("ERROR", r"^alert \S+ \((RUN_START|RUN_STOP)\) dead-lettered after 2 attempt\(s\)")
def test_a_dead_letter_in_the_scrape_stops_the_run_with_the_reason_recorded(engine: EngineLauncher) -> None:
    with FakeTelegram(TOKEN, status=500) as bot:
        env = {
            "ARB_WARN_POLICY": "continue",
            "ARB_ALERTS__TELEGRAM_BOT_TOKEN": TOKEN,
            "ARB_ALERTS__TELEGRAM_CHAT_ID": "42",
            "ARB_ALERTS__API_BASE_URL": bot.base_url,
            "ARB_ALERTS__MAX_ATTEMPTS": "2",
            "ARB_ALERTS__BACKOFF_BASE_SEC": "0.05",
        }
        run = engine(limits=FAST, env=env).start(RUN)
        url = run.wait_for_metrics_url(60)
        with pytest.raises(
            pytest.fail.Exception,
            match=r"engine aborted by the monitor: metrics: alert_dlq_total [12] > limit 0 "
            r"\(alerts dead-lettered\)",
        ):
            run.wait(timeout=90)
    assert run.duration is not None and run.duration < 40, "stopped well before its 60 s"
    summary = read_json(run.evidence.path / MONITOR_SUMMARY)
    assert summary["aborted"] is True
    assert summary["abort_reason"].startswith("metrics: alert_dlq_total ")
    assert summary["abort_reason"].endswith(f"({url})")
    scraped = summary["metrics"]
    assert scraped["url"] == url and scraped["scrape_seconds"] == 0.5
    assert (
        scraped["scrapes"] >= 1 and scraped["alert_dlq_total"] >= 1 and scraped["notifier_available"] == 0.0
    )
    assert run.evidence.chain_summary is not None
    assert run.evidence.chain_summary["stop_reason"] == "SIGTERM"


def test_a_healthy_run_is_scraped_at_the_configured_interval_and_not_stopped(engine: EngineLauncher) -> None:
    run = engine(limits=FAST).start(
        [
            "--phase",
            "smoke",
            "--duration",
            "6s",
            "--heartbeat-interval",
            "1",
            "--metrics-port",
            "0",
            "--seed",
            "7",
        ]
    )
    assert run.wait(timeout=60) == 0, run.describe()
    summary = read_json(run.evidence.path / MONITOR_SUMMARY)
    assert summary["aborted"] is False
    scraped = summary["metrics"]
    assert scraped["url"] == run.metrics_url and scraped["scrape_errors"] == 0
    assert scraped["scrapes"] >= 4, f"a 6 s run scraped every 0.5 s: {scraped}"
    assert scraped["alert_dlq_total"] == 0.0 and scraped["notifier_available"] == 0.0
    assert scraped["loop_latency_p99_seconds"] is not None and scraped["loop_latency_p99_seconds"] < 0.1
