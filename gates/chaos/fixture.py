"""The `chaos_campaign` fixture: run a seeded fault schedule inside a test.

    def test_nothing_lost(chaos_campaign):
        outcomes = chaos_campaign(seed=3, runs=4, duration=10.0, faults=("pg-freeze", "sigterm"))
        assert [o.classification for o in outcomes if o.classification in ("LOST", "UNEXPLAINED")] == []

Each campaign owns its servers (a PostgreSQL and a Redis behind fault proxies, an exchange
simulator, a small evidence disk), writes under the test's tmp_path, and returns the checker's
outcomes in run order. A failing run's reasons are in `outcome.reasons`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gates.chaos.model import FAULT_KINDS, ChaosOptions, Clock, Mode, RunOutcome

ChaosCampaign = Callable[..., list[RunOutcome]]


@pytest.fixture
def chaos_campaign(tmp_path: Path) -> ChaosCampaign:
    """A callable `(seed, runs, duration=10.0, faults=FAULT_KINDS, workers=1, clock="launch",
    mode="paper", combo_share=0.5) -> list[RunOutcome]`; `clock` and `mode` are `ChaosOptions`',
    `combo_share` is `build_schedule`'s."""
    from gates.chaos.runner import run_campaign
    from gates.chaos.schedule import build_schedule

    def campaign(
        seed: int, runs: int, duration: float = 10.0, faults: Sequence[str] = FAULT_KINDS, workers: int = 1,
        clock: Clock = "launch", mode: Mode = "paper", combo_share: float = 0.5,
    ) -> list[RunOutcome]:  # fmt: skip
        schedule = build_schedule(seed, runs, duration, tuple(faults), combo_share)
        options = ChaosOptions(
            workers=workers, output_root=tmp_path / f"chaos_s{seed}", clock=clock, mode=mode
        )
        return run_campaign(schedule, options, lambda outcome: None)

    return campaign
