"""The `trade_legs.upbit_qty` column on a real PostgreSQL: an older table is upgraded in place, a leg
journaled by an older engine replays with the column empty, and a new leg stores the Upbit fill's own
quantity. Everything is read back from PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from arbitrage.ledger import Ledger, connect
from arbitrage.ledger_records import LEG, apply_record
from arbitrage.services import ServiceEndpoints
from tests.integration.test_ledger_journal import leg
from tests.support.databases import fresh_database
from tests.support.legacy_schema import legacy_schema_sql

pytestmark = pytest.mark.integration

OLDER_SCHEMA_SQL = legacy_schema_sql(1)
"""The tables as the first engine built them, before `upbit_qty`."""


def test_an_older_table_gains_the_column_and_both_generations_of_legs_are_kept(
    server: ServiceEndpoints,
) -> None:
    assert "upbit_qty" not in OLDER_SCHEMA_SQL
    dsn = fresh_database(server.postgres_dsn, "uq")
    with connect(dsn, 5.0, 5000) as conn:
        conn.execute(OLDER_SCHEMA_SQL)
    ledger = Ledger(dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    try:
        older = leg("run_u", 1).fields()
        del older["upbit_qty"]
        with connect(dsn, 5.0, 5000) as conn:
            assert apply_record(conn, {"op": LEG, "run_id": "run_u", "row": older}) == 1
        assert ledger.record_leg(replace(leg("run_u", 2), upbit_qty=0.00101234))
        assert ledger.drain(10.0) == 0
    finally:
        ledger.close()
    with connect(dsn, 5.0, 5000) as conn:
        stored = conn.execute(
            "SELECT trade_id, qty, upbit_qty FROM trade_legs WHERE run_id = 'run_u' ORDER BY trade_id"
        ).fetchall()
    assert stored == [
        ("T000001", Decimal("0.001"), None),
        ("T000002", Decimal("0.001"), Decimal("0.00101234")),
    ]
