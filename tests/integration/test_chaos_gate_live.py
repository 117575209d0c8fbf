"""The regression gate's live chaos: a short fixed-seed schedule of armed live runs.

Seven 5-second live runs against the simulator with seed 2, one fault each, strike every order
fault and a SIGKILL. Each run has a single fault because an order fault may rightly end a live run
(an unwind refused leaves an unhedged leg, a lookup that never answers an unknown outcome), and a
second fault planned after it would then never strike; combinations are the soak's (`nox -s
chaos`), and a SIGKILL in the middle of an order is `tests/integration/test_live_crash_orders.py`'s.
Besides everything the paper gate checks, the checker holds the simulator's own orders to each
run's ledger and order trail (`gates.chaos.venue_audit`). Any LOST or UNEXPLAINED run fails the
gate with its reasons, and the runs must have filled orders to judge.
"""

from __future__ import annotations

import pytest

from gates.chaos.fixture import ChaosCampaign
from gates.chaos.model import ORDER_FAULTS
from tests.integration.test_chaos_gate import GATE_DURATION_SEC, assert_nothing_lost_and_every_kind_struck

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

LIVE_SEED = 2
LIVE_RUNS = 7
LIVE_KINDS = (*ORDER_FAULTS, "sigkill")


def test_a_fixed_seed_live_schedule_loses_no_order(chaos_campaign: ChaosCampaign) -> None:
    outcomes = chaos_campaign(
        seed=LIVE_SEED, runs=LIVE_RUNS, duration=GATE_DURATION_SEC, faults=LIVE_KINDS, clock="run",
        mode="live", combo_share=0.0,
    )  # fmt: skip
    assert_nothing_lost_and_every_kind_struck(outcomes, LIVE_RUNS, LIVE_KINDS)
    booked = [(o.venue_orders or {}).get("booked", 0) for o in outcomes]
    assert sum(booked) > 0 and all(o.venue_orders is not None for o in outcomes), booked
