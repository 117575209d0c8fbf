"""The order trail of a live run: every order recorded before it is sent, and once its fate is known.

A live order's fill reaches the ledger with the round trip it belongs to: its leg (TRADE_OPEN,
TRADE_CLOSE) or event (LEG_UNWOUND, EXIT_FAILED). A process that dies between a venue's fill and
that record (a SIGKILL while the second leg of an entry is under way, a power cut) leaves a
position on the venue that no leg shows, and the open-position check, which reads legs, would let
the next armed run trade over it. So the executor records each order as ORDER_SENT (venue, symbol,
side, amount, client order id) before sending it, durably (journaled, or committed by PostgreSQL),
and does not send an order that could not be recorded so. Once the order's fate is known, ORDER_DONE
says filled (with the venue's order id), refused or unknown.

`evidence.order_trail_rule` reads a run's trail back: orders sent with no ORDER_DONE (in flight
when the process died), filled orders whose venue order id no leg or event of the run carries, and
orders whose outcome stayed unknown.
`unbooked_by_run` applies it to earlier live runs: preflight refuses arming while one has any
(`ops.preflight.check_open_positions`), until an operator has reconciled the venues and recorded
POSITIONS_RECONCILED for that run. It skips the runs that ended leaving nothing open
(`evidence.run_closure`), so that it reads only the live runs that may still need an operator,
however long the ledger's history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final

from arbitrage.live_orders import LiveOrderError, OrderOutcomeUnknown
from evidence.ledger_tables import EVENT_LOG, RUNS
from evidence.order_trail_rule import (
    BOOKING_EVENTS,
    ORDER_DONE,
    ORDER_SENT,
    Fate,
    UnbookedOrder,
    unbooked_orders,
    unhedged_legs,
)
from evidence.run_closure import LEAVES_NOTHING

if TYPE_CHECKING:
    import psycopg

    from arbitrage.execution import LegFill

TRAIL_KINDS: Final = (ORDER_SENT, ORDER_DONE, *BOOKING_EVENTS)
"""The events `unbooked_orders` reads."""

DurableRecord = Callable[[str, dict[str, Any]], bool]
"""Records one event of the run; True once it survives the process (journaled, or committed)."""


def new_client_order_id() -> str:
    """The id an order is sent, looked up and recorded under: unique, and accepted by both venues."""
    return f"arb{uuid.uuid4().hex[:20]}"


class OrderTrail:
    """Records a live executor's orders; without a `record` (an executor outside a run) it records
    nothing and lets every order go."""

    def __init__(self, record: DurableRecord | None = None) -> None:
        self._record = record
        self._sent: set[str] = set()

    def sent(self, venue: str, symbol: str, side: str, amount: float, client_order_id: str) -> bool:
        """Record an order about to be sent; False when it could not be made durable (do not send it)."""
        if self._record is None:
            return True
        payload = {
            "venue": venue, "symbol": symbol, "side": side, "amount": amount,
            "client_order_id": client_order_id,
        }  # fmt: skip
        self._sent.add(client_order_id)
        return self._record(ORDER_SENT, payload)

    async def traced(self, venue: str, fill: Callable[[str], Coroutine[Any, Any, LegFill]]) -> LegFill:
        """The fill of one order under a fresh client order id, its fate recorded (ORDER_DONE) when it
        was sent."""
        client_order_id = new_client_order_id()
        try:
            leg = await fill(client_order_id)
        except OrderOutcomeUnknown as exc:
            self._done(venue, client_order_id, "unknown", exc.resolution.order_id, str(exc))
            raise
        except LiveOrderError as exc:
            self._done(venue, client_order_id, "refused", None, str(exc))
            raise
        self._done(venue, client_order_id, "filled", leg.order_id, "")
        return leg

    def _done(self, venue: str, client_order_id: str, fate: Fate, order_id: str | None, detail: str) -> None:
        if self._record is not None and client_order_id in self._sent:
            self._sent.discard(client_order_id)
            payload = {
                "venue": venue, "client_order_id": client_order_id, "fate": fate, "order_id": order_id,
                "detail": detail,
            }  # fmt: skip
            self._record(ORDER_DONE, payload)


_TRAILS_SQL = f"""
WITH open_trails AS MATERIALIZED (
    SELECT r.run_id FROM {RUNS} r
    WHERE r.mode = 'live' AND r.run_id IS DISTINCT FROM %(own)s
      AND EXISTS (SELECT 1 FROM {EVENT_LOG} s WHERE s.run_id = r.run_id AND s.event_type = '{ORDER_SENT}')
      AND NOT EXISTS (SELECT 1 FROM {EVENT_LOG} x
                      WHERE x.run_id = r.run_id AND x.event_type = ANY(%(leaves_nothing)s))
)
SELECT v.run_id, v.event_type, v.payload FROM {EVENT_LOG} v JOIN open_trails USING (run_id)
WHERE v.event_type = ANY(%(kinds)s)
ORDER BY v.run_id, v.id
"""


def unbooked_by_run(conn: psycopg.Connection[Any], own_run_id: str | None) -> dict[str, list[UnbookedOrder]]:
    """Earlier live runs that may leave something open (`evidence.run_closure`) with unbooked
    orders or first legs never unwound, each with its orders."""
    params = {"own": own_run_id, "kinds": list(TRAIL_KINDS), "leaves_nothing": list(LEAVES_NOTHING)}
    with conn.cursor() as cur:
        cur.execute(_TRAILS_SQL, params)
        rows = cur.fetchall()
    trails: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for run_id, kind, payload in rows:
        trails.setdefault(run_id, []).append((kind, payload))
    found = {run_id: unbooked_orders(trail) + unhedged_legs(trail) for run_id, trail in trails.items()}
    return {run_id: orders for run_id, orders in found.items() if orders}
