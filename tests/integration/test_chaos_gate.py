"""The regression gate's chaos: a short fixed-seed schedule over real runs, judged by the checker.

Seven 5-second runs with seed 1 over ten kinds strike each of them: both signals, every
PostgreSQL server fault and a network one, a Redis kill, an exchange ban and a crossed book, and a
full disk. Strike times count from the start of each run (its evidence line), so every fault meets
a running engine however long its start-up took. Any LOST or UNEXPLAINED run fails the gate with
its reasons. `nox -s chaos` is the soak.
"""

from __future__ import annotations

import pytest

from gates.chaos.fixture import ChaosCampaign
from gates.chaos.model import RunOutcome

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

GATE_SEED = 1
GATE_RUNS = 7
GATE_DURATION_SEC = 5.0
GATE_KINDS = (
    "sigkill", "sigterm", "pg-terminate", "pg-restart", "pg-freeze", "pg-net-blackhole", "redis-kill",
    "exchange-418", "exchange-crossed", "disk-full",
)  # fmt: skip


def test_a_fixed_seed_schedule_loses_nothing(chaos_campaign: ChaosCampaign) -> None:
    outcomes = chaos_campaign(
        seed=GATE_SEED, runs=GATE_RUNS, duration=GATE_DURATION_SEC, faults=GATE_KINDS, clock="run"
    )
    assert_nothing_lost_and_every_kind_struck(outcomes, GATE_RUNS, GATE_KINDS)


def assert_nothing_lost_and_every_kind_struck(
    outcomes: list[RunOutcome], runs: int, kinds: tuple[str, ...]
) -> None:
    assert len(outcomes) == runs
    failing = {
        o.plan.line(): (o.classification, o.reasons)
        for o in outcomes
        if o.classification in ("LOST", "UNEXPLAINED")
    }
    assert failing == {}
    struck = {e.kind for o in outcomes for e in o.events if e.action == "strike"}
    missed = [
        (
            o.plan.line(),
            o.classification,
            o.exit_code,
            o.stop_line,
            [(e.kind, e.action, e.at_sec) for e in o.events],
        )
        for o in outcomes
        if {f.kind for f in o.plan.faults} - {e.kind for e in o.events if e.action == "strike"}
    ]
    assert struck == set(kinds), f"runs that ended before a planned strike: {missed}"
