"""A run records NOTHING_LEFT_OPEN only when PostgreSQL shows every position closed and every order booked.

`record_closure` runs at the end of every run so that preflight and recovery stop reading that run.
A wrong record would hide an open position or an unbooked fill from the next preflight, so it must
not happen when the ledger still holds records PostgreSQL lacks, when the database is stopped or
frozen at that moment, or when PostgreSQL holds an entry leg without its exit leg or an order no
event books. Each case is checked from PostgreSQL with a connection of the test's own, and through
the preflight check an operator sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger
from arbitrage.ops.preflight import Mode, check_open_positions
from arbitrage.order_trail import unbooked_by_run
from arbitrage.run_closure import Closure, record_closure
from evidence.run_closure import NOTHING_LEFT_OPEN, POSITIONS_RECONCILED
from tests.support.controlled_pg import ControlledPostgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Event = tuple[str, dict[str, Any]]
UNREACHABLE = "reading it back failed: postgres unreachable"


def sent(client_id: str) -> Event:
    return "ORDER_SENT", {"venue": "binance", "symbol": "BTC", "side": "buy", "amount": 0.01,
                          "client_order_id": client_id}  # fmt: skip


def filled(client_id: str, order_id: str) -> Event:
    return "ORDER_DONE", {"venue": "binance", "client_order_id": client_id, "fate": "filled",
                          "order_id": order_id, "detail": ""}  # fmt: skip


def opened(upbit: str, binance: str) -> Event:
    order_ids = {"upbit": upbit, "binance": binance, "upbit_qty": 0.01}
    return "TRADE_OPEN", {"symbol": "BTC", "order_ids": order_ids}


BOOKED = [sent("c1"), filled("c1", "b1"), sent("c2"), filled("c2", "u1"), opened("u1", "b1")]
"""A round of two orders whose fills an entry booked."""
UNBOOKED = [*BOOKED, sent("c3"), filled("c3", "b2")]
"""The same, and a third fill no event books (a crash between the order and its leg)."""
ROUND_TRIP = ("entry", "exit")


def write_run(
    dsn: str, run_id: str, events: list[Event], legs: tuple[str, ...] = ROUND_TRIP, mode: str = "live"
) -> None:
    """An ended run with these events and trade `t1`'s legs, as PostgreSQL would hold them."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, phase, mode, started_at, status, config_hash, schema_version)"
            " VALUES (%s, 'smoke', %s, now(), 'passed', 'h', 6)",
            (run_id, mode),
        )
        for leg in legs:
            conn.execute(
                "INSERT INTO trade_legs (run_id, trade_id, leg, correlation_id, symbol, direction, qty,"
                " upbit_side, upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt,"
                " binance_fee_usdt, krw_per_usdt, premium_net_pct, reason, tick) VALUES (%s, 't1', %s,"
                " %s, 'BTC', 'upbit_rich', 0.01, 'sell', 1e8, 1, 'buy', 7e4, 1, 1380, 2.5, 'threshold', 1)",
                (run_id, leg, f"{run_id}:t1"),
            )
        for kind, payload in events:
            conn.execute(
                "INSERT INTO event_log (run_id, event_type, payload) VALUES (%s, %s, %s::jsonb)",
                (run_id, kind, json.dumps(payload)),
            )


def marks_in_postgres(dsn: str, run_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT payload FROM event_log WHERE run_id = %s AND event_type = %s ORDER BY id",
            (run_id, NOTHING_LEFT_OPEN),
        ).fetchall()
    return [row[0] for row in rows]


def open_positions_detail(dsn: str, mode: Mode) -> str:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        return check_open_positions(mode, conn, None).detail


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


def test_a_run_that_closed_everything_says_so_with_its_counts(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "live_booked", BOOKED)
    assert record_closure(ledger, "live_booked") == Closure(1, 0, 2, 0)
    assert ledger.drain(10.0) == 0
    assert marks_in_postgres(controlled_pg.dsn, "live_booked") == [{"entries": 1, "orders": 2}]


def test_a_fill_no_event_books_keeps_the_run_open(controlled_pg: ControlledPostgres, ledger: Ledger) -> None:
    write_run(controlled_pg.dsn, "live_unbooked", UNBOOKED)
    assert record_closure(ledger, "live_unbooked") == Closure(1, 0, 3, 1)
    assert marks_in_postgres(controlled_pg.dsn, "live_unbooked") == []
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        listed = unbooked_by_run(conn, None)
    assert [(run, [o.client_order_id for o in orders]) for run, orders in listed.items()] == [
        ("live_unbooked", ["c3"])
    ]


def test_an_entry_without_its_exit_leg_keeps_the_run_open(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "paper_open", [], legs=("entry",), mode="paper")
    assert record_closure(ledger, "paper_open") == Closure(1, 1, 0, 0)
    assert marks_in_postgres(controlled_pg.dsn, "paper_open") == []
    assert "paper_open (1: BTC)" in open_positions_detail(controlled_pg.dsn, "paper")


def test_a_first_leg_whose_unwind_was_refused_keeps_the_run_open(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    first_leg = {"venue": "binance", "side": "buy", "qty": 0.01, "order_id": "b1"}
    unhedged = ("LEG_UNWOUND", {"symbol": "BTC", "filled": first_leg, "unwind": None})
    write_run(controlled_pg.dsn, "live_unhedged", [sent("c1"), filled("c1", "b1"), unhedged], legs=())
    assert record_closure(ledger, "live_unhedged") == Closure(0, 0, 1, 0, unhedged_legs=1)
    assert marks_in_postgres(controlled_pg.dsn, "live_unhedged") == []
    assert "live_unhedged binance buy BTC client order id c1 (filled as order b1, never unwound)" in (
        open_positions_detail(controlled_pg.dsn, "live")
    ), "the next live preflight names it, whatever the kill switch says"


@pytest.mark.allow_log("WARNING", r"not acknowledged")
def test_records_postgresql_lacks_keep_the_run_open(
    controlled_pg: ControlledPostgres, ledger: Ledger
) -> None:
    write_run(controlled_pg.dsn, "live_pending", BOOKED)
    controlled_pg.stop()
    try:
        ledger.record_event("live_pending", *sent("c3"))
        assert record_closure(ledger, "live_pending") == "1 ledger record(s) not in PostgreSQL yet"
    finally:
        controlled_pg.start()
    assert ledger.drain(20.0) == 0
    assert marks_in_postgres(controlled_pg.dsn, "live_pending") == []
    with psycopg.connect(controlled_pg.dsn, autocommit=True, connect_timeout=10) as conn:
        listed = unbooked_by_run(conn, None)
    assert [o.describe() for o in listed["live_pending"]] == [
        "binance buy BTC client order id c3 (in flight)"
    ], "the order the record would have hidden"


@contextlib.contextmanager
def stopped(pg: ControlledPostgres) -> Iterator[None]:
    """The server shut down: a new connection is refused."""
    pg.stop()
    try:
        yield
    finally:
        pg.start()


@contextlib.contextmanager
def frozen(pg: ControlledPostgres) -> Iterator[None]:
    """The postmaster under SIGSTOP: a new connection is never answered."""
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(postmaster, signal.SIGCONT)


@pytest.mark.parametrize("outage", [stopped, frozen])
def test_a_server_out_of_reach_at_the_end_keeps_the_run_open(
    outage: Callable[[ControlledPostgres], contextlib.AbstractContextManager[None]],
    controlled_pg: ControlledPostgres,
    ledger: Ledger,
) -> None:
    write_run(controlled_pg.dsn, "live_unreached", BOOKED)
    with outage(controlled_pg):
        why = record_closure(ledger, "live_unreached")
    assert str(why).startswith(UNREACHABLE), why
    assert ledger.drain(20.0) == 0
    assert marks_in_postgres(controlled_pg.dsn, "live_unreached") == []


def test_a_run_that_left_nothing_or_was_reconciled_is_not_read_again(
    controlled_pg: ControlledPostgres,
) -> None:
    dsn = controlled_pg.dsn
    write_run(dsn, "live_open", UNBOOKED, legs=("entry",))
    write_run(
        dsn, "live_closed", [*UNBOOKED, (NOTHING_LEFT_OPEN, {"entries": 1, "orders": 3})], legs=("entry",)
    )
    write_run(dsn, "live_reconciled", [*UNBOOKED, (POSITIONS_RECONCILED, {"by": "pytest"})], legs=("entry",))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        assert sorted(unbooked_by_run(conn, None)) == ["live_open"]
        assert sorted(unbooked_by_run(conn, "live_open")) == []
    detail = open_positions_detail(dsn, "live")
    assert "live_open (1: BTC)" in detail and "live_closed" not in detail and "live_reconciled" not in detail
