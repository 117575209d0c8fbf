"""A fresh PostgreSQL database per test, so kill switch and event rows never leak between tests.

Each database made here is labelled (a `COMMENT ON DATABASE`) with the database it was made from,
so whoever owns that one can drop them all with `drop_databases_made_from` once done: on a
server shared by the whole session, nothing else would.
"""

from __future__ import annotations

import secrets

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from arbitrage.ledger import Ledger

ORIGIN = "fresh_database from "
"""The comment's prefix; the rest is the name of the database the new one was made from."""


def fresh_database(admin_dsn: str, prefix: str, *, with_schema: bool = True) -> str:
    """Create a uniquely named database on the server of `admin_dsn`; return its DSN.

    With `with_schema` the engine's ledger schema (and its append-only triggers) is created in it.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        origin = sql.Literal(ORIGIN + admin.info.dbname)
        admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), origin))
    fresh = make_conninfo(admin_dsn, dbname=name)
    if with_schema:
        ledger = Ledger(fresh)
        ledger.open()
        ledger.close()
    return fresh


def drop_databases_made_from(admin_dsn: str) -> list[str]:
    """Drop every database `fresh_database` made from the database of `admin_dsn` (and theirs in
    turn), closing their connections; return the names dropped."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as admin:
        made = [
            str(row[0])
            for row in admin.execute(
                "SELECT d.datname FROM pg_database d"
                " JOIN pg_shdescription s ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass"
                " WHERE s.description = %s ORDER BY d.datname",
                (ORIGIN + admin.info.dbname,),
            )
        ]
    dropped: list[str] = []
    for name in made:
        dropped += drop_databases_made_from(make_conninfo(admin_dsn, dbname=name))
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        dropped.append(name)
    return dropped
