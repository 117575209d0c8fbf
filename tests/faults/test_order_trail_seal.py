"""A live run closes its order trail only when PostgreSQL shows every order of it booked or refused.

`seal_trail` records ORDER_TRAIL_CLOSED at the end of a live run so that preflight and recovery stop
reading that run's events. A wrong seal would hide an unbooked fill from the next preflight, so the
seal must not happen when the ledger still holds records PostgreSQL lacks, when the database is
stopped or frozen at that moment, or when the trail PostgreSQL holds has an order no event books.
Each case is checked from PostgreSQL with a connection of the test's own.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger
from arbitrage.order_trail import seal_trail, unbooked_by_run
from evidence.order_trail_rule import ORDER_TRAIL_CLOSED, POSITIONS_RECONCILED
from tests.support.controlled_pg import ControlledPostgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def sent(client_id: str) -> tuple[str, dict[str, Any]]:
    return "ORDER_SENT", {"venue": "binance", "symbol": "BTC", "side": "buy", "amount": 0.01,
                          "client_order_id": client_id}  # fmt: skip


def filled(client_id: str, order_id: str) -> tuple[str, dict[str, Any]]:
    return "ORDER_DONE", {"venue": "binance", "client_order_id": client_id, "fate": "filled",
                          "order_id": order_id, "detail": ""}  # fmt: skip


def opened(upbit: str, binance: str) -> tuple[str, dict[str, Any]]:
    return "TRADE_OPEN", {
        "symbol": "BTC",
        "order_ids": {"upbit": upbit, "binance": binance, "upbit_qty": 0.01},
    }


BOOKED = [sent("c1"), filled("c1", "b1"), sent("c2"), filled("c2", "u1"), opened("u1", "b1")]
"""A round of two orders whose fills an entry booked."""
UNBOOKED = [*BOOKED, sent("c3"), filled("c3", "b2")]
"""The same, and a third fill no event books (a crash between the order and its leg)."""


def write_run(dsn: str, run_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    """An ended live run with these events, as PostgreSQL would hold them."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, phase, mode, started_at, status, config_hash, schema_version)"
            " VALUES (%s, 'smoke', 'live', now(), 'passed', 'h', 6)",
            (run_id,),
        )
        for kind, payload in events:
            conn.execute(
                "INSERT INTO event_log (run_id, event_type, payload) VALUES (%s, %s, %s::jsonb)",
                (run_id, kind, json.dumps(payload)),
            )


UNREACHABLE = "reading it back failed: postgres unreachable"


def seals_in_postgres(dsn: str, run_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT payload FROM event_log WHERE run_id = %s AND event_type = %s ORDER BY id",
            (run_id, ORDER_TRAIL_CLOSED),
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def ledger(controlled_pg: ControlledPostgres, tmp_path: Path) -> Iterator[Ledger]:
    """A run's journaled ledger on the controlled server, short timeouts, closed afterwards."""
    ledger = Ledger(controlled_pg.dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    (tmp_path / "run").mkdir()
    journal = LedgerJournal(tmp_path / "run", tmp_path, "run")
    ledger.attach_journal(journal)
    try:
        yield ledger
    finally:
        ledger.close()
        journal.close()


def test_a_trail_whose_fills_are_all_booked_is_closed_with_its_order_count(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "live_booked", BOOKED)
    assert seal_trail(ledger, "live_booked") == 2
    assert ledger.drain(10.0) == 0
    assert seals_in_postgres(controlled_pg.dsn, "live_booked") == [{"orders": 2}]


def test_a_fill_no_event_books_keeps_the_trail_open(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "live_unbooked", UNBOOKED)
    assert seal_trail(ledger, "live_unbooked") == "1 order(s) not booked"
    assert seals_in_postgres(controlled_pg.dsn, "live_unbooked") == []
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        listed = unbooked_by_run(conn, None)
    assert [(run, [o.client_order_id for o in orders]) for run, orders in listed.items()] == [
        ("live_unbooked", ["c3"])
    ]


@pytest.mark.allow_log("WARNING", r"not acknowledged")
def test_records_postgresql_lacks_keep_the_trail_open(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "live_pending", BOOKED)
    controlled_pg.stop()
    try:
        ledger.record_event("live_pending", *sent("c3"))
        assert seal_trail(ledger, "live_pending") == "1 ledger record(s) not in PostgreSQL yet"
    finally:
        controlled_pg.start()
    assert ledger.drain(20.0) == 0
    assert seals_in_postgres(controlled_pg.dsn, "live_pending") == []
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        listed = unbooked_by_run(conn, None)
    assert [o.describe() for o in listed["live_pending"]] == [
        "binance buy BTC client order id c3 (in flight)"
    ], "the order the seal would have hidden"


def test_a_stopped_server_at_the_seal_keeps_the_trail_open(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "live_stopped", BOOKED)
    controlled_pg.stop()
    try:
        why = seal_trail(ledger, "live_stopped")
        assert str(why).startswith(UNREACHABLE), why
    finally:
        controlled_pg.start()
    assert ledger.drain(20.0) == 0
    assert seals_in_postgres(controlled_pg.dsn, "live_stopped") == []


def test_a_frozen_server_at_the_seal_keeps_the_trail_open(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "live_frozen", BOOKED)
    postmaster = int((controlled_pg.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGSTOP)
    try:
        why = seal_trail(ledger, "live_frozen")
        assert str(why).startswith(UNREACHABLE), why
    finally:
        os.kill(postmaster, signal.SIGCONT)
    assert ledger.drain(20.0) == 0
    assert seals_in_postgres(controlled_pg.dsn, "live_frozen") == []


def test_a_closed_or_reconciled_trail_is_not_read_again(controlled_pg: ControlledPostgres) -> None:
    write_run(controlled_pg.dsn, "live_open", UNBOOKED)
    write_run(controlled_pg.dsn, "live_closed", [*UNBOOKED, (ORDER_TRAIL_CLOSED, {"orders": 3})])
    write_run(controlled_pg.dsn, "live_reconciled", [*UNBOOKED, (POSITIONS_RECONCILED, {"by": "pytest"})])
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        assert sorted(unbooked_by_run(conn, None)) == ["live_open"]
        assert sorted(unbooked_by_run(conn, "live_open")) == []
