"""Acceptance: an arm arms one run. A live run claims its `LIVE_ARM_AT` in PostgreSQL; a second run
started with the same arm is refused (exit 1, one line, a LIVE_ARM_REFUSED row with code
ARM_REUSED) before any venue client exists, so the simulator serves it no private request.

The module's first armed run is shared: both tests start their second run after it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from arbitrage.ledger import connect
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.databases import fresh_database
from tests.support.live_runs import (
    arbitrage,
    armed_env,
    release_kill_switch,
    services_args,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with start_exchange_sim("--seed", "5") as server:
        yield server


@dataclass(frozen=True)
class ArmedRun:
    """The module's first armed live run: its database, its arming and the run that claimed it."""

    dsn: str
    redis_url: str
    env: dict[str, str]
    run_id: str
    root: Path


QUIET_RUN = {"ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "49", "ARB_SYMBOLS__UNIVERSE": "top5"}
"""The arm is claimed at start, before any tick: one tick over five symbols that never enters
claims it as well as a trading run, without the orders and the stop-time flatten."""


def live_run(
    root: Path, dsn: str, redis_url: str, sim: SimProcess, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    args = ["--mode", "live", "--market", "ccxt", "--exchange-url", sim.url, "--ticks", "1"]
    return arbitrage(
        "run", *args, *services_args(root / "evidence", dsn, redis_url), env=env | QUIET_RUN, cwd=root
    )


def counts(dsn: str) -> tuple[int, int, int]:
    """(runs rows, LIVE_START rows, LIVE_ARM_REFUSED rows) in the database."""
    with connect(dsn, 5.0, 5000) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM runs),"
            " (SELECT count(*) FROM event_log WHERE event_type = 'LIVE_START'),"
            " (SELECT count(*) FROM event_log WHERE event_type = 'LIVE_ARM_REFUSED')"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.fixture(scope="module")
def armed_run(
    postgres_server: str,
    redis_url: str,
    sim: SimProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> ArmedRun:
    dsn = fresh_database(postgres_server, "arm_once")
    release_kill_switch(dsn, "single-use arm acceptance", "test_live_arm_single_use")
    root = tmp_path_factory.mktemp("armed")
    env = armed_env()
    first = live_run(root, dsn, redis_url, sim, env)
    with connect(dsn, 5.0, 5000) as conn:
        claims = conn.execute("SELECT armed_at, run_id FROM live_arms").fetchall()
        started = conn.execute("SELECT run_id FROM event_log WHERE event_type = 'LIVE_START'").fetchall()
    assert len(started) == 1, first.stderr[-2000:]
    assert claims == [(int(env["LIVE_ARM_AT"]), started[0][0])], claims
    return ArmedRun(dsn, redis_url, env, started[0][0], root)


def test_the_same_arm_starts_one_run_only(armed_run: ArmedRun, sim: SimProcess) -> None:
    runs_before, starts_before, refusals_before = counts(armed_run.dsn)
    before = sim.private_calls()
    second = live_run(armed_run.root, armed_run.dsn, armed_run.redis_url, sim, armed_run.env)
    after = sim.private_calls()
    message = second.stderr.strip()
    assert second.returncode == 1, second.stderr
    assert message.count("\n") == 0 and "Traceback" not in message, message
    assert message.startswith("arbitrage: live mode refused: LIVE_ARM_AT="), message
    assert f"already armed run {armed_run.run_id}" in message, message
    assert after - before == 0, sim.private_requests()
    with connect(armed_run.dsn, 5.0, 5000) as conn:
        refusals = conn.execute(
            "SELECT run_id, payload FROM event_log WHERE event_type = 'LIVE_ARM_REFUSED' ORDER BY id"
        ).fetchall()
    assert counts(armed_run.dsn) == (runs_before, starts_before, refusals_before + 1)
    run_id, payload = refusals[-1]
    assert payload["code"] == "ARM_REUSED" and payload["reason"] in message
    assert run_id != armed_run.run_id


def test_a_new_arm_starts_the_next_run(armed_run: ArmedRun, sim: SimProcess) -> None:
    """The refusal is about the arm, not about live runs: re-arming starts the next one."""
    armed_at = int(armed_run.env["LIVE_ARM_AT"]) + 1
    rearmed = armed_run.env | {"LIVE_ARM_AT": str(armed_at)}
    second = live_run(armed_run.root, armed_run.dsn, armed_run.redis_url, sim, rearmed)
    assert "already armed" not in second.stderr, second.stderr
    with connect(armed_run.dsn, 5.0, 5000) as conn:
        claims = conn.execute("SELECT armed_at FROM live_arms ORDER BY armed_at").fetchall()
    assert claims == [(armed_at - 1,), (armed_at,)]
