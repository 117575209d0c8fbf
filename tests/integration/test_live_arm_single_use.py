"""Acceptance: an arm arms one run. A live run claims its `LIVE_ARM_AT` in PostgreSQL; a second run
started with the same arm is refused (exit 1, one line, a LIVE_ARM_REFUSED row with code
ARM_REUSED) before any venue client exists, so the simulator serves it no private request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbitrage.ledger import connect
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.ops.live_arm import KEY_VARS
from arbitrage.services import ServiceEndpoints
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.integration.test_live_run import armed_env
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    server = start_exchange_sim("--seed", "5")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    database = fresh_database(server.postgres_dsn, "arm_once")
    switch = KillSwitch(connect(database, 5.0, 5000))
    try:
        switch.deactivate("single-use arm acceptance", "test_live_arm_single_use")
    finally:
        switch.close()
    return database


def live_run(
    tmp_path: Path, dsn: str, server: ServiceEndpoints, sim: SimProcess, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_DSN", "REDIS_URL", *KEY_VARS)}
    args = ["--mode", "live", "--market", "ccxt", "--exchange-url", sim.url, "--duration", "3s"]
    args += [
        "--evidence-root",
        str(tmp_path / "evidence"),
        "--postgres-dsn",
        dsn,
        "--redis-url",
        server.redis_url,
    ]
    return subprocess.run(
        [sys.executable, "-m", "arbitrage", "run", *args],
        capture_output=True, text=True, env=inherited | env, timeout=120, cwd=tmp_path,
    )  # fmt: skip


def test_the_same_arm_starts_one_run_only(
    tmp_path: Path, dsn: str, server: ServiceEndpoints, sim: SimProcess
) -> None:
    env = armed_env()
    first = live_run(tmp_path, dsn, server, sim, env)
    with connect(dsn, 5.0, 5000) as conn:
        claims = conn.execute("SELECT armed_at, run_id FROM live_arms").fetchall()
        started = conn.execute("SELECT run_id FROM event_log WHERE event_type = 'LIVE_START'").fetchall()
    assert len(started) == 1, first.stderr[-2000:]
    assert claims == [(int(env["LIVE_ARM_AT"]), started[0][0])], claims

    before = sim.private_calls()
    second = live_run(tmp_path, dsn, server, sim, env)
    after = sim.private_calls()
    message = second.stderr.strip()
    assert second.returncode == 1, second.stderr
    assert message.count("\n") == 0 and "Traceback" not in message, message
    assert message.startswith("arbitrage: live mode refused: LIVE_ARM_AT="), message
    assert f"already armed run {started[0][0]}" in message, message
    assert after - before == 0, sim.private_requests()
    with connect(dsn, 5.0, 5000) as conn:
        refusals = conn.execute(
            "SELECT run_id, payload FROM event_log WHERE event_type = 'LIVE_ARM_REFUSED'"
        ).fetchall()
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()
        live_starts = conn.execute(
            "SELECT count(*) FROM event_log WHERE event_type = 'LIVE_START'"
        ).fetchone()
    assert len(refusals) == 1, refusals
    assert refusals[0][1]["code"] == "ARM_REUSED" and refusals[0][1]["reason"] in message
    assert refusals[0][0] != started[0][0]
    assert runs == (1,) and live_starts == (1,)


def test_a_new_arm_starts_the_next_run(
    tmp_path: Path, dsn: str, server: ServiceEndpoints, sim: SimProcess
) -> None:
    """The refusal is about the arm, not about live runs: re-arming starts the next one."""
    env = armed_env()
    live_run(tmp_path, dsn, server, sim, env)
    rearmed = env | {"LIVE_ARM_AT": str(int(env["LIVE_ARM_AT"]) + 1)}
    second = live_run(tmp_path, dsn, server, sim, rearmed)
    assert "already armed" not in second.stderr, second.stderr
    with connect(dsn, 5.0, 5000) as conn:
        claims = conn.execute("SELECT count(*) FROM live_arms").fetchone()
    assert claims == (2,)
