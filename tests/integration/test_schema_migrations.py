"""The ledger schema's migrations on a real PostgreSQL: a fresh database records each once, databases
built by earlier engines (schema versions 1 and 4, no record of migrations) come out identical to a
fresh one with their rows kept, concurrent engines migrate once, and an engine connected as the
application role refuses to start on an older schema instead of failing on its first insert, and runs
(recording the schema version in its manifest) once the owner has migrated.
Everything is read back from PostgreSQL's own catalogue."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arbitrage.app_role import APP_ROLE, app_dsn
from arbitrage.ledger import Ledger, connect
from arbitrage.schema.migrate import SchemaBehind
from arbitrage.schema.migrations import MIGRATIONS
from arbitrage.services import ServiceEndpoints
from evidence import names
from harness.cli_process import run_cli
from tests.support.databases import fresh_database
from tests.support.legacy_schema import legacy_schema_sql

pytestmark = pytest.mark.integration

RECORDED = [
    (1, "ledger"), (2, "append_only"), (3, "run_owner_and_event_uid"), (4, "upbit_qty"),
    (5, "alerts_and_arms"), (6, "event_kinds_by_run"),
]  # fmt: skip
LEGACY_ROWS = """
INSERT INTO runs (run_id, phase, mode, started_at, status, config_hash, schema_version)
    VALUES ('old_run', 'smoke', 'paper', now(), 'ended', 'h', 1);
INSERT INTO trade_legs (run_id, trade_id, leg, correlation_id, symbol, direction, qty, upbit_side,
    upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt, krw_per_usdt,
    premium_net_pct, reason, tick)
    VALUES ('old_run', 'T1', 'entry', 'c1', 'BTC', 'kimchi', 0.001, 'buy', 1, 0, 'sell', 1, 0, 1300, 0.5,
            'x', 1);
INSERT INTO event_log (run_id, event_type) VALUES ('old_run', 'TRADE_OPEN');
"""
ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
"""
OLD_GRANTS = f"""{ROLE}
GRANT SELECT, INSERT ON event_log, system_state, alert_deliveries, trade_legs, live_arms TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON runs TO {APP_ROLE};
GRANT USAGE ON SEQUENCE event_log_id_seq, system_state_id_seq, alert_deliveries_id_seq, trade_legs_id_seq
    TO {APP_ROLE};
"""
"""The grants the README told an operator to give before the schema recorded its migrations."""


def legacy_database(server: ServiceEndpoints, version: int) -> str:
    """A database as the engine of schema `version` left it, with a run, a leg and an event in it."""
    dsn = fresh_database(server.postgres_dsn, f"v{version}", with_schema=False)
    with connect(dsn, 5.0, 5000) as conn:
        conn.execute(legacy_schema_sql(version))
        conn.execute(LEGACY_ROWS)
    return dsn


def open_ledger(dsn: str) -> None:
    ledger = Ledger(dsn, connect_timeout_sec=5.0, statement_timeout_ms=5000)
    ledger.open()
    ledger.close()


def query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with connect(dsn, 5.0, 5000) as conn:
        return conn.execute(sql).fetchall()


def recorded(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT version, name FROM schema_version ORDER BY version")


def catalogue(dsn: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every column, constraint, index and trigger of the database's schema, as PostgreSQL describes them."""
    return {
        "columns": set(query(dsn, """
            SELECT table_name, column_name, data_type, is_nullable, column_default
            FROM information_schema.columns WHERE table_schema = current_schema()""")),
        "constraints": set(query(dsn, """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint WHERE connamespace = current_schema()::regnamespace""")),
        "indexes": set(query(dsn, """
            SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()""")),
        "triggers": set(query(dsn, """
            SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled
            FROM pg_trigger WHERE NOT tgisinternal""")),
    }  # fmt: skip


def test_a_fresh_database_records_each_migration_once(server: ServiceEndpoints) -> None:
    dsn = fresh_database(server.postgres_dsn, "fresh", with_schema=False)
    open_ledger(dsn)
    open_ledger(dsn)
    assert recorded(dsn) == RECORDED
    tables = {
        row[0] for row in query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    }
    assert tables == {
        "runs", "trade_legs", "event_log", "system_state", "alert_deliveries", "live_arms", "schema_version",
    }  # fmt: skip


@pytest.mark.parametrize("version", [1, 4])
def test_a_database_an_earlier_engine_built_upgrades_to_the_fresh_schema(
    server: ServiceEndpoints, version: int
) -> None:
    fresh = fresh_database(server.postgres_dsn, "fresh", with_schema=False)
    open_ledger(fresh)
    legacy = legacy_database(server, version)
    assert query(legacy, "SELECT to_regclass('schema_version') IS NULL") == [(True,)]
    assert catalogue(legacy) != catalogue(fresh)
    open_ledger(legacy)
    assert catalogue(legacy) == catalogue(fresh)
    assert recorded(legacy) == RECORDED
    assert query(legacy, "SELECT run_id, trade_id, upbit_qty FROM trade_legs") == [("old_run", "T1", None)]
    assert query(legacy, "SELECT run_id, event_type, event_uid FROM event_log") == [
        ("old_run", "TRADE_OPEN", None)
    ]
    with connect(legacy, 5.0, 5000) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM event_log")


def test_concurrent_engines_upgrade_an_older_database_once(server: ServiceEndpoints) -> None:
    legacy = legacy_database(server, 4)
    errors: list[BaseException] = []

    def engine() -> None:
        try:
            open_ledger(legacy)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=engine) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    assert recorded(legacy) == RECORDED
    triggers = query(legacy, "SELECT tgrelid::regclass::text, count(*) FROM pg_trigger WHERE NOT tgisinternal"
                     " GROUP BY 1 ORDER BY 1")  # fmt: skip
    assert triggers == [("event_log", 2), ("system_state", 2)]


def run_engine(tmp_path: Path, dsn: str, server: ServiceEndpoints) -> subprocess.CompletedProcess[str]:
    env = {"ARB_SERVICES__DATA_DIR": str(tmp_path / "unused-services")}
    where = ["--postgres-dsn", dsn, "--redis-url", server.redis_url, "--evidence-root", str(tmp_path / "ev")]
    return run_cli("run", "--phase", "smoke", "--ticks", "5", *where, env=env, timeout=120, cwd=tmp_path)


def kill_switch_status(
    tmp_path: Path, dsn: str, server: ServiceEndpoints
) -> subprocess.CompletedProcess[str]:
    env = {"ARB_SERVICES__DATA_DIR": str(tmp_path / "unused-services")}
    return run_cli(
        "kill-switch", "status", "--postgres-dsn", dsn, "--redis-url", server.redis_url,
        env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip


def test_the_application_role_refuses_an_older_schema_until_its_owner_migrates(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    owner = legacy_database(server, 4)
    with connect(owner, 5.0, 5000) as conn:
        conn.execute(OLD_GRANTS)
    app = app_dsn(owner)
    refused = run_engine(tmp_path, app, server)
    assert refused.returncode == 1, refused.stderr
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    line = refused.stderr.strip()
    assert line.startswith("arbitrage: postgres schema at "), line
    assert (
        " lacks migrations 0001_ledger, 0002_append_only, 0003_run_owner_and_event_uid, 0004_upbit_qty,"
        " 0005_alerts_and_arms, 0006_event_kinds_by_run (this engine needs version 6, the database records"
        " none);"
    ) in line
    assert f"role {APP_ROLE} does not own " in line
    assert query(owner, "SELECT to_regclass('schema_version') IS NULL") == [(True,)]
    assert query(owner, "SELECT count(*) FROM runs") == [(1,)]

    migrated = kill_switch_status(tmp_path, owner, server)
    assert migrated.returncode == 0, migrated.stderr
    assert recorded(owner) == RECORDED
    with pytest.raises(SchemaBehind, match=rf"^postgres role {APP_ROLE} may not read schema_version at .*"
                       rf"GRANT SELECT ON schema_version TO {APP_ROLE}\)$"):  # fmt: skip
        open_ledger(app)
    with connect(owner, 5.0, 5000) as conn:
        conn.execute(f"GRANT SELECT ON schema_version TO {APP_ROLE}")
    ran = run_engine(tmp_path, app, server)
    assert ran.returncode == 0, ran.stderr[-2000:]
    evidence = Path(next(x for x in ran.stdout.splitlines() if x.startswith("evidence: ")).split(" ", 1)[1])
    manifest = json.loads((evidence / names.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["ledger_schema_version"] == 6
    assert query(owner, f"SELECT schema_version FROM runs WHERE run_id = '{manifest['run_id']}'") == [(6,)]


def test_one_missing_migration_is_named_with_the_version_the_database_records(
    server: ServiceEndpoints,
) -> None:
    owner = fresh_database(server.postgres_dsn, "behind", with_schema=False)
    with connect(owner, 5.0, 5000) as conn, conn.transaction():
        conn.execute("CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for migration in MIGRATIONS[:5]:
            conn.execute(migration.sql)
            conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))  # fmt: skip
        conn.execute(ROLE + f"GRANT SELECT ON schema_version TO {APP_ROLE};")
    with pytest.raises(SchemaBehind) as behind:
        open_ledger(app_dsn(owner))
    message = str(behind.value)
    assert (
        " lacks migration 0006_event_kinds_by_run (this engine needs version 6, the database records 5);"
        in message
    )
    assert "\n" not in message
    assert query(owner, "SELECT max(version) FROM schema_version") == [(5,)]
