"""The ledger database's schema, in one place: its ordered migrations and the one way they are applied.

`migrations` holds every table, column, index and trigger the engine relies on, as numbered
migrations; `migrate` applies the pending ones in order, in one transaction under one advisory
lock, and records each in the `schema_version` table. The package itself imports nothing, so that
reading the version (`migrations.SCHEMA_VERSION`) loads no database client. The table names come from
`evidence.ledger_tables`.
"""
