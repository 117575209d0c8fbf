"""How the ledger reaches PostgreSQL: a time-bounded connection, and which failures are the
connection's fault (retry) rather than the record's (refuse)."""

from __future__ import annotations

from typing import Any

import psycopg

APPLICATION_NAME = "arbitrage"
"""How the engine's connections show in pg_stat_activity (unless the DSN names another)."""


class LedgerUnavailable(Exception):
    """The database cannot be reached or refused the schema; the message is one operator line."""


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password: for error lines."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libpq's are several lines long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(dsn: str, connect_timeout_sec: float, statement_timeout_ms: int) -> psycopg.Connection[Any]:
    """An autocommit connection whose connect and statements are both time-bounded."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        params = {}
    try:
        return psycopg.connect(
            dsn,
            application_name=str(params.get("application_name") or APPLICATION_NAME),
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout_sec)),
            options=f"-c statement_timeout={statement_timeout_ms}",
        )
    except psycopg.Error as exc:
        raise LedgerUnavailable(f"postgres unreachable at {describe_dsn(dsn)}: {first_line(exc)}") from None


RETRYABLE = (psycopg.OperationalError, psycopg.InterfaceError, LedgerUnavailable)
"""Failures that say nothing about the record itself: the connection or the server is at fault."""
