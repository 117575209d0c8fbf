"""A live run's orders held to what the venue did: the live campaign's part of the checker.

The simulator's own order book is the truth, read from its control API, never from the engine.
Every order it filled during the run must be accounted for by the run (`evidence.order_trail_rule`):
booked; or named as of unknown outcome, and then the run left the kill switch ACTIVE or the next
live preflight refuses arming over it; or listed by the run's order trail after a crash, and then
the next live preflight refuses arming over it. A filled order the run does not name at all is
LOST; an order the ledger books that the venue does not have, a surfaced order without its
safeguard, or one the run did not book although it recorded NOTHING_LEFT_OPEN, is UNEXPLAINED.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.order_trail import unbooked_by_run
from evidence.ledger_tables import EVENT_LOG
from evidence.order_trail_rule import booked_order_ids, unhedged_legs, venue_order_fates
from evidence.run_closure import NOTHING_LEFT_OPEN

SHOWN = 5


@dataclass(frozen=True)
class VenueAudit:
    """What the venue's orders say about one live run: the checker's findings, and how many filled
    orders the run booked, surfaced as unknown, left unbooked (a crash) or lost."""

    lost: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    fates: dict[str, int] = field(default_factory=dict)


def audit_venue_orders(
    dsn: str, run_id: str | None, orders: Sequence[Mapping[str, Any]], killed: bool
) -> VenueAudit:
    """The audit of run `run_id` (None: it never started), given the venue's orders placed while it ran."""
    filled = [(str(o["id"]), o.get("client_id")) for o in orders if float(o.get("qty") or 0.0) > 0.0]
    if run_id is None:
        lost = [f"the venue filled {len(filled)} order(s) of a run that never started"] if filled else []
        return VenueAudit(lost, [], {"lost": len(filled)} if filled else {})
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        events = [
            (str(kind), dict(payload))
            for kind, payload in conn.execute(
                f"SELECT event_type, payload FROM {EVENT_LOG} WHERE run_id = %s ORDER BY id", (run_id,)
            ).fetchall()
        ]
        switch_active = KillSwitch(conn).status().active
        blocked = unbooked_by_run(conn, None)
    fates = venue_order_fates(filled, events)
    lost = [
        f"the venue filled order {order_id} (client order id {client_id}) and nothing of the run names it"
        for order_id, client_id in filled
        if fates[order_id] == "lost"
    ]
    unexplained: list[str] = []
    unknown = [order_id for order_id, fate in fates.items() if fate == "unknown"]
    if unknown and not switch_active and run_id not in blocked:
        unexplained.append(
            f"orders of unknown outcome {unknown[:SHOWN]}: the kill switch is not active and the next"
            " live preflight would not name them"
        )
    closed = any(kind == NOTHING_LEFT_OPEN for kind, _ in events)
    hidden = [order_id for order_id, fate in fates.items() if fate in ("unknown", "unbooked")]
    if closed and hidden:
        unexplained.append(f"{NOTHING_LEFT_OPEN} recorded, but orders {hidden[:SHOWN]} were never booked")
    not_unwound = [leg.order_id for leg in unhedged_legs(events)]
    if closed and not_unwound:
        unexplained.append(f"{NOTHING_LEFT_OPEN} recorded, but legs {not_unwound[:SHOWN]} were never unwound")
    unbooked = [order_id for order_id, fate in fates.items() if fate == "unbooked"]
    if unbooked and not killed:
        unexplained.append(f"filled orders {unbooked[:SHOWN]} left unbooked by a run that was not killed")
    elif unbooked and run_id not in blocked:
        unexplained.append(f"unbooked orders {unbooked[:SHOWN]} that the next live preflight would not name")
    phantom = sorted(booked_order_ids(events) - {str(o["id"]) for o in orders})
    if phantom:
        unexplained.append(f"the ledger books orders the venue does not have: {phantom[:SHOWN]}")
    return VenueAudit(lost, unexplained, dict(Counter(fates.values())))
