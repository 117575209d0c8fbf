"""The engine's non-owner application role: the append-only tables stay append-only against it.

The triggers on `event_log` and `system_state` stop an UPDATE or a DELETE, but a table's owner
can `ALTER TABLE ... DISABLE TRIGGER` them. So the schema is created by the owner and the engine
runs as `arb_app`, which may read and insert what it writes and update only what it must:

- `event_log`, `system_state`, `alert_deliveries`, `trade_legs`, `live_arms`: SELECT and INSERT (the
  ledger's idempotent writes are INSERT ... ON CONFLICT DO NOTHING, which needs no UPDATE);
- `runs`: SELECT, INSERT and UPDATE (a run's end, and crash recovery marking a run crashed);
- `schema_version`: SELECT (an engine refuses to start on a schema older than it needs);
- the tables' sequences: USAGE (bigserial ids).

It owns nothing, so it can neither ALTER, TRUNCATE nor DELETE. The embedded server sets this up
by itself (`prepare_app_role`); an external server is set up once by its owner (README).
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import make_conninfo

from arbitrage.ledger import Ledger, connect
from evidence.ledger_tables import (
    ALERT_DELIVERIES,
    EVENT_LOG,
    LEDGER_TABLES,
    LIVE_ARMS,
    RUNS,
    SCHEMA_VERSION,
    SYSTEM_STATE,
    TRADE_LEGS,
)

APP_ROLE = "arb_app"
ROLE_LOCK_KEY = 0x4152_4233
"""Advisory lock key: concurrent engines create the role and grant once at a time."""

_APPENDED = (EVENT_LOG, SYSTEM_STATE, ALERT_DELIVERIES, TRADE_LEGS, LIVE_ARMS)
_SEQUENCES = ", ".join(f"{table}_id_seq" for table in (EVENT_LOG, SYSTEM_STATE, ALERT_DELIVERIES, TRADE_LEGS))

GRANTS_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {APP_ROLE}', current_schema());
END
$$;
REVOKE ALL ON {", ".join((*LEDGER_TABLES, SCHEMA_VERSION))} FROM {APP_ROLE};
GRANT SELECT, INSERT ON {", ".join(_APPENDED)} TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON {RUNS} TO {APP_ROLE};
GRANT SELECT ON {SCHEMA_VERSION} TO {APP_ROLE};
GRANT USAGE ON SEQUENCE {_SEQUENCES} TO {APP_ROLE};
"""
"""What the owner runs once the schema exists; idempotent. The README repeats it for external servers."""


def app_dsn(owner_dsn: str, role: str = APP_ROLE) -> str:
    """The owner's DSN with the application role as its user (the embedded server trusts its socket)."""
    return make_conninfo(owner_dsn, user=role, password="")


def prepare_app_role(owner_dsn: str, connect_timeout_sec: float, statement_timeout_ms: int) -> str:
    """As the owner: migrate the schema, create the role and its grants; return the application role's DSN."""
    ledger = Ledger(owner_dsn, connect_timeout_sec, statement_timeout_ms)
    ledger.open()
    ledger.close()
    with connect(owner_dsn, connect_timeout_sec, statement_timeout_ms) as conn:
        for attempt in (1, 2):
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (ROLE_LOCK_KEY,))
                    cur.execute(GRANTS_SQL)
                break
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                if attempt == 2:
                    raise
    return app_dsn(owner_dsn)
