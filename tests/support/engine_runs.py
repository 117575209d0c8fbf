"""What the engine-run tests share: a soak checked end to end, a run's ledger legs, a simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import psycopg

from harness.assertions import assert_invariants, assert_memory_growth
from harness.engine import EngineLauncher
from harness.longrun import LongrunPlan


def soak(engine: EngineLauncher, plan: LongrunPlan, postgres_dsn: str, seed: int) -> None:
    """One D77-4 soak of ``plan``'s length: exit 0, every invariant, bounded memory, a closed trade."""
    run = engine().start([*plan.engine_args(), "--seed", str(seed)])
    exit_code = run.wait(timeout=plan.wait_timeout)
    assert exit_code == 0, run.describe()
    assert_invariants(run.evidence, postgres_dsn)
    assert_memory_growth(run.evidence)
    assert run.evidence.chain_summary is not None
    assert run.evidence.chain_summary["closed_trades"] >= 1, "a soak that never closes a trade proves nothing"


def leg_times(dsn: str, run_id: str | None, leg: str | None = None) -> list[tuple[str, float]]:
    """(leg, epoch seconds) of the run's ``trade_legs`` rows in insert order, only ``leg`` when given."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT leg, created_at FROM trade_legs WHERE run_id = %s AND (%s::text IS NULL OR leg = %s)"
            " ORDER BY created_at",
            (run_id, leg, leg),
        ).fetchall()
    return [(str(name), created.timestamp()) for name, created in rows if isinstance(created, datetime)]


def wait_while_alive(condition: Callable[[], bool], seconds: float, alive: Callable[[], bool]) -> bool:
    """Poll `condition` for up to `seconds`, giving up early once `alive()` turns false (an engine
    that exited will not bring the condition about); whether it finally holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        if condition():
            return True
        time.sleep(0.1)
    return condition()
