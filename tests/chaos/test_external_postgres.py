"""`arbitrage chaos --postgres-dsn`: a server chaos does not own still gets its connections cut.

The schedule leaves out the kinds that need an owned server, each worker works in a database of
its own on that server, and the database is dropped afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gates.chaos.postgres import ControlledPostgres

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def operators_server() -> Iterator[ControlledPostgres]:
    server = ControlledPostgres.create()
    try:
        yield server
    finally:
        server.close()


def databases(server: ControlledPostgres) -> set[str]:
    with psycopg.connect(server.admin_dsn, autocommit=True, connect_timeout=10) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


def chaos(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "arbitrage.cli", "chaos", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=500)


def test_the_schedule_leaves_out_what_needs_an_owned_server(operators_server: ControlledPostgres) -> None:
    done = chaos("--dry-run", "--runs", "40", "--postgres-dsn", operators_server.admin_dsn)
    assert done.returncode == 0, done.stderr
    assert "pg-terminate" in done.stdout
    assert "pg-restart" not in done.stdout
    assert "pg-freeze" not in done.stdout


def test_a_campaign_on_an_external_server(operators_server: ControlledPostgres, tmp_path: Path) -> None:
    before = databases(operators_server)
    done = chaos(
        "--runs", "2", "--seed", "4", "--duration", "5s", "--faults", "pg-terminate,pg-net-reset",
        "--postgres-dsn", operators_server.admin_dsn, "--output-root", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("chaos: 2 runs, ")
    assert last.endswith(" faults, lost 0, unexplained 0")
    assert databases(operators_server) == before


def test_a_unix_socket_dsn_is_refused_in_one_line(tmp_path: Path) -> None:
    done = chaos("--runs", "1", "--postgres-dsn", "host=/tmp dbname=x", "--output-root", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "must name a TCP host and port" in done.stderr
    assert list(tmp_path.iterdir()) == []
