"""Acceptance: as the engine's application role, event_log cannot be edited, emptied or unguarded,
while everything the engine writes (the ledger's idempotent inserts, a run's end, recovery's
UPDATE of a crashed run, the kill switch, alerts) still goes through."""

from __future__ import annotations

import psycopg
import pytest

from arbitrage.app_role import APP_ROLE, prepare_app_role
from arbitrage.ledger import Ledger, connect
from arbitrage.ops.kill_switch import KillSwitch
from arbitrage.schema.migrate import migrate
from arbitrage.services import ServiceEndpoints
from tests.support.databases import fresh_database

pytestmark = [pytest.mark.integration]


@pytest.fixture
def dsns(server: ServiceEndpoints) -> tuple[str, str]:
    """(owner DSN, application role DSN) of a fresh database prepared as the embedded default does."""
    owner = fresh_database(server.postgres_dsn, "role", with_schema=False)
    return owner, prepare_app_role(owner, 5.0, 5000)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE event_log SET payload = '{}'::jsonb",
        "DELETE FROM event_log",
        "TRUNCATE event_log",
        "ALTER TABLE event_log DISABLE TRIGGER event_log_append_only",
        "ALTER TABLE event_log DISABLE TRIGGER ALL",
        "DROP TABLE event_log",
        "UPDATE system_state SET reason = 'x'",
        "DELETE FROM trade_legs",
        "ALTER TABLE system_state DISABLE TRIGGER system_state_append_only",
        "DELETE FROM schema_version",
        "INSERT INTO schema_version (version, name) VALUES (99, 'forged')",
    ],
)
def test_the_application_role_may_not_change_the_append_only_tables(
    dsns: tuple[str, str], statement: str
) -> None:
    owner, app = dsns
    with connect(app, 5.0, 5000) as conn:
        conn.execute("INSERT INTO event_log (run_id, event_type) VALUES ('r1', 'PROBE')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    with connect(owner, 5.0, 5000) as conn:
        enabled = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'event_log'::regclass AND tgenabled = 'O'"
            " AND NOT tgisinternal"
        ).fetchone()
        kept = conn.execute("SELECT count(*) FROM event_log WHERE event_type = 'PROBE'").fetchone()
    assert enabled == (2,) and kept == (1,)


def test_the_engine_writes_everything_it_needs_as_the_application_role(dsns: tuple[str, str]) -> None:
    _, app = dsns
    with connect(app, 5.0, 5000) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (APP_ROLE,)
        migrate(conn)
        KillSwitch(conn).activate("role test", "pytest", run_id="r1")
        conn.execute(
            "INSERT INTO runs (run_id, phase, mode, started_at, status, config_hash, schema_version)"
            " VALUES ('r1', 'smoke', 'paper', now(), 'running', 'h', 3) ON CONFLICT (run_id) DO NOTHING"
        )
        conn.execute("UPDATE runs SET status = 'crashed' WHERE run_id = 'r1'")
        for _ in range(2):
            conn.execute(
                "INSERT INTO event_log (run_id, event_type, event_uid) VALUES ('r1', 'E', 'u1')"
                " ON CONFLICT (event_uid) DO NOTHING"
            )
        conn.execute(
            "INSERT INTO alert_deliveries (run_id, alert_id, event, status, attempt)"
            " VALUES ('r1', 'a', 'RUN_START', 'DISABLED', 0)"
        )
        assert conn.execute("SELECT status FROM runs WHERE run_id = 'r1'").fetchone() == ("crashed",)
    ledger = Ledger(app)
    ledger.open()
    ledger.close()


def test_preparing_twice_is_harmless(dsns: tuple[str, str]) -> None:
    owner, app = dsns
    assert prepare_app_role(owner, 5.0, 5000) == app
