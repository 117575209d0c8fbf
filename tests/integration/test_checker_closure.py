"""The chaos checker holds a run's NOTHING_LEFT_OPEN to the legs PostgreSQL holds.

A run that records NOTHING_LEFT_OPEN takes itself out of every later preflight, so a wrong record
would hide an open position. The checker reads the legs itself: an entry leg without its exit in a
run that says nothing is left open is UNEXPLAINED.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from arbitrage.services import ServiceEndpoints
from evidence.run_closure import NOTHING_LEFT_OPEN
from gates.chaos.checker import LedgerAudit
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration


def ended_run_with_an_open_entry(dsn: str, run_id: str, closed: bool) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, phase, mode, started_at, status, config_hash, schema_version)"
            " VALUES (%s, 'smoke', 'paper', now(), 'ended', 'h', 6)",
            (run_id,),
        )
        conn.execute(
            "INSERT INTO trade_legs (run_id, trade_id, leg, correlation_id, symbol, direction, qty,"
            " upbit_side, upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt,"
            " krw_per_usdt, premium_net_pct, reason, tick) VALUES (%s, 't1', 'entry', %s, 'BTC',"
            " 'upbit_rich', 0.01, 'sell', 1e8, 1, 'buy', 7e4, 1, 1380, 2.5, 'threshold', 1)",
            (run_id, f"{run_id}:t1"),
        )
        if closed:
            conn.execute(
                "INSERT INTO event_log (run_id, event_type, payload) VALUES (%s, %s, %s::jsonb)",
                (run_id, NOTHING_LEFT_OPEN, json.dumps({"entries": 1, "orders": 0})),
            )


def test_nothing_left_open_with_an_entry_and_no_exit_is_unexplained(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    dsn = fresh_database(server.postgres_dsn, "closure")
    for run_id, closed in (("paper_said_closed", True), ("paper_left_open", False)):
        ended_run_with_an_open_entry(dsn, run_id, closed)
        (tmp_path / run_id).mkdir()
    said = LedgerAudit.of(dsn, tmp_path / "paper_said_closed").unexplained(killed=False)
    assert f"{NOTHING_LEFT_OPEN} recorded, but entry legs have no exit: ['t1']" in said
    honest = LedgerAudit.of(dsn, tmp_path / "paper_left_open").unexplained(killed=False)
    assert not [line for line in honest if NOTHING_LEFT_OPEN in line], honest
