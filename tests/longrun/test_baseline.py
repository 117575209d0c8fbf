"""D77-4 baseline: a 20-minute soak (``--longrun-minutes`` replaces the duration)."""

from __future__ import annotations

import pytest

from harness.assertions import assert_invariants, assert_memory_growth
from harness.engine import EngineLauncher
from harness.longrun import LongrunPlan

pytestmark = pytest.mark.longrun(minutes=20, phase="baseline")


def test_baseline(engine: EngineLauncher, longrun_plan: LongrunPlan, postgres_dsn: str) -> None:
    run = engine().start([*longrun_plan.engine_args(), "--seed", "7"])
    exit_code = run.wait(timeout=longrun_plan.wait_timeout)
    assert exit_code == 0, run.describe()
    assert_invariants(run.evidence, postgres_dsn)
    assert_memory_growth(run.evidence)
    assert run.evidence.chain_summary is not None
    assert run.evidence.chain_summary["closed_trades"] >= 1, "a soak that never closes a trade proves nothing"
