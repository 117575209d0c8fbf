"""A live scrape of a real engine run: promtool finds nothing but the D98 names, and every
dashboard panel under docker/ queries a metric the engine exports. Both read one shared run."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage.ops.metrics import D98_LINT_EXCEPTIONS, D98_METRICS
from arbitrage.services import ServiceEndpoints
from evidence import names
from harness.engine_output import METRICS_PREFIX
from harness.metrics_watch import fetch
from harness.warnfail import LogEvent
from tests.support.engine_process import EngineProcess, wait_for
from tests.support.promql import metric_names

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "docker" / "grafana" / "dashboards"
PROMTOOL = shutil.which("promtool")
D77_PANELS = {
    "d77-topn-core": {"Total PnL", "Win Rate", "Loop Latency p99", "CPU Usage", "Guard Triggers/h"},
    "d77-alerting": {"Alert Success Rate", "DLQ Count", "Notifier Availability"},
}


def warnings_logged(stderr: str) -> list[str]:
    """The engine's stderr lines at WARNING or worse, read as the `engine` fixture's WARN->FAIL
    policy reads them (a line that is not a JSON log record counts as a WARNING)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return [line for line in lines if LogEvent.from_line(line, "scrape run").levelno >= logging.WARNING]


@pytest.fixture(scope="module")
def scraped(server: ServiceEndpoints, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One smoke run's metrics, scraped over HTTP after a few heartbeats; the run then finishes
    cleanly, warning-free. Both tests only read the scrape, so they share the run."""
    run = EngineProcess(
        tmp_path_factory.mktemp("scrape"), server, "--phase", "smoke", "--duration", "6s",
        "--heartbeat-interval", "1", "--metrics-port", "0", "--seed", "7", "--log-format", "json",
    )  # fmt: skip

    def announced() -> str | None:
        alive = run.alive()
        url = run.announced(METRICS_PREFIX)
        assert url is not None or alive, f"the engine exited without a metrics URL: {run.stderr[-2000:]}"
        return url

    url = wait_for(announced, 60, "the metrics URL")
    assert url.startswith("http://127.0.0.1:"), url
    heartbeat = run.wait_for_evidence() / names.HEARTBEAT
    wait_for(lambda: heartbeat.exists() and heartbeat.read_bytes().count(b"\n") >= 3, 60, "three heartbeats")
    text = fetch(url, 5.0)
    assert run.wait(timeout=60) == 0, run.stderr[-2000:]
    assert not warnings_logged(run.stderr), warnings_logged(run.stderr)
    return text


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus'; CI installs it)"
)
def test_promtool_finds_nothing_beyond_the_listed_d98_names(scraped: str) -> None:
    assert PROMTOOL is not None
    text = scraped
    assert "arbitrage_loop_latency_seconds_count" in text and "process_cpu_seconds_total" in text
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    flagged = {line.split()[0] for line in findings}
    assert flagged <= set(D98_LINT_EXCEPTIONS), f"promtool exit {result.returncode}:\n" + "\n".join(findings)
    assert result.returncode in (0, 3), f"3 is lint findings only; got {result.returncode}: {findings}"
    assert set(D98_LINT_EXCEPTIONS) <= set(D98_METRICS)


def test_every_dashboard_panel_queries_a_metric_the_engine_exports(scraped: str) -> None:
    exported = {
        sample.name for family in text_string_to_metric_families(scraped) for sample in family.samples
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
