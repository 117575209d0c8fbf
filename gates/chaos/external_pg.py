"""A PostgreSQL the operator gave with `--postgres-dsn`: chaos can cut its connections, not the server.

Chaos cannot stop, restart or freeze a server it does not own, so a schedule on an external server
leaves out `pg-restart` and `pg-freeze` (`SERVER_ONLY_KINDS`); `pg-terminate` works where the
role may call `pg_terminate_backend` on its own connections, and the network faults go through
the rig's proxy as always. Each worker gets a database of its own when the role may create one.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SERVER_ONLY_KINDS: Final = frozenset({"pg-restart", "pg-freeze"})
"""Fault kinds that need a server the chaos command owns."""


class ExternalPostgresError(Exception):
    """The DSN cannot serve chaos (not TCP, or unreachable); the message is the operator's line."""


class ExternalPostgres:
    """The subset of `ControlledPostgres` chaos needs, over a server it does not own."""

    def __init__(self, dsn: str) -> None:
        params = conninfo_to_dict(dsn)
        host = str(params.get("host") or "")
        if not host or host.startswith("/"):
            raise ExternalPostgresError(
                "--postgres-dsn must name a TCP host and port for chaos (its fault proxy speaks TCP), "
                f"got host {host or '(default socket)'!r}"
            )
        self._params = params
        self.host = host
        self.port = int(params.get("port") or 5432)
        self.database: str | None = str(params.get("dbname") or params.get("user") or "postgres")
        self._own_database: str | None = None

    def dsn_for(self, database: str) -> str:
        return make_conninfo(**{**self._params, "dbname": database})  # type: ignore[arg-type]

    @property
    def admin_dsn(self) -> str:
        return self.dsn_for(str(self._params.get("dbname") or "postgres"))

    @property
    def running(self) -> bool:
        return True

    def own_database(self) -> str:
        """A database for this worker when the role may create one, else the DSN's own."""
        name = f"chaos_{secrets.token_hex(4)}"
        try:
            with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            return str(self.database)
        except psycopg.Error as exc:
            raise ExternalPostgresError(f"--postgres-dsn unusable for chaos: {exc}".splitlines()[0]) from None
        self._own_database = self.database = name
        return name

    def terminate_backends(self, application_name: str | None = None, database: str | None = None) -> int:
        """`pg_terminate_backend` the engine's connections (those this role may signal)."""
        query = (
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname = %s AND (%s::text IS NULL OR application_name = %s)"
        )
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=5) as admin:
            row = admin.execute(
                query, (database or self.database, application_name, application_name)
            ).fetchone()
            return int(row[0]) if row is not None else 0

    def stop(self) -> None:
        raise ExternalPostgresError("pg-restart needs a server the chaos command owns (no --postgres-dsn)")

    def start(self) -> None:
        """Nothing to start: the operator's server is not ours to stop."""

    def freeze_backends(self, application_name: str | None = None, database: str | None = None) -> list[int]:
        raise ExternalPostgresError("pg-freeze needs a server the chaos command owns (no --postgres-dsn)")

    def thaw(self) -> None:
        """Nothing was frozen."""

    def close(self) -> None:
        """Drop the worker's own database, if it made one."""
        if self._own_database is None:
            return
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as admin,
        ):
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self._own_database))
            )
