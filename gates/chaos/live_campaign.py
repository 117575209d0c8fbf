"""What a live campaign does around each run, as the operator of a live engine would.

Before a run: the kill switch is released (a run of unknown outcome left it ACTIVE, as it should)
and the engine is armed afresh with the simulator's test keys (an arm time is single-use). After
the checker has judged the run: POSITIONS_RECONCILED is recorded for it, since the rig's venue is
the simulator, reset between runs, so that what one run left open does not refuse the next.
The engine's run is `--mode live` on the rig's simulator; a next start (recovery) stays paper.
"""

from __future__ import annotations

import time
from typing import Any, Final

from arbitrage.ledger import Ledger, connect
from arbitrage.ops.kill_switch import KillSwitch, KillSwitchState
from arbitrage.ops.live_arm import ARM_ACK_VALUE
from evidence.run_closure import POSITIONS_RECONCILED
from harness.exchange_sim.auth import (
    BINANCE_TEST_KEY,
    BINANCE_TEST_SECRET,
    UPBIT_TEST_ACCESS,
    UPBIT_TEST_SECRET,
)

LIVE_NOTIONAL_USD: Final = "200"
OPERATOR: Final = "arbitrage chaos"


def armed_env() -> dict[str, str]:
    """A live arming made now, with the simulator's test keys (never real credentials)."""
    return {
        "LIVE_ARM_ACK": ARM_ACK_VALUE,
        "LIVE_ARM_AT": str(int(time.time())),
        "LIVE_MAX_NOTIONAL_USD": LIVE_NOTIONAL_USD,
        "ARBITRAGE_ENV": "live",
        "UPBIT_ACCESS_KEY": UPBIT_TEST_ACCESS,
        "UPBIT_SECRET_KEY": UPBIT_TEST_SECRET,
        "BINANCE_API_KEY": BINANCE_TEST_KEY,
        "BINANCE_API_SECRET": BINANCE_TEST_SECRET,
    }


def release_kill_switch(
    dsn: str, why: str = "next run of the live chaos campaign", by: str = OPERATOR
) -> KillSwitchState:
    """Create the ledger schema if needed and release the kill switch (ACTIVE on a fresh database)."""
    ledger = Ledger(dsn)
    ledger.open()
    ledger.close()
    with connect(dsn, 10.0, 10_000) as conn:
        return KillSwitch(conn).deactivate(why, by)


def record_reconciled(dsn: str, run_id: str, by: str = OPERATOR, note: str = "") -> bool:
    """The operator has settled the run with its venues: its leftovers no longer block arming.
    True once PostgreSQL holds the POSITIONS_RECONCILED row."""
    ledger = Ledger(dsn)
    ledger.open()
    try:
        payload: dict[str, Any] = {"by": by, "note": note}
        return ledger.record_event(run_id, POSITIONS_RECONCILED, payload)
    finally:
        ledger.close()
