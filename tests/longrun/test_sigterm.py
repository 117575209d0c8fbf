"""SIGTERM mid-run: the engine stops within the flush budget, seals its evidence, loses no rows."""

from __future__ import annotations

import time

import pytest

from harness.assertions import assert_db_invariant, assert_evidence_complete, assert_heartbeat_density
from harness.engine import EngineLauncher

FLUSH_BUDGET_SECONDS = 10.0
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def test_sigterm(engine: EngineLauncher, postgres_dsn: str) -> None:
    run = engine().start(
        ["--phase", "smoke", "--duration", "90s", "--heartbeat-interval", "2", "--seed", "7"]
    )
    run.wait_for_heartbeats(3, timeout=45)
    signalled = time.monotonic()
    exit_code = run.terminate(grace=FLUSH_BUDGET_SECONDS)
    stopped_after = time.monotonic() - signalled
    assert exit_code == 1, f"SIGTERM must end in exit 1, got {exit_code}\n{run.describe()}"
    assert stopped_after < FLUSH_BUDGET_SECONDS, (
        f"stopped {stopped_after:.1f}s after SIGTERM > budget {FLUSH_BUDGET_SECONDS:.0f}s"
    )
    bundle = run.evidence
    assert bundle.chain_summary is not None and bundle.manifest is not None
    assert bundle.chain_summary["stop_reason"] == "SIGTERM"
    assert bundle.chain_summary["exit_code"] == 1
    assert bundle.manifest["status"] == "failed", "a SIGTERM run is sealed as failed, never left running"
    assert bundle.chain_summary["duration_seconds"] < 60, "the run stopped early, not at its 90 s bound"
    assert_evidence_complete(bundle)
    assert_heartbeat_density(bundle)
    closed = bundle.chain_summary["closed_trades"]
    rows = assert_db_invariant(bundle, postgres_dsn)
    assert rows == 2 * closed, f"{rows} trade_legs rows vs 2 x {closed} closed trades"
