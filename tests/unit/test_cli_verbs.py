"""`arbitrage --version`, `show-config`, `runs` and the flags' help, as an operator runs them.

Each command runs as a real subprocess in a temp directory, in an operator's environment
(`harness.cli_process`: no inherited services, keys or `ARB_*` settings), with `XDG_DATA_HOME`
inside the temp directory so the user data directory is one the test owns.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest

from arbitrage.cli import DefaultsHelpFormatter, build_parser
from harness.cli_process import run_cli, start_cli

SECRET = "postgresql://operator:hunter2-secret@127.0.0.1:1/db"


@pytest.fixture(autouse=True)
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user data home of every command in the test: a directory the test owns."""
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return run_cli(*args, env=env, cwd=cwd, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root: `config/v2/config.yml` setting one value."""
    root = tmp_path / "proj"
    (root / "config" / "v2").mkdir(parents=True)
    (root / "config" / "v2" / "config.yml").write_text("run:\n  seed: 3\n")
    return root


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = cli(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"arbitrage {version('arbitrage-harness')}"


def test_show_config_names_each_source_and_masks_secrets(project: Path, tmp_path: Path) -> None:
    done = cli(
        project, "show-config", "--json", "--mode", "paper",
        env={"ARB_STRATEGY__ORDER_NOTIONAL_USD": "150", "POSTGRES_DSN": SECRET},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout
    doc = json.loads(done.stdout)
    file = str(project.resolve() / "config/v2/config.yml")
    assert doc["config_file"] == file
    settings = doc["settings"]
    assert settings["run.seed"] == {"value": 3, "source": "file", "origin": file}
    assert settings["strategy.order_notional_usd"] == {
        "value": 150.0, "source": "env", "origin": "env ARB_STRATEGY__ORDER_NOTIONAL_USD",
    }  # fmt: skip
    assert settings["run.mode"] == {"value": "paper", "source": "flag", "origin": "CLI --mode"}
    assert settings["heartbeat.interval_sec"]["source"] == "default"
    assert settings["services.postgres_dsn"] == {
        "value": "<redacted>", "source": "env", "origin": "env POSTGRES_DSN",
    }  # fmt: skip
    assert settings["services.redis_url"]["value"] is None
    assert doc["state_dirs"]["run.evidence_root"]["path"] == str(project.resolve() / "logs" / "evidence")


def test_show_config_table_has_one_row_per_setting(project: Path, tmp_path: Path) -> None:
    done = cli(project, "show-config", "--seed", "9")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[4:] if line.strip()}
    assert rows["run.seed"] == ["9", "flag", "--seed"]
    assert rows["run.phase"] == ["smoke", "default"]
    assert done.stdout.splitlines()[0] == f"config file: {project.resolve() / 'config/v2/config.yml'}"


def test_show_config_bad_value_is_one_line_exit_1(project: Path, tmp_path: Path) -> None:
    done = cli(project, "show-config", env={"ARB_RUN__SEED": "many"})
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "run.seed" in done.stderr and "'many'" in done.stderr and "env ARB_RUN__SEED" in done.stderr


def _run_dir(root: Path, run_id: str, started: str, *, status: str = "ended", pid: int = 1,
             summary: str | None = None, verdict: str | None = None) -> None:  # fmt: skip
    directory = root / run_id
    directory.mkdir(parents=True)
    manifest = {"run_id": run_id, "phase": "smoke", "started_at": started, "status": status, "pid": pid}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    if summary is not None:
        (directory / "chain_summary.json").write_text(summary)
    if verdict is not None:
        (directory / "analysis_result.json").write_text(json.dumps({"verdict": verdict}))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_runs_lists_each_run_with_its_verdict_and_status(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    summary = json.dumps(
        {"duration_seconds": 90.4, "closed_trades": 10, "net_pnl": {"krw": 1.0, "usd": 12.5}}
    )
    _run_dir(root, "smoke_b", "2026-01-02T00:00:00+00:00", summary=summary, verdict="GO")
    _run_dir(root, "smoke_a", "2026-01-01T00:00:00+00:00", summary=summary)
    _run_dir(root, "smoke_c", "2026-01-03T00:00:00+00:00", status="running", pid=_dead_pid())
    _run_dir(root, "smoke_d", "2026-01-04T00:00:00+00:00", summary="{torn")
    (root / ".write-probe-x").mkdir()
    here = tmp_path / "cwd"
    done = cli(here, "runs", "--evidence-root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert [(r["run_id"], r["verdict"], r["status"]) for r in runs] == [
        ("smoke_a", None, "ended"),
        ("smoke_b", "GO", "ended"),
        ("smoke_c", None, "interrupted"),
        ("smoke_d", None, "ended, chain_summary.json unreadable"),
    ]
    assert (runs[1]["trades"], runs[1]["pnl_usd"], runs[1]["duration_s"]) == (10, 12.5, 90.4)
    table = cli(here, "runs", "--evidence-root", str(root))
    lines = table.stdout.splitlines()
    assert lines[0] == f"runs under {root}:"
    assert lines[1].split() == [
        "run_id",
        "phase",
        "started_at",
        "duration_s",
        "trades",
        "pnl_usd",
        "verdict",
        "status",
    ]
    assert lines[3].split() == [
        "smoke_b",
        "smoke",
        "2026-01-02T00:00:00+00:00",
        "90.4",
        "10",
        "+12.50",
        "GO",
        "ended",
    ]


def test_runs_defaults_to_the_project_evidence_root(project: Path, tmp_path: Path) -> None:
    _run_dir(project / "logs" / "evidence", "smoke_x", "2026-01-01T00:00:00+00:00")
    done = cli(project / "deep" / "below", "runs", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["evidence_root"] == str(project.resolve() / "logs" / "evidence")
    assert [r["run_id"] for r in doc["runs"]] == ["smoke_x"]


def test_runs_with_nothing_there_says_so(tmp_path: Path, xdg: Path) -> None:
    done = cli(tmp_path / "cwd", "runs")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == f"no runs under {xdg / 'arbitrage' / 'logs' / 'evidence'} (built-in default)"
    )


def test_runs_refuses_a_file_as_evidence_root_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    done = cli(tmp_path / "cwd", "runs", "--evidence-root", str(target))
    assert done.returncode == 1
    assert (
        done.stderr == f"arbitrage: runs: evidence root {target} (CLI --evidence-root) is not a directory\n"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["runs", "--limit", "3"], "arbitrage: usage error: unrecognized arguments: --limit 3"),
        (
            ["show-config", "--seed", "x"],
            "arbitrage: show-config: usage error: argument --seed: invalid seed",
        ),
        (["sim", "--port", "70000"], "arbitrage: sim: usage error: argument --port: invalid port '70000'"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    done = cli(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(fragment), done.stderr


def _parsers(
    parser: argparse.ArgumentParser, name: str = "arbitrage"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _parsers(sub, f"{name} {sub_name}")
    return found


def test_every_flag_of_every_command_has_help_and_states_its_default() -> None:
    missing: list[str] = []
    for name, parser in _parsers(build_parser()):
        formatter = DefaultsHelpFormatter(name)
        for action in parser._actions:
            if not action.option_strings or action.default is argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action) if action.help else ""
            has_default = not (action.default is None or action.default is False or action.default == [])
            if not text.strip():
                missing.append(f"{name} {action.option_strings[0]}: no help")
            elif (has_default or getattr(action, "config_key", None)) and "default" not in text:
                missing.append(f"{name} {action.option_strings[0]}: default {action.default!r} not stated")
    assert missing == []


def test_run_help_shows_the_config_defaults() -> None:
    parser = dict(_parsers(build_parser()))["arbitrage run"]
    text = " ".join(parser.format_help().split())
    assert "--seed SEED seed of the synthetic market (default: run.seed from the config; built-in 7)" in text
    assert "(default: services.data_dir from the config; built-in .services)" in text


def test_sim_defaults_to_a_free_port_and_seed_1_and_says_what_it_serves(tmp_path: Path) -> None:
    sim: subprocess.Popen[str] = start_cli("sim", cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        url = sim.stdout.readline().strip()
        serving = sim.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
        with urllib.request.urlopen(f"{url}/_control/stats", timeout=5) as response:
            assert response.status == 200
        assert serving.startswith(
            f"arbitrage sim: serving Upbit (/v1/...) and Binance (/api/v3/...) on {url}"
        )
        assert "seed 1," in serving and "for 10 symbols" in serving and "faults none" in serving
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=10) == 0


def test_show_config_into_a_closed_pipe_ends_without_a_traceback(project: Path) -> None:
    """`arbitrage show-config | head -1`: the reader is gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = run_cli("show-config", cwd=project, stdout=write_end, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr, done.stderr
    assert "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 1
