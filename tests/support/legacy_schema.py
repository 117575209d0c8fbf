"""Databases as earlier engines left them: their tables, and no record of any migration.

Before the schema recorded its migrations, an engine of schema version 1 built exactly what migration
1 builds, and one of schema version 4 exactly what migrations 1 to 5 build (the alert deliveries and
live arms tables came before the record did): a schema-only `pg_dump` of a database built by those
engines' DDL equals one of a database built by these migrations. Released migrations never change
(`tests/unit/test_released_migrations.py` pins their SQL), so the SQL below stays what those engines ran.
"""

from __future__ import annotations

from typing import Final

from arbitrage.schema.migrations import MIGRATIONS

MIGRATIONS_BUILT_BY: Final = {1: 1, 4: 5}
"""Schema version an earlier engine recorded -> how many of the migrations its tables equal."""


def legacy_schema_sql(version: int) -> str:
    """The DDL an engine of schema `version` ran on an empty database (it recorded no migration)."""
    return "".join(migration.sql for migration in MIGRATIONS[: MIGRATIONS_BUILT_BY[version]])
