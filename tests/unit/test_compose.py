"""The compose stack as files: services, ports on 127.0.0.1 only, mounts that exist, configs that agree.

Where `docker compose` is installed, its own `config` check runs too; where promtool is, it
checks the Prometheus configuration.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promql import metric_names

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"
PROMTOOL = shutil.which("promtool")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def compose_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def test_the_stack_has_its_five_services_and_publishes_on_localhost_only() -> None:
    services = load(COMPOSE)["services"]
    assert set(services) == {"postgres", "redis", "arbitrage", "prometheus", "grafana"}
    published = {name: [str(port) for port in service.get("ports", [])] for name, service in services.items()}
    assert published["arbitrage"] == ["127.0.0.1:9100:9100"]
    assert published["prometheus"] == ["127.0.0.1:9090:9090"]
    assert published["grafana"] == ["127.0.0.1:3000:3000"]
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_every_bind_mount_points_at_a_file_that_exists() -> None:
    services = load(COMPOSE)["services"]
    mounts = 0
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):
                mounts += 1
                assert (DOCKER / source).exists(), (
                    f"{name} mounts {source}, which does not exist under docker/"
                )
    assert mounts >= 4


def test_prometheus_scrapes_the_engine_where_it_listens() -> None:
    engine = load(COMPOSE)["services"]["arbitrage"]
    command = engine["command"]
    port = command[command.index("--metrics-port") + 1]
    assert engine["environment"]["ARB_METRICS__HOST"] == "0.0.0.0"
    jobs = load(PROMETHEUS)["scrape_configs"]
    targets = [target for job in jobs for group in job["static_configs"] for target in group["targets"]]
    assert targets == [f"arbitrage:{port}"]
    assert load(PROMETHEUS)["global"]["scrape_interval"] == "10s", "D77-4 §2.3 polls every 10 s"


def test_grafana_loads_both_dashboards_from_the_mounted_folder() -> None:
    grafana = load(COMPOSE)["services"]["grafana"]
    mounts = dict(str(volume).rsplit(":", 2)[:2] for volume in grafana["volumes"])
    provider = load(DOCKER / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")["providers"][0]
    dashboards_dir = provider["options"]["path"]
    assert mounts["./grafana/dashboards"] == dashboards_dir
    datasource = load(DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"][
        0
    ]
    assert datasource["url"] == "http://prometheus:9090"
    uids = set()
    for path in (DOCKER / "grafana" / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"], f"{path.name}: {panel['title']}"
    assert uids == {"d77-topn-core", "d77-alerting"}, "the URLs D77-4 §3.3 gives"


@pytest.mark.skipif(not compose_available(), reason="`docker compose` is not installed here")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus')")
def test_promtool_accepts_the_prometheus_config() -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_names_reads_names_not_functions_labels_or_ranges() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(x_bucket{job="a"}[5m]))) / on(job) y offset 5m'
    assert metric_names(expr) == {"x_bucket", "y"}
    assert metric_names("100 * a_total / (a_total + b_total) > bool 1e3") == {"a_total", "b_total"}
