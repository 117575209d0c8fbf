"""The live campaign's checker against real PostgreSQL: a venue's orders held to a run's events.

Each case writes a live run's events through the ledger, as the engine would, and hands the checker
the orders a venue reports. Only the checker's verdict is under test; the orders are the venue's
side, stated by the test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from arbitrage.ledger import Ledger, connect
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.services import ServiceEndpoints
from evidence.run_closure import NOTHING_LEFT_OPEN
from gates.chaos.venue_audit import VenueAudit, audit_venue_orders
from tests.support.databases import fresh_database
from tests.support.live_runs import record_reconciled

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "va")


def findings(audit: VenueAudit) -> tuple[list[str], list[str]]:
    return audit.lost, audit.unexplained


def live_run(dsn: str, run_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    ledger = Ledger(dsn)
    ledger.open()
    try:
        ledger.record_run_start(run_id, "smoke", "live", datetime.now(UTC), 3, None, "cfg")
        for kind, payload in events:
            assert ledger.record_event(run_id, kind, payload)
    finally:
        ledger.close()


def sent(client_id: str) -> tuple[str, dict[str, Any]]:
    return "ORDER_SENT", {"venue": "binance", "symbol": "BTC", "side": "buy", "amount": 0.002,
                         "client_order_id": client_id}  # fmt: skip


def done(client_id: str, fate: str, order_id: str | None) -> tuple[str, dict[str, Any]]:
    payload = {"venue": "binance", "client_order_id": client_id, "fate": fate, "order_id": order_id}
    return "ORDER_DONE", {**payload, "detail": ""}


def opened(binance: str, upbit: str) -> tuple[str, dict[str, Any]]:
    order_ids = {"binance": binance, "upbit": upbit, "upbit_qty": 0.002}
    return "TRADE_OPEN", {"symbol": "BTC", "order_ids": order_ids}


def order(order_id: str, client_id: str | None, qty: float = 0.002) -> dict[str, Any]:
    return {"venue": "binance", "id": order_id, "client_id": client_id, "qty": qty}


def set_kill_switch(dsn: str, active: bool) -> None:
    with connect(dsn, 5.0, 5000) as conn:
        switch = KillSwitch(conn)
        if active:
            switch.activate("order outcome unknown", "live")
        else:
            switch.deactivate("test", "pytest")


def test_a_booked_run_passes_and_an_order_nothing_names_is_lost(dsn: str) -> None:
    live_run(dsn, "live_a", [sent("c1"), done("c1", "filled", "b1"), opened("b1", "u1")])
    venue = [order("b1", "c1"), order("u1", None)]
    assert findings(audit_venue_orders(dsn, "live_a", venue, killed=False)) == ([], [])
    audit = audit_venue_orders(dsn, "live_a", [*venue, order("b9", "c9")], killed=False)
    assert audit.lost == ["the venue filled order b9 (client order id c9) and nothing of the run names it"]
    assert (audit.unexplained, audit.fates) == ([], {"booked": 2, "lost": 1})
    unfilled = order("b8", "c8", qty=0.0)
    assert findings(audit_venue_orders(dsn, "live_a", [*venue, unfilled], killed=False)) == ([], [])


def test_an_unknown_outcome_needs_the_kill_switch_active_or_the_next_preflight(dsn: str) -> None:
    live_run(dsn, "live_u", [sent("c2"), done("c2", "unknown", "b2")])
    set_kill_switch(dsn, True)
    assert findings(audit_venue_orders(dsn, "live_u", [order("b2", "c2")], killed=False)) == ([], [])
    set_kill_switch(dsn, False)
    assert findings(audit_venue_orders(dsn, "live_u", [order("b2", "c2")], killed=False)) == ([], [])
    record_reconciled(dsn, "live_u", "pytest")
    assert findings(audit_venue_orders(dsn, "live_u", [order("b2", "c2")], killed=False)) == (
        [], ["orders of unknown outcome ['b2']: the kill switch is not active and the next live preflight"
             " would not name them"],
    )  # fmt: skip


def test_an_unbooked_order_is_allowed_only_to_a_killed_run_the_next_preflight_names(dsn: str) -> None:
    live_run(dsn, "live_k", [sent("c4")])
    assert findings(audit_venue_orders(dsn, "live_k", [order("b4", "c4")], killed=True)) == ([], [])
    assert findings(audit_venue_orders(dsn, "live_k", [order("b4", "c4")], killed=False)) == (
        [], ["filled orders ['b4'] left unbooked by a run that was not killed"],
    )  # fmt: skip
    record_reconciled(dsn, "live_k", "pytest")
    assert findings(audit_venue_orders(dsn, "live_k", [order("b4", "c4")], killed=True)) == (
        [], ["unbooked orders ['b4'] that the next live preflight would not name"],
    )  # fmt: skip


def test_a_booked_order_the_venue_does_not_have_is_unexplained(dsn: str) -> None:
    live_run(dsn, "live_p", [opened("b7", "u7")])
    assert findings(audit_venue_orders(dsn, "live_p", [order("u7", None)], killed=False)) == (
        [], ["the ledger books orders the venue does not have: ['b7']"],
    )  # fmt: skip


def test_orders_of_a_run_that_never_started_are_lost(dsn: str) -> None:
    audit = audit_venue_orders(dsn, None, [order("b1", "c1"), order("b2", "c2", qty=0.0)], killed=False)
    assert (audit.lost, audit.unexplained, audit.fates) == (
        ["the venue filled 1 order(s) of a run that never started"], [], {"lost": 1},
    )  # fmt: skip


def test_a_run_that_says_nothing_is_left_open_must_have_booked_every_fill(dsn: str) -> None:
    closed = (NOTHING_LEFT_OPEN, {"entries": 0, "orders": 1})
    live_run(dsn, "live_n", [sent("c6"), done("c6", "filled", "b6"), closed])
    audit = audit_venue_orders(dsn, "live_n", [order("b6", "c6")], killed=False)
    assert audit.unexplained[0] == "NOTHING_LEFT_OPEN recorded, but orders ['b6'] were never booked"
    live_run(dsn, "live_m", [sent("c7"), done("c7", "filled", "b7"), opened("b7", "u7"), closed])
    assert findings(
        audit_venue_orders(dsn, "live_m", [order("b7", "c7"), order("u7", None)], killed=False)
    ) == ([], [])
    unhedged = (
        "LEG_UNWOUND",
        {"symbol": "BTC", "filled": {"venue": "binance", "order_id": "b5"}, "unwind": None},
    )
    live_run(dsn, "live_h", [sent("c5"), done("c5", "filled", "b5"), unhedged, closed])
    assert findings(audit_venue_orders(dsn, "live_h", [order("b5", "c5")], killed=False)) == (
        [], ["NOTHING_LEFT_OPEN recorded, but legs ['b5'] were never unwound"],
    )  # fmt: skip
