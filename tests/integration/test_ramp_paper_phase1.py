"""Acceptance: D98 §2's phase 1 as a paper rehearsal (`--profile paper-phase1`), shortened by an
explicit `--duration`: it passes phase 1's checks (an entry within a minute, a strategy exit within
two), `arbitrage verify` shows them, and the strategy closes more trades than the stop-time flatten.

The live twin is `test_ramp_live_phase1.py`; the two are modules of their own so that the regression
gate's workers run them side by side.
"""

from __future__ import annotations

import pytest

from harness.engine import EngineLauncher
from tests.support.ramp_checks import assert_phase1_passed

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SEED = 958
"""The synthetic market's seed. Its trades depend on the seed and the tick alone (model time is ticks
times the 0.5 s interval), so they were counted per tick in process: first entry at tick 1, first
strategy exit at tick 9, and from tick 14 to tick 57 the strategy has closed at least 3 more trades
than are open (4 or 5 by the strategy against 0 or 1 left to the flatten)."""
DURATION_SEC = 20
"""The run's `--duration`: the flag beats the profile's 5 minutes. 40 ticks unloaded; the checks
above hold at any stop from tick 14 on, so a loaded machine may drop most of its ticks."""


@pytest.mark.timeout(DURATION_SEC + 180)
def test_a_paper_phase1_rehearsal_passes_its_checks(engine: EngineLauncher, postgres_dsn: str) -> None:
    run = engine()
    run.start(["--profile", "paper-phase1", "--duration", f"{DURATION_SEC}s", "--heartbeat-interval", "10",
               "--seed", str(SEED)])  # fmt: skip
    assert run.wait(timeout=DURATION_SEC + 90) == 0, run.describe()
    manifest = run.evidence.manifest or {}
    config = manifest["config"]
    assert config["run"]["profile"] == "paper-phase1"
    # The run id and `phase` keep the OPS protocol's phase; the profile is named beside them.
    assert (manifest["profile"], manifest["phase"]) == ("paper-phase1", "smoke")
    assert manifest["run_id"].startswith("smoke_")
    assert (config["run"]["mode"], config["run"]["duration_sec"]) == ("paper", float(DURATION_SEC))
    assert config["run"]["seed"] == SEED
    assert (config["strategy"]["order_notional_usd"], config["symbols"]["universe"]) == (50.0, "top10")
    assert_phase1_passed(run, postgres_dsn)
    summary = run.evidence.chain_summary or {}
    by_reason: dict[str, int] = summary["closed_by_reason"]
    strategy = by_reason.get("threshold", 0) + by_reason.get("max_hold", 0)
    assert strategy > sum(by_reason.values()) - strategy, by_reason
    assert any("by the strategy" in line and "by the stop-time flatten" in line for line in run.stdout), (
        run.stdout
    )
