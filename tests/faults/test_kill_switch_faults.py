"""A stop that sets the kill switch while PostgreSQL is down does not lose the activation.

Found by `arbitrage chaos --mode live` (seed 20261209, runs 12 and 51: exchange-418 with
pg-net-blackhole or pg-restart): a run stopped on an order of unknown outcome, its activation failed
on the dead connection, and the switch stayed released for the next run. The switch now tries the
activation again when the run closes; checked from PostgreSQL with a connection of the test's own.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from arbitrage.ledger import connect
from arbitrage.ops.kill_switch import KillSwitch
from tests.support.controlled_pg import ControlledPostgres
from tests.support.live_runs import release_kill_switch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def released_switch(dsn: str) -> KillSwitch:
    """The switch as a run holds it (one connection, and a way to open another once it broke),
    released by an operator."""
    release_kill_switch(dsn, "a run may trade", "pytest")

    def reconnect() -> psycopg.Connection[Any]:
        return connect(dsn, 2.0, 1000)

    return KillSwitch(reconnect(), reconnect=reconnect)


def state_in_postgres(dsn: str) -> tuple[bool, str, str | None]:
    with connect(dsn, 5.0, 5000) as conn:
        state = KillSwitch(conn).status()
    return state.active, state.by, state.run_id


@pytest.mark.allow_log("ERROR", r"kill switch change to ACTIVE failed", count=1)
@pytest.mark.allow_log("WARNING", r"kill switch activated at close, after the database refused it", count=1)
def test_an_activation_the_database_refused_is_made_when_the_run_closes(
    controlled_pg: ControlledPostgres,
) -> None:
    switch = released_switch(controlled_pg.dsn)
    controlled_pg.stop()
    deferred = switch.activate_or_retry_at_close("order outcome unknown: upbit sell SOL", "live", "live_1")
    controlled_pg.start()
    assert deferred is False
    assert state_in_postgres(controlled_pg.dsn) == (False, "pytest", None), "nothing was written yet"
    switch.close()
    assert state_in_postgres(controlled_pg.dsn) == (True, "live", "live_1")


@pytest.mark.allow_log("ERROR", r"kill switch change to ACTIVE failed", count=1)
@pytest.mark.allow_log("ERROR", r"kill switch still not activated at close", count=1)
def test_an_activation_still_refused_at_close_says_so(controlled_pg: ControlledPostgres) -> None:
    switch = released_switch(controlled_pg.dsn)
    controlled_pg.stop()
    try:
        assert switch.activate_or_retry_at_close("guard max_daily_loss", "guard", "live_2") is False
        switch.close()
    finally:
        controlled_pg.start()
    assert state_in_postgres(controlled_pg.dsn) == (False, "pytest", None)
