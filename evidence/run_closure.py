"""What a run still leaves for an operator: nothing, once its own ledger says so.

Every live preflight and every start reads earlier runs for what they left open: entry legs without
an exit leg (`arbitrage.ops.preflight.check_open_positions`) and, for live runs, orders of the trail
never booked (`evidence.order_trail_rule`). A run that ends with PostgreSQL holding every record it
made, an exit leg for each of its entry legs, no unbooked order and no first leg whose unwind was
refused records NOTHING_LEFT_OPEN (`arbitrage.run_closure`), read back from PostgreSQL, not from the
run's memory. Those queries then read only the runs that may still need an operator, however long
the ledger's history. A run without it (crashed, a position left open, its database out of reach at
the end) is read until an operator has reconciled it on the venues and recorded
POSITIONS_RECONCILED for it.
"""

from __future__ import annotations

from typing import Final

NOTHING_LEFT_OPEN: Final = "NOTHING_LEFT_OPEN"
"""Recorded by a run at its end: every entry leg has its exit leg, every order is booked or refused,
and no first leg was left without its unwind."""
POSITIONS_RECONCILED: Final = "POSITIONS_RECONCILED"
"""Recorded by an operator once the venues hold what the run left open (`arbitrage reconcile`)."""
LEAVES_NOTHING: Final = (NOTHING_LEFT_OPEN, POSITIONS_RECONCILED)
"""Either event of a run means it leaves nothing for an operator."""
