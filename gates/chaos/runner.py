"""Runs a chaos schedule: one rig per worker, the unmodified engine per run, the checker after each.

(Being written; the signature below is the contract the CLI codes against.)
"""

from __future__ import annotations

from collections.abc import Callable

from gates.chaos.model import ChaosOptions, RunOutcome, Schedule


def run_campaign(
    schedule: Schedule, options: ChaosOptions, on_outcome: Callable[[RunOutcome], None]
) -> list[RunOutcome]:
    """Run every plan of `schedule` (in index order per worker), calling `on_outcome` as each
    run is judged; returns the outcomes in index order."""
    raise NotImplementedError("the chaos runner is not built yet")
