"""Bringing a database to this engine's schema version: pending migrations, applied once.

A database that already records every migration costs one SELECT and takes no lock. Otherwise
the pending migrations run in order in one transaction under one advisory lock, so concurrent
engines apply each exactly once, and each is recorded in `schema_version`. A database an earlier
engine built records nothing yet: every migration is pending, and each changes only what is
missing. Only the tables' owner may migrate; an engine connected as another role (the
application role, `arbitrage.app_role`) refuses to start on a schema that is behind instead of
failing on its first insert.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from arbitrage.ledger_conn import LedgerUnavailable, first_line
from arbitrage.schema.migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from evidence.ledger_tables import LEDGER_TABLES
from evidence.ledger_tables import SCHEMA_VERSION as SCHEMA_VERSION_TABLE

SCHEMA_LOCK_KEY: Final = 0x4152_4231
"""Advisory lock key: concurrent engines migrate one at a time (earlier engines used it too)."""

_RECORD_SQL: Final = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
_RECORDED_SQL: Final = f"SELECT version FROM {SCHEMA_VERSION_TABLE}"
_RECORD_ONE_SQL: Final = f"INSERT INTO {SCHEMA_VERSION_TABLE} (version, name) VALUES (%s, %s)"
_EXISTS_SQL: Final = (
    "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = %s)"
)
"""Read from the catalogue tables with the statement's snapshot: `to_regclass` answers from the
session's catalogue cache, which an advisory lock does not refresh, so an engine that waited for
another's migration would not see the table it created."""
_NOT_OWNED_SQL: Final = """
SELECT tablename FROM pg_tables
WHERE schemaname = current_schema() AND tablename = ANY(%s)
  AND NOT pg_has_role(current_user, tableowner, 'USAGE')
ORDER BY tablename
"""


class SchemaBehind(LedgerUnavailable):
    """The database lacks a migration this engine needs and the connected role may not apply it."""


def applied_versions(cur: psycopg.Cursor[Any]) -> set[int]:
    """The migrations the database records (none when it has no `schema_version` table)."""
    cur.execute(_EXISTS_SQL, (SCHEMA_VERSION_TABLE,))
    row = cur.fetchone()
    if row is None or not row[0]:
        return set()
    cur.execute(_RECORDED_SQL)
    return {int(version) for (version,) in cur.fetchall()}


def _pending(applied: set[int]) -> list[Migration]:
    return [migration for migration in MIGRATIONS if migration.version not in applied]


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply every pending migration over `conn` (autocommit); return the schema version now recorded.

    Raises SchemaBehind when a migration is pending and the tables belong to another role, and
    psycopg.Error when the database refuses a statement.
    """
    try:
        with conn.cursor() as cur:
            if not _pending(applied_versions(cur)):
                return SCHEMA_VERSION
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SchemaBehind(
            f"postgres role {conn.info.user} may not read {SCHEMA_VERSION_TABLE} at {_where(conn)}: "
            f"{first_line(exc)}; grant it as the tables' owner "
            f"(GRANT SELECT ON {SCHEMA_VERSION_TABLE} TO {conn.info.user})"
        ) from None
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        applied = applied_versions(cur)
        pending = _pending(applied)
        if pending:
            _refuse_unless_owner(cur, conn, applied, pending)
            cur.execute(_RECORD_SQL)
        for migration in pending:
            cur.execute(migration.sql)
            cur.execute(_RECORD_ONE_SQL, (migration.version, migration.name))
    return SCHEMA_VERSION


def _refuse_unless_owner(
    cur: psycopg.Cursor[Any], conn: psycopg.Connection[Any], applied: set[int], pending: list[Migration]
) -> None:
    cur.execute(_NOT_OWNED_SQL, ([*LEDGER_TABLES, SCHEMA_VERSION_TABLE],))
    foreign = [str(name) for (name,) in cur.fetchall()]
    if not foreign:
        return
    recorded = "none" if not applied else str(max(applied))
    plural = "s" if len(pending) > 1 else ""
    missing = ", ".join(migration.label for migration in pending)
    raise SchemaBehind(
        f"postgres schema at {_where(conn)} lacks migration{plural} {missing} (this engine needs"
        f" version {SCHEMA_VERSION}, the database records {recorded}); role {conn.info.user} does not"
        f" own {foreign[0]}, so apply {'them' if plural else 'it'} as the owner first"
        " (e.g. `arbitrage kill-switch status --postgres-dsn OWNER_DSN`)"
    )


def _where(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"{info.host or 'localhost'}:{info.port}/{info.dbname}"
