"""Single-use arming: one `LIVE_ARM_AT` arms one live run (D98 §1.2).

The arm window alone lets one arm start any number of runs within its 10 minutes. A live run
therefore claims its arm in PostgreSQL (`live_arms`, keyed by the arm time) before it builds any
venue client; a second claim of the same arm finds the first and is refused.
"""

from __future__ import annotations

from typing import Final

import psycopg

from arbitrage.ledger import LedgerUnavailable, connect, first_line
from evidence.ledger_tables import LIVE_ARMS

CLAIM_SQL: Final = (
    f"INSERT INTO {LIVE_ARMS} (armed_at, run_id) VALUES (%s, %s)"
    " ON CONFLICT (armed_at) DO NOTHING RETURNING run_id"
)
OWNER_SQL: Final = f"SELECT run_id, claimed_at FROM {LIVE_ARMS} WHERE armed_at = %s"


def claim_arm(
    dsn: str, armed_at: int, run_id: str, connect_timeout_sec: float = 5.0, statement_timeout_ms: int = 5000
) -> str | None:
    """None when `run_id` now holds the arm; else the refusal line naming the run that used it.

    Fails closed: a database that cannot record the claim refuses the arm.
    """
    try:
        with connect(dsn, connect_timeout_sec, statement_timeout_ms) as conn:
            if conn.execute(CLAIM_SQL, (armed_at, run_id)).fetchone() is not None:
                return None
            owner = conn.execute(OWNER_SQL, (armed_at,)).fetchone()
    except (psycopg.Error, LedgerUnavailable) as exc:
        return f"LIVE_ARM_AT={armed_at} could not be claimed in PostgreSQL: {first_line(exc)}"
    used_by = (
        "another run" if owner is None else f"run {owner[0]} at {owner[1].isoformat(timespec='seconds')}"
    )
    return (
        f"LIVE_ARM_AT={armed_at} already armed {used_by}; an arm arms one run: "
        "re-arm (export LIVE_ARM_AT=$(date +%s))"
    )
