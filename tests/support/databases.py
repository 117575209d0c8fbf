"""A fresh PostgreSQL database per test, so kill switch and event rows never leak between tests."""

from __future__ import annotations

import secrets

import psycopg
from psycopg.conninfo import make_conninfo

from arbitrage.ledger import Ledger


def fresh_database(admin_dsn: str, prefix: str, *, with_schema: bool = True) -> str:
    """Create a uniquely named database on the server of `admin_dsn`; return its DSN.

    With `with_schema` the engine's ledger schema (and its append-only triggers) is created in it.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    fresh = make_conninfo(admin_dsn, dbname=name)
    if with_schema:
        ledger = Ledger(fresh)
        ledger.open()
        ledger.close()
    return fresh
