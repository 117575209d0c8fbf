"""event_log is append-only, enforced by PostgreSQL itself: UPDATE, DELETE and TRUNCATE are
refused whoever sends them, and INSERT still works. Runs record their provenance in it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from arbitrage.ledger import SCHEMA_VERSION, Ledger, connect
from arbitrage.services import ServiceEndpoints
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "el", with_schema=False)


def snapshot(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute("SELECT id, ts, run_id, event_type, correlation_id, payload FROM event_log ORDER BY id")
        return cur.fetchall()


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("UPDATE event_log SET payload = '{\"pnl_usd\": 1e9}'::jsonb", "UPDATE"),
        ("UPDATE event_log SET event_type = 'TRADE_CLOSE' WHERE event_type = 'GUARD_TRIP'", "UPDATE"),
        ("DELETE FROM event_log", "DELETE"),
        ("DELETE FROM event_log WHERE event_type = 'GUARD_TRIP'", "DELETE"),
        ("TRUNCATE event_log", "TRUNCATE"),
    ],
)
def test_the_database_refuses_to_rewrite_history(
    ledger: Ledger, dsn: str, statement: str, operation: str
) -> None:
    assert ledger.record_event("smoke_a", "TRADE_OPEN", {"symbol": "BTC"}, "smoke_a:T000001")
    assert ledger.record_event("smoke_a", "GUARD_TRIP", {"guard": "SINGLE_TRADE_LOSS"})
    with connect(dsn, 5.0, 5000) as conn:
        before = snapshot(conn)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(statement)
        assert str(refused.value).startswith(f"event_log is append-only: {operation} refused")
        assert snapshot(conn) == before
        assert len(before) == 2


def test_appending_still_works_after_a_refusal(ledger: Ledger, dsn: str) -> None:
    assert ledger.record_event(None, "PREFLIGHT", {"passed": False})
    with connect(dsn, 5.0, 5000) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM event_log")
        assert ledger.record_event(None, "PREFLIGHT", {"passed": True})
        assert [row[5] for row in snapshot(conn)] == [{"passed": False}, {"passed": True}]
    assert ledger.event_inserts_failed == 0


def test_schema_setup_is_idempotent_under_concurrent_engines(dsn: str) -> None:
    errors: list[BaseException] = []

    def open_ledger() -> None:
        try:
            engine = Ledger(dsn)
            engine.open()
            engine.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_ledger) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with connect(dsn, 5.0, 5000) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
            " WHERE tgname LIKE '%append_only' OR tgname LIKE '%no_truncate' ORDER BY 1, 2"
        )
        assert cur.fetchall() == [
            ("event_log", "event_log_append_only"),
            ("event_log", "event_log_no_truncate"),
            ("system_state", "system_state_append_only"),
            ("system_state", "system_state_no_truncate"),
        ]


def test_run_start_records_schema_version_git_sha_and_config_hash(ledger: Ledger, dsn: str) -> None:
    ledger.record_run_start("smoke_b", "smoke", "paper", datetime.now(UTC), 7, "abc123", "f" * 64)
    assert ledger.record_event("smoke_b", "RUN_START", {"phase": "smoke", "config_hash": "f" * 64})
    with connect(dsn, 5.0, 5000) as conn:
        payload = snapshot(conn)[-1][5]
        runs = conn.execute("SELECT git_sha, config_hash, schema_version FROM runs").fetchall()
    assert payload == {
        "phase": "smoke",
        "config_hash": "f" * 64,
        "schema_version": SCHEMA_VERSION,
        "git_sha": "abc123",
        "mode": "paper",
    }
    assert runs == [("abc123", "f" * 64, SCHEMA_VERSION)]
