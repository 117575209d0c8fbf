"""The writer thread's batch statement on a real PostgreSQL: it stores exactly what the one-record
statements store, replays as a no-op, and a value JSON cannot carry (NaN) still reaches the table
through the writer's one-unit-at-a-time fallback. Everything is read back from PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger, LegRow, connect
from arbitrage.ledger_records import EVENT, LEG, apply_batch, apply_record
from arbitrage.services import ServiceEndpoints
from tests.integration.test_ledger_journal import leg, rows
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration

LEG_COLUMNS = (
    "trade_id, leg, replace(correlation_id, run_id, ''), symbol, direction, qty, upbit_side,"
    " upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt, krw_per_usdt,"
    " premium_net_pct, pnl_krw, pnl_usd, reason, tick, upbit_qty"
)


def awkward_legs(run_id: str) -> list[LegRow]:
    """Legs whose values a careless conversion would change: binary fractions, tiny and huge
    numbers, NULL columns, a leg journaled before `upbit_qty` existed is added separately."""
    first = replace(
        leg(run_id, 1), qty=0.1 + 0.2, upbit_vwap_krw=143_210_987.654321, upbit_qty=1e-9, premium_net_pct=-0.0
    )
    second = replace(
        leg(run_id, 1, "exit"), qty=1 / 3, pnl_krw=-12_345.678901234567, pnl_usd=2.0**-40,
        krw_per_usdt=1385.7000000000003, tick=2_000_000_000, reason="flatten: it's \"stop\"",
    )  # fmt: skip
    return [first, second, replace(leg(run_id, 2), symbol="XRP", upbit_qty=None)]


def records(run_id: str) -> list[dict[str, Any]]:
    """Legs and their events as the journal holds them, a leg row without `upbit_qty` among them."""
    found: list[dict[str, Any]] = []
    for number, row in enumerate(awkward_legs(run_id), start=1):
        fields = row.fields()
        if number == 3:
            del fields["upbit_qty"]
        found.append({"op": LEG, "uid": f"{run_id}:{2 * number - 1}", "run_id": run_id, "row": fields})
        payload: dict[str, Any] | None = {"symbol": row.symbol, "nested": {"pct": 0.1 + 0.2, "ok": True}}
        correlation = None if number == 3 else row.correlation_id
        found.append({
            "op": EVENT, "uid": f"{run_id}:{2 * number}", "run_id": run_id, "event_type": "TRADE_OPEN",
            "payload": None if number == 2 else payload, "correlation_id": correlation,
        })  # fmt: skip
    return found


def journaled(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    """`records(run_id)` as the journal returns them, each with the JSON line it wrote."""
    evidence = tmp_path / run_id
    evidence.mkdir()
    journal = LedgerJournal(evidence, tmp_path, run_id)
    try:
        written: list[dict[str, Any]] = []
        for record in records(run_id):
            fields = {key: value for key, value in record.items() if key not in ("op", "uid")}
            written.append(journal.append(record["op"], fields))
    finally:
        journal.close()
    assert [record["uid"] for record in written] == [record["uid"] for record in records(run_id)]
    return written


def stored(dsn: str, run_id: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    legs = rows(dsn, f"SELECT {LEG_COLUMNS} FROM trade_legs WHERE run_id = %s ORDER BY trade_id, leg", run_id)
    events = rows(
        dsn,
        "SELECT event_type, replace(correlation_id, run_id, ''), payload, split_part(event_uid, ':', 2)"
        " FROM event_log WHERE run_id = %s ORDER BY event_uid",
        run_id,
    )
    return legs, events


def test_a_batch_stores_what_one_record_at_a_time_stores(server: ServiceEndpoints, tmp_path: Path) -> None:
    """Plain records, and records as the journal returns them (sent as the lines it wrote)."""
    dsn = fresh_database(server.postgres_dsn, "lb")
    with connect(dsn, 5.0, 5000) as conn:
        with conn.transaction():
            apply_batch(conn, records("run_batch"))
        with conn.transaction():
            apply_batch(conn, journaled(tmp_path, "run_journal"))
        with conn.transaction():
            written = [apply_record(conn, record) for record in records("run_single")]
    assert written == [1] * 6
    batch_legs, batch_events = stored(dsn, "run_batch")
    single_legs, single_events = stored(dsn, "run_single")
    assert len(batch_legs) == 3 and len(batch_events) == 3
    assert batch_legs == single_legs
    assert batch_events == single_events
    assert stored(dsn, "run_journal") == (single_legs, single_events)
    assert batch_events[1][2] == {}
    assert batch_events[0][2] == {"symbol": "BTC", "nested": {"pct": 0.30000000000000004, "ok": True}}


def test_a_replayed_batch_adds_nothing(server: ServiceEndpoints) -> None:
    dsn = fresh_database(server.postgres_dsn, "lb")
    with connect(dsn, 5.0, 5000) as conn:
        for _ in range(2):
            with conn.transaction():
                apply_batch(conn, records("run_twice"))
    counts = rows(
        dsn,
        "SELECT (SELECT count(*) FROM trade_legs WHERE run_id = %s),"
        " (SELECT count(*) FROM event_log WHERE run_id = %s)",
        "run_twice",
        "run_twice",
    )
    assert counts == [(3, 3)]


def test_a_batch_with_a_nan_is_refused_whole_and_the_writer_still_stores_every_leg(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    dsn = fresh_database(server.postgres_dsn, "lb")
    odd = replace(leg("run_nan", 2), premium_net_pct=math.nan)
    with connect(dsn, 5.0, 5000) as conn, pytest.raises(psycopg.DataError), conn.transaction():
        apply_batch(conn, [{"op": LEG, "uid": "run_nan:1", "run_id": "run_nan", "row": odd.fields()}])
    assert rows(dsn, "SELECT count(*) FROM trade_legs WHERE run_id = 'run_nan'") == [(0,)]

    evidence = tmp_path / "run_nan"
    evidence.mkdir()
    journal = LedgerJournal(evidence, tmp_path, "run_nan")
    ledger = Ledger(dsn, connect_timeout_sec=2.0, statement_timeout_ms=2000)
    ledger.open()
    ledger.attach_journal(journal)
    ledger.start_group_commit()
    try:
        for row in (leg("run_nan", 1), odd, leg("run_nan", 3)):
            ledger.record_trade_leg(row, "TRADE_OPEN", {"symbol": row.symbol}, row.correlation_id)
        assert ledger.drain(10.0) == 0
    finally:
        ledger.close()
        journal.close()
    assert ledger.rejected_records == 0
    legs = rows(
        dsn, "SELECT trade_id, premium_net_pct::text FROM trade_legs WHERE run_id = 'run_nan' ORDER BY 1"
    )
    assert legs == [("T000001", "2.5"), ("T000002", "NaN"), ("T000003", "2.5")]
    assert rows(dsn, "SELECT count(*) FROM event_log WHERE run_id = 'run_nan'") == [(3,)]
