"""Each control of the fault fixtures really does what the fault suite relies on."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import psycopg
import pytest

from tests.support.controlled_pg import ControlledPostgres
from tests.support.engine_process import wait_for

pytestmark = pytest.mark.integration

CLIENT_WAIT_SEC = 1.0
DEADLINE_SEC = 15.0


def _connect(dsn: str, application_name: str = "fault-test") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=3, application_name=application_name)


def test_stop_refuses_connections_and_start_brings_the_data_back(controlled_pg: ControlledPostgres) -> None:
    with _connect(controlled_pg.dsn) as conn:
        conn.execute("CREATE TABLE survivor (v int)")
        conn.execute("INSERT INTO survivor VALUES (42)")
    open_conn = _connect(controlled_pg.dsn)

    controlled_pg.stop()

    assert not controlled_pg.running
    with pytest.raises(psycopg.OperationalError):
        _connect(controlled_pg.dsn)
    with pytest.raises(psycopg.OperationalError):
        open_conn.execute("SELECT 1")
    open_conn.close()

    controlled_pg.start()

    with _connect(controlled_pg.dsn) as conn:
        assert conn.execute("SELECT v FROM survivor").fetchall() == [(42,)]


def test_restart_keeps_the_port_and_drops_clients(controlled_pg: ControlledPostgres) -> None:
    before = controlled_pg.pid
    conn = _connect(controlled_pg.dsn)

    controlled_pg.restart()

    assert controlled_pg.pid not in (None, before)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with _connect(controlled_pg.dsn) as fresh:
        assert fresh.execute("SELECT 1").fetchone() == (1,)


def test_terminate_kills_only_the_named_connection(controlled_pg: ControlledPostgres) -> None:
    with (
        _connect(controlled_pg.dsn, "victim") as victim,
        _connect(controlled_pg.dsn, "bystander") as bystander,
    ):
        assert len(controlled_pg.backend_pids(application_name="victim")) == 1

        assert controlled_pg.terminate_backends(application_name="victim") == 1

        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        assert bystander.execute("SELECT 1").fetchone() == (1,)
        wait_for(
            lambda: controlled_pg.backend_pids(application_name="victim") == [],
            DEADLINE_SEC,
            "the victim's backend to exit",
        )


def test_backend_pids_are_scoped_to_the_bound_database(controlled_pg: ControlledPostgres) -> None:
    with _connect(controlled_pg.dsn, "in-db") as inside, _connect(controlled_pg.admin_dsn, "elsewhere"):
        pid = inside.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        assert controlled_pg.backend_pids() == [pid[0]]
        assert controlled_pg.backend_pids(database="postgres", application_name="elsewhere") != []


def test_a_frozen_backend_does_not_answer_until_thawed(controlled_pg: ControlledPostgres) -> None:
    with _connect(controlled_pg.dsn, "frozen") as conn:
        assert len(controlled_pg.freeze_backends(application_name="frozen")) == 1
        answers: list[object] = []
        query = threading.Thread(
            target=lambda: answers.append(conn.execute("SELECT 7").fetchone()), daemon=True
        )
        try:
            query.start()
            query.join(timeout=CLIENT_WAIT_SEC)
            assert query.is_alive(), "a query on a frozen backend returned"
            assert answers == []
        finally:
            controlled_pg.thaw()
        query.join(timeout=DEADLINE_SEC)
        assert answers == [(7,)]


def test_stopped_for_restarts_in_the_background(controlled_pg: ControlledPostgres) -> None:
    with controlled_pg.stopped_for(0.5), pytest.raises(psycopg.OperationalError):
        _connect(controlled_pg.dsn)
    with _connect(controlled_pg.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("small_tmpfs", [64], indirect=True)
def test_small_tmpfs_fills_up(small_tmpfs: Path) -> None:
    with (small_tmpfs / "filler").open("wb", buffering=0) as handle, pytest.raises(OSError) as raised:
        for _ in range(64 + 1):
            handle.write(b"\0" * 4096)
    assert raised.value.errno == errno.ENOSPC
