"""A live scrape of a real engine run: promtool finds nothing but the D98 names, and every
dashboard panel under docker/ queries a metric the engine exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage.ops.metrics import D98_LINT_EXCEPTIONS, D98_METRICS
from harness.engine import EngineLauncher
from harness.metrics_watch import fetch
from tests.support.promql import metric_names

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "docker" / "grafana" / "dashboards"
PROMTOOL = shutil.which("promtool")
D77_PANELS = {
    "d77-topn-core": {"Total PnL", "Win Rate", "Loop Latency p99", "CPU Usage", "Guard Triggers/h"},
    "d77-alerting": {"Alert Success Rate", "DLQ Count", "Notifier Availability"},
}


def live_scrape(engine: EngineLauncher) -> str:
    """Scrape a real smoke run over HTTP after a few heartbeats, then let it finish cleanly."""
    run = engine().start(
        [
            "--phase",
            "smoke",
            "--duration",
            "8s",
            "--heartbeat-interval",
            "1",
            "--metrics-port",
            "0",
            "--seed",
            "7",
        ]
    )
    url = run.wait_for_metrics_url(60)
    assert url.startswith("http://127.0.0.1:"), url
    run.wait_for_heartbeats(3, timeout=60)
    text = fetch(url, 5.0)
    assert run.wait(timeout=60) == 0, run.describe()
    return text


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus'; CI installs it)"
)
def test_promtool_finds_nothing_beyond_the_listed_d98_names(engine: EngineLauncher) -> None:
    assert PROMTOOL is not None
    text = live_scrape(engine)
    assert "arbitrage_loop_latency_seconds_count" in text and "process_cpu_seconds_total" in text
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    flagged = {line.split()[0] for line in findings}
    assert flagged <= set(D98_LINT_EXCEPTIONS), f"promtool exit {result.returncode}:\n" + "\n".join(findings)
    assert result.returncode in (0, 3), f"3 is lint findings only; got {result.returncode}: {findings}"
    assert set(D98_LINT_EXCEPTIONS) <= set(D98_METRICS)


def test_every_dashboard_panel_queries_a_metric_the_engine_exports(engine: EngineLauncher) -> None:
    exported = {
        sample.name
        for family in text_string_to_metric_families(live_scrape(engine))
        for sample in family.samples
    }
    seen_uids: dict[str, set[str]] = {}
    unknown: list[str] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        seen_uids[dashboard["uid"]] = {panel["title"] for panel in dashboard["panels"]}
        for panel in dashboard["panels"]:
            assert panel["targets"], f"{path.name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                names = metric_names(target["expr"])
                assert names, f"{path.name}: panel {panel['title']!r}: no metric in {target['expr']!r}"
                unknown += [f"{path.name} {panel['title']!r}: {name}" for name in sorted(names - exported)]
    assert not unknown, "queried but not exported:\n" + "\n".join(unknown)
    assert set(seen_uids) == set(D77_PANELS)
    for uid, titles in D77_PANELS.items():
        assert titles <= seen_uids[uid], f"{uid} lacks {sorted(titles - seen_uids[uid])}"
