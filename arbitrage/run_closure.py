"""A run's last look at its own ledger: NOTHING_LEFT_OPEN when PostgreSQL shows nothing for an operator.

Called once no order can be sent any more (after the stop-time flatten and the ledger's drain), by
paper and live runs alike. It reads the run back from PostgreSQL, not from memory, so that a leg or
a booking the run believes it made but the database lacks keeps the run open for the next preflight
(`evidence.run_closure`). A run whose ledger still holds records PostgreSQL has not acknowledged,
or whose database does not answer at once, records nothing: preflight then reads it, as after a
crash. Never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from arbitrage.order_trail import TRAIL_KINDS
from evidence.ledger_tables import EVENT_LOG, TRADE_LEGS
from evidence.order_trail_rule import ORDER_SENT, unbooked_orders, unhedged_legs
from evidence.run_closure import NOTHING_LEFT_OPEN

if TYPE_CHECKING:
    from arbitrage.ledger import Ledger

log = logging.getLogger("arbitrage.run_closure")

CONNECT_SEC: Final = 1.0
"""The check gives up on a database that does not take a connection at once: the run is stopping."""

_LEGS_SQL = f"""
SELECT count(*) FILTER (WHERE e.leg = 'entry'),
       count(*) FILTER (WHERE e.leg = 'entry' AND NOT EXISTS (
           SELECT 1 FROM {TRADE_LEGS} x
           WHERE x.run_id = e.run_id AND x.trade_id = e.trade_id AND x.leg = 'exit'))
FROM {TRADE_LEGS} e WHERE e.run_id = %(run)s
"""
_TRAIL_SQL = f"""
SELECT event_type, payload FROM {EVENT_LOG} WHERE run_id = %(run)s AND event_type = ANY(%(kinds)s) ORDER BY id
"""


@dataclass(frozen=True)
class Closure:
    """What the run left in PostgreSQL: positions entered, those without an exit leg, orders sent,
    those never booked, and first legs whose unwind was refused (LEG_UNWOUND without an unwind:
    exposure no position carries)."""

    entries: int
    open_entries: int
    orders: int
    unbooked_orders: int
    unhedged_legs: int = 0

    def why_open(self) -> str | None:
        """None when the run leaves nothing open, else what it leaves."""
        left = [f"{self.open_entries} position(s) without an exit leg"] if self.open_entries else []
        left += [f"{self.unbooked_orders} order(s) not booked"] if self.unbooked_orders else []
        left += [f"{self.unhedged_legs} leg(s) not unwound"] if self.unhedged_legs else []
        return "; ".join(left) or None


def record_closure(ledger: Ledger, run_id: str) -> Closure | str:
    """Record NOTHING_LEFT_OPEN for the run when PostgreSQL shows nothing left open; what it found,
    or why it could not tell."""
    found = _read_back(ledger, run_id)
    if isinstance(found, Closure) and found.why_open() is None:
        ledger.record_event(run_id, NOTHING_LEFT_OPEN, {"entries": found.entries, "orders": found.orders})
    else:
        why = found if isinstance(found, str) else found.why_open()
        log.info("run %s may leave something open (no %s): %s", run_id, NOTHING_LEFT_OPEN, why)
    return found


def _read_back(ledger: Ledger, run_id: str) -> Closure | str:
    if ledger.pending_count:
        return f"{ledger.pending_count} ledger record(s) not in PostgreSQL yet"
    try:
        with ledger.reader(CONNECT_SEC) as conn, ledger.guard.bounded(conn), conn.cursor() as cur:
            cur.execute(_LEGS_SQL, {"run": run_id})
            legs = cur.fetchone()
            cur.execute(_TRAIL_SQL, {"run": run_id, "kinds": list(TRAIL_KINDS)})
            trail: list[tuple[str, Mapping[str, Any]]] = [(kind, payload) for kind, payload in cur.fetchall()]
    except Exception as exc:
        return f"reading it back failed: {exc}"
    entries, open_entries = (0, 0) if legs is None else (int(legs[0]), int(legs[1]))
    orders = sum(1 for kind, _ in trail if kind == ORDER_SENT)
    return Closure(entries, open_entries, orders, len(unbooked_orders(trail)), len(unhedged_legs(trail)))
