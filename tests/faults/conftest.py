"""Fixtures of the fault suite: a PostgreSQL the test can stop, cut and freeze, and a tiny disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.support.controlled_pg import ControlledPostgres
from tests.support.databases import fresh_database
from tests.support.tmpfs import mounted_tmpfs

DEFAULT_TMPFS_KB = 256


@pytest.fixture(scope="module")
def controlled_pg_server() -> Iterator[ControlledPostgres]:
    """One controlled PostgreSQL per test module (initdb + start take about a second)."""
    server = ControlledPostgres.create()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def controlled_pg(controlled_pg_server: ControlledPostgres) -> Iterator[ControlledPostgres]:
    """The module's server, running and unfrozen, bound to a fresh database with the ledger schema.

    ``controlled_pg.dsn`` is that database; whatever the test did to the server (stopped it, froze
    backends) is undone afterwards and the database is dropped.
    """
    server = controlled_pg_server
    server.start()
    dsn = fresh_database(server.admin_dsn, "fault")
    server.database = str(conninfo_to_dict(dsn)["dbname"])
    try:
        yield server
    finally:
        name, server.database = server.database, None
        assert name is not None
        server.thaw()
        server.start()
        with psycopg.connect(server.admin_dsn, autocommit=True, connect_timeout=10) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def small_tmpfs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted tmpfs of 256 KiB (or ``request.param`` KiB via indirect parametrization)."""
    if os.geteuid() != 0:
        pytest.skip(f"small_tmpfs mounts a tmpfs, which needs root; these tests run as uid {os.geteuid()}")
    size_kb = int(getattr(request, "param", DEFAULT_TMPFS_KB))
    with mounted_tmpfs(tmp_path / "tmpfs", size_kb) as mount_point:
        yield mount_point
