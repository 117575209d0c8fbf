"""EngineProcess and its monitor against the real engine, PostgreSQL and Redis."""

from __future__ import annotations

import json
import logging
import os
import signal

import psycopg
import pytest

from evidence.names import MONITOR_SUMMARY
from evidence.reader import read_json
from harness.assertions import assert_db_invariant, assert_evidence_complete, assert_heartbeat_density
from harness.engine import EngineLauncher
from harness.monitor import MonitorLimits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TICKS = ["--phase", "smoke", "--ticks", "400", "--seed", "7"]


def test_a_tick_run_exits_zero_and_leaves_complete_evidence(
    engine: EngineLauncher, postgres_dsn: str
) -> None:
    run = engine().start(TICKS)
    assert run.wait(timeout=60) == 0, run.describe()
    assert run.duration is not None and 0 < run.duration < 60
    bundle = run.evidence
    assert bundle.chain_summary is not None and bundle.chain_summary["closed_trades"] >= 1
    assert run.run_id is not None and run.run_id.startswith("smoke_")
    assert any("stop_reason=TICKS_COMPLETED" in r.message for r in run.records if r.levelno == logging.INFO)
    assert all(json.loads(line)["levelno"] < logging.WARNING for line in run.logs)
    assert_evidence_complete(bundle)
    assert_heartbeat_density(bundle)
    assert assert_db_invariant(bundle, postgres_dsn) == 2 * bundle.chain_summary["closed_trades"]
    summary = read_json(bundle.path / MONITOR_SUMMARY)
    assert summary["aborted"] is False and summary["exit_code"] == 0 and summary["samples"] >= 0
    run.terminate()
    run.close()
    assert run.exit_code == 0, "terminate/close after exit must not change the outcome"


def test_the_db_assertion_fails_when_a_row_is_removed(engine: EngineLauncher, postgres_dsn: str) -> None:
    run = engine().start(TICKS)
    assert run.wait(timeout=60) == 0, run.describe()
    summary = run.evidence.chain_summary
    assert summary is not None
    closed = summary["closed_trades"]
    assert assert_db_invariant(run.evidence, postgres_dsn) == 2 * closed
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        deleted = conn.execute(
            "DELETE FROM trade_legs WHERE id = (SELECT max(id) FROM trade_legs WHERE run_id = %s)",
            (run.run_id,),
        ).rowcount
    assert deleted == 1
    with pytest.raises(AssertionError) as failure:
        assert_db_invariant(run.evidence, postgres_dsn)
    message = str(failure.value)
    assert f"{closed - 1} exit legs for {closed} closed trades" in message
    assert (
        f"{2 * closed - 1} rows but the engine accounted for {2 * closed} acknowledged + 0 journaled (-1)"
        in message
    )


def test_kill_leaves_a_running_manifest(engine: EngineLauncher) -> None:
    run = engine().start(["--phase", "smoke", "--duration", "60s", "--heartbeat-interval", "1"])
    run.wait_for_heartbeats(2, timeout=30)
    assert run.kill() == -signal.SIGKILL
    assert run.evidence.manifest is not None and run.evidence.manifest["status"] == "running"
    with pytest.raises(AssertionError, match="manifest status 'running'"):
        assert_evidence_complete(run.evidence)
    row = run.summary_row()
    assert row is not None and row.verdict == "KILLED: SIGKILL"


@pytest.mark.allow_log("ERROR", r"left open at stop: last usable book is [\d.]+s old")
@pytest.mark.allow_log("WARNING", r"^watchdog OK -> WARN: market_data_lag_sec")
def test_the_monitor_aborts_a_run_whose_heartbeat_goes_stale(engine: EngineLauncher) -> None:
    run = engine().start(["--phase", "smoke", "--duration", "60s", "--heartbeat-interval", "1"])
    run.wait_for_heartbeats(2, timeout=30)
    assert run.pid is not None
    os.kill(run.pid, signal.SIGSTOP)
    with pytest.raises(pytest.fail.Exception, match=r"heartbeat stale: last beat \d+\.\ds ago > limit 6\.0s"):
        run.wait(timeout=60)
    assert run.exit_code == 1, "SIGTERM is followed by SIGCONT, so a stopped engine still flushes"
    summary = read_json(run.evidence.path / MONITOR_SUMMARY)
    assert summary["aborted"] is True
    assert summary["abort_reason"].startswith("heartbeat stale")
    assert summary["heartbeat"]["limit_seconds"] == 6.0
    # After SIGCONT the watchdog may judge the stall (a WARNING) before the SIGTERM handler runs.
    assert run.evidence.chain_summary is not None
    assert run.evidence.chain_summary["stop_reason"] in ("SIGTERM", "WARNING_LOGGED")


@pytest.mark.allow_log("WARNING", r"^arbitrage: stopped by SIGTERM during start-up; nothing was started")
def test_the_monitor_aborts_a_run_over_its_rss_limit(engine: EngineLauncher) -> None:
    """A 1 MB limit is crossed at once, so the monitor's SIGTERM lands in the engine's start-up: once
    its handler is installed, the engine says so in the WARNING allowed here."""
    run = engine(limits=MonitorLimits(rss_limit_mb=1.0)).start(["--phase", "smoke", "--duration", "60s"])
    with pytest.raises(
        pytest.fail.Exception, match=r"engine aborted by the monitor: rss \d+\.\d MB > limit 1\.0 MB"
    ):
        run.wait(timeout=60)
    assert run.duration is not None and run.duration < 30


@pytest.mark.allow_log("WARNING", r"^asymmetric fill on \w+ unwound")
def test_engine_warnings_reach_warn_to_fail_and_can_be_allowed(engine: EngineLauncher) -> None:
    run = engine(env={"ARB_STRATEGY__PAPER_LEG_FAIL_RATE": "1.0"}).start(TICKS)
    assert run.wait(timeout=60) == 1, run.describe()
    warnings = [r for r in run.records if r.levelno >= logging.WARNING]
    assert warnings and all(r.logger == "arbitrage.trader" for r in warnings)
    assert warnings[0].origin == f"engine pid {run.pid} run {run.run_id}"
    assert run.evidence.chain_summary is not None
    assert run.evidence.chain_summary["stop_reason"] == "WARNING_LOGGED"
