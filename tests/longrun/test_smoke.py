"""D77-4 smoke: a short engine run that must pass every invariant; it gates the soaks.

`nox -s smoke` keeps the operator's 90 s run; here 6 s (12 ticks on seed 7: the first position opens
within four ticks, and the stop-time flatten closes what is still open) prove the same invariants.
"""

from __future__ import annotations

import pytest

from evidence.names import MONITOR_SUMMARY
from evidence.reader import read_json
from harness.assertions import assert_invariants
from harness.engine import EngineLauncher

SMOKE_SECONDS = 6
pytestmark = [pytest.mark.slow, pytest.mark.timeout(SMOKE_SECONDS + 150)]


def test_smoke(engine: EngineLauncher, postgres_dsn: str) -> None:
    run = engine().start(
        ["--phase", "smoke", "--duration", f"{SMOKE_SECONDS}s", "--heartbeat-interval", "2", "--seed", "7"]
    )
    exit_code = run.wait(timeout=SMOKE_SECONDS + 60)
    assert exit_code == 0, run.describe()
    bundle = run.evidence
    assert_invariants(bundle, postgres_dsn)
    assert bundle.chain_summary is not None
    trades = bundle.chain_summary["closed_trades"]
    assert trades >= 1, f"round trips {trades} < 1: the smoke run never closed a trade (D77-4 §2.4)"
    monitor = read_json(bundle.path / MONITOR_SUMMARY)
    assert not monitor["aborted"], monitor["abort_reason"]
