"""The fault proxy in front of a real PostgreSQL: each mode does to a psycopg client what chaos relies on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from gates.chaos.postgres import ControlledPostgres
from gates.chaos.proxy import FaultProxy, ProxyError
from tests.support.calls import Call

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CLIENT_WAIT_SEC = 1.0
DEADLINE_SEC = 15.0


@pytest.fixture
def proxy(tcp_postgres: ControlledPostgres) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", tcp_postgres.port) as started:
        yield started


def _connect(proxy: FaultProxy) -> psycopg.Connection[tuple[Any, ...]]:
    dsn = make_conninfo(host="127.0.0.1", port=proxy.port, user="postgres", dbname="postgres")
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def test_pass_forwards_queries_and_counts_the_bytes(proxy: FaultProxy) -> None:
    with _connect(proxy) as conn:
        row = conn.execute("SELECT 40 + 2").fetchone()
    assert row == (42,)
    stats = proxy.stats()
    assert stats.accepted == 1
    assert stats.bytes_up > 0 and stats.bytes_down > 0
    assert stats.reset == 0


def test_reset_breaks_open_connections_and_new_ones_work(proxy: FaultProxy) -> None:
    conn = _connect(proxy)
    conn.execute("SELECT 1")

    assert proxy.set_mode("reset") == 1

    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with _connect(proxy) as fresh:
        assert fresh.execute("SELECT 2").fetchone() == (2,)
    assert proxy.stats().reset == 1


def test_blackhole_holds_a_call_and_leaving_it_fails_the_call(proxy: FaultProxy) -> None:
    conn = _connect(proxy)
    conn.execute("SELECT 1")
    proxy.set_mode("blackhole")

    call = Call(lambda: conn.execute("SELECT 1").fetchone())
    assert not call.returned_within(CLIENT_WAIT_SEC), f"the call returned through a blackhole: {call.result}"

    assert proxy.set_mode("pass") == 1
    assert call.returned_within(DEADLINE_SEC), "the held call did not end after the blackhole was lifted"
    assert isinstance(call.error, psycopg.OperationalError), call.error
    conn.close()
    with _connect(proxy) as fresh:
        assert fresh.execute("SELECT 3").fetchone() == (3,)


def test_blackhole_accepts_new_connections_without_reaching_the_server(proxy: FaultProxy) -> None:
    proxy.set_mode("blackhole")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=DEADLINE_SEC) as raw:
        raw.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # an SSLRequest: PostgreSQL answers it at once
        raw.settimeout(CLIENT_WAIT_SEC)
        with pytest.raises(TimeoutError):
            raw.recv(1)
        assert proxy.stats().accepted == 1
        assert proxy.stats().bytes_up == 0

        proxy.set_mode("pass")
        raw.settimeout(DEADLINE_SEC)
        with pytest.raises(ConnectionResetError):
            raw.recv(1)


def test_delay_still_answers(proxy: FaultProxy) -> None:
    with _connect(proxy) as conn:
        proxy.set_mode("delay", delay_ms=50)
        assert conn.execute("SELECT 4").fetchone() == (4,)
    assert proxy.mode == "delay"


def test_close_is_idempotent_and_ends_every_connection(tcp_postgres: ControlledPostgres) -> None:
    proxy = FaultProxy("127.0.0.1", tcp_postgres.port).start()
    conn = _connect(proxy)
    port = proxy.port

    proxy.close()
    proxy.close()

    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_SEC).close()
    with pytest.raises(ProxyError, match="not running"):
        proxy.set_mode("pass")


def test_an_unknown_mode_is_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ProxyError, match="unknown fault proxy mode 'drop'"):
        proxy.set_mode("drop")
