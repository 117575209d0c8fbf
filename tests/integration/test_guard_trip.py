"""Acceptance: a guard forced to trip stops the real engine with `GUARD_<NAME>`, exits 1, leaves
the kill switch ACTIVE and the trip in event_log, which the database will not let anyone edit.

The same seeded run with the default guards completes untouched, so the trip is the limit's doing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arbitrage.ledger import connect
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.services import ServiceEndpoints
from evidence import names
from evidence.reader import read_json
from harness.cli_process import run_cli
from tests.support.databases import fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKS = "300"
SEED = "7"
LOSING_TRADES = {"ARB_STRATEGY__MAX_HOLD_SEC": "5"}
"""The strategy's threshold exits on the calibrated market all win; closing every position after 5 s
makes seed 7 lose some trades (45 of 90 in 300 ticks when this was written) without tripping a
default guard."""


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    """A fresh database whose kill switch an operator has released, so ACTIVE later means the guard."""
    fresh = fresh_database(server.postgres_dsn, "gt")
    with connect(fresh, 5.0, 5000) as conn:
        KillSwitch(conn).deactivate("guard trip acceptance test", "pytest")
    return fresh


def run_engine(
    tmp_path: Path, dsn: str, server: ServiceEndpoints, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], Path]:
    done = run_cli(
        "run", "--ticks", TICKS, "--seed", SEED, "--evidence-root", str(tmp_path / "evidence"),
        "--postgres-dsn", dsn, "--redis-url", server.redis_url,
        env={**LOSING_TRADES, **env}, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("evidence: ")]
    assert len(lines) == 1, done.stdout + done.stderr
    return done, Path(lines[0].removeprefix("evidence: "))


def events(dsn: str, run_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    with connect(dsn, 5.0, 5000) as conn:
        rows = conn.execute(
            "SELECT id, event_type, payload FROM event_log WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def test_a_tiny_single_trade_loss_limit_trips_the_guard(
    tmp_path: Path, dsn: str, server: ServiceEndpoints
) -> None:
    done, evidence = run_engine(tmp_path, dsn, server, {"ARB_GUARDS__MAX_SINGLE_TRADE_LOSS_USD": "0.01"})
    run_id = evidence.name
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr

    summary = read_json(evidence / names.CHAIN_SUMMARY)
    kpi = read_json(evidence / names.KPI)
    assert (summary["stop_reason"], summary["exit_code"]) == ("GUARD_SINGLE_TRADE_LOSS", 1)
    assert kpi["loop_count"] < int(TICKS), "the guard did not stop the run early"
    assert summary["invariants"]["db"]["passed"] is True, summary["invariants"]["db"]

    with connect(dsn, 5.0, 5000) as conn:
        state = KillSwitch(conn).status()
    assert (state.active, state.by, state.run_id) == (True, "guard", run_id)
    assert "SINGLE_TRADE_LOSS" in state.reason

    logged = events(dsn, run_id)
    kinds = [kind for _, kind, _ in logged]
    assert "RUN_START" in kinds and kinds[-1] == "RUN_END"
    assert kinds.count("GUARD_TRIP") == 1 and kinds.count("KILL_SWITCH_ACTIVATED") == 1
    trip_id, _, trip = next(row for row in logged if row[1] == "GUARD_TRIP")
    assert (trip["guard"], trip["stop_reason"], trip["limit"]) == (
        "SINGLE_TRADE_LOSS",
        "GUARD_SINGLE_TRADE_LOSS",
        0.01,
    )
    assert trip["observed"] > 0.01
    assert logged[-1][2]["stop_reason"] == "GUARD_SINGLE_TRADE_LOSS"
    closes = [(row_id, payload["reason"]) for row_id, kind, payload in logged if kind == "TRADE_CLOSE"]
    after_trip = [reason for row_id, reason in closes if row_id > trip_id]
    assert set(after_trip) <= {"guard"} and {r for i, r in closes if i < trip_id} <= {"threshold", "max_hold"}
    assert summary["closed_by_reason"].get("guard", 0) == len(after_trip), (
        summary["closed_by_reason"],
        closes,
    )
    with connect(dsn, 5.0, 5000) as conn:
        exit_reasons = conn.execute(
            "SELECT reason, count(*) FROM trade_legs WHERE run_id = %s AND leg = 'exit' GROUP BY reason",
            (run_id,),
        ).fetchall()
    assert dict(exit_reasons) == summary["closed_by_reason"], exit_reasons

    with connect(dsn, 5.0, 5000) as conn:
        for statement in (
            "UPDATE event_log SET payload = '{}'::jsonb WHERE id = %s",
            "DELETE FROM event_log WHERE id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="event_log is append-only"):
                conn.execute(statement, (trip_id,))
    assert events(dsn, run_id) == logged


def test_default_guards_leave_the_same_run_alone(tmp_path: Path, dsn: str, server: ServiceEndpoints) -> None:
    done, evidence = run_engine(tmp_path, dsn, server, {})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = read_json(evidence / names.CHAIN_SUMMARY)
    assert (summary["stop_reason"], summary["exit_code"]) == ("TICKS_COMPLETED", 0)
    assert summary["losses"] > 0, "seed 7 must include losing trades for the trip test to mean anything"
    with connect(dsn, 5.0, 5000) as conn:
        assert not KillSwitch(conn).status().active
    assert "GUARD_TRIP" not in [kind for _, kind, _ in events(dsn, evidence.name)]
