"""The kill switch against real PostgreSQL and Redis: ACTIVE by default, latest row wins, every
change audited, fail-closed for orders, and the `arbitrage kill-switch` command."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from arbitrage.ledger import connect
from arbitrage.ops.kill_switch import CACHE_TTL_SEC, KillSwitch, KillSwitchCache, KillSwitchError
from arbitrage.services import ServiceEndpoints
from harness.cli_process import run_cli
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    """A fresh database with the ledger schema, so every test starts with no kill switch rows."""
    return fresh_database(server.postgres_dsn, "ks")


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    connection = connect(dsn, 5.0, 5000)
    yield connection
    connection.close()


@pytest.fixture
def cache(server: ServiceEndpoints) -> Iterator[KillSwitchCache]:
    kill_cache = KillSwitchCache.connect(server.redis_url, key_prefix=f"t{secrets.token_hex(4)}")
    yield kill_cache
    kill_cache.close()


def rows(conn: psycopg.Connection[Any], sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_no_rows_means_active(conn: psycopg.Connection[Any]) -> None:
    state = KillSwitch(conn).status()
    assert (state.active, state.label, state.changed_at, state.by) == (True, "ACTIVE", None, "default")
    assert state.describe() == "ACTIVE (default: no kill switch state recorded)"
    assert KillSwitch(conn).blocks_orders()


def test_latest_row_wins_and_every_change_is_one_state_row_and_one_event(
    conn: psycopg.Connection[Any],
) -> None:
    switch = KillSwitch(conn)
    released = switch.deactivate("paper rehearsal  approved", "alice")
    assert (released.active, released.reason, released.by) == (False, "paper rehearsal approved", "alice")
    assert switch.status() == released
    assert not switch.blocks_orders()
    tripped = switch.activate("guard SINGLE_TRADE_LOSS", "guard", run_id="smoke_x")
    assert switch.status() == tripped
    assert (tripped.active, tripped.run_id) == (True, "smoke_x")
    assert rows(conn, "SELECT kill_switch, changed_by, run_id FROM system_state ORDER BY id") == [
        ("INACTIVE", "alice", None),
        ("ACTIVE", "guard", "smoke_x"),
    ]
    events = rows(conn, "SELECT event_type, run_id, correlation_id, payload FROM event_log ORDER BY id")
    ids = [r[0] for r in rows(conn, "SELECT id FROM system_state ORDER BY id")]
    assert [(e[0], e[1], e[2]) for e in events] == [
        ("KILL_SWITCH_DEACTIVATED", None, f"kill-switch:{ids[0]}"),
        ("KILL_SWITCH_ACTIVATED", "smoke_x", f"kill-switch:{ids[1]}"),
    ]
    assert events[0][3] == {
        "state": "INACTIVE",
        "previous": "ACTIVE",
        "reason": "paper rehearsal approved",
        "by": "alice",
        "system_state_id": ids[0],
    }
    assert events[1][3]["previous"] == "INACTIVE"


@pytest.mark.parametrize(
    "statement", ["UPDATE system_state SET kill_switch = 'INACTIVE'", "DELETE FROM system_state"]
)
def test_system_state_rows_cannot_be_rewritten(conn: psycopg.Connection[Any], statement: str) -> None:
    KillSwitch(conn).activate("drill", "ops")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="system_state is append-only"):
        conn.execute(statement)
    assert KillSwitch(conn).status().active
    assert rows(conn, "SELECT count(*) FROM system_state") == [(1,)]


@pytest.mark.parametrize(("reason", "by"), [("", "ops"), ("   ", "ops"), ("drill", ""), ("x" * 501, "ops")])
def test_blank_or_oversized_reason_or_name_is_refused_and_nothing_is_written(
    conn: psycopg.Connection[Any], reason: str, by: str
) -> None:
    with pytest.raises(ValueError, match="kill switch"):
        KillSwitch(conn).deactivate(reason, by)
    assert rows(conn, "SELECT count(*) FROM system_state") == [(0,)]
    assert rows(conn, "SELECT count(*) FROM event_log") == [(0,)]


def test_an_activation_elsewhere_reaches_the_order_path_through_the_cache(
    dsn: str, conn: psycopg.Connection[Any], cache: KillSwitchCache, server: ServiceEndpoints
) -> None:
    engine = KillSwitch(conn, cache)
    engine.deactivate("go", "alice")
    assert not engine.blocks_orders()
    with redis.Redis.from_url(server.redis_url, decode_responses=True) as client:
        assert 0 < int(client.ttl(cache.key)) <= CACHE_TTL_SEC
        assert json.loads(str(client.get(cache.key)))["state"] == "INACTIVE"
    with connect(dsn, 5.0, 5000) as operator_conn:
        KillSwitch(operator_conn, cache).activate("stop now", "bob")
    assert cache.get() == "ACTIVE"
    assert engine.blocks_orders()


@pytest.mark.allow_log("ERROR", "^kill switch cache write failed", count=3)
def test_without_redis_the_database_decides(conn: psycopg.Connection[Any]) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    dead = KillSwitchCache.connect(f"redis://127.0.0.1:{port}/0", socket_timeout_sec=0.5)
    switch = KillSwitch(conn, dead)
    assert (dead.ping(), dead.get()) == (False, None)
    assert switch.blocks_orders()
    switch.deactivate("go", "alice")
    assert not switch.blocks_orders()
    dead.close()


@pytest.mark.allow_log("ERROR", "treating the kill switch as ACTIVE$", count=1)
def test_an_unreadable_state_blocks_orders_and_reconnect_recovers(dsn: str) -> None:
    lost = connect(dsn, 5.0, 5000)
    KillSwitch(lost).deactivate("go", "alice")
    lost.close()
    stranded = KillSwitch(lost)
    with pytest.raises(KillSwitchError, match="kill switch state unreadable"):
        stranded.status()
    assert stranded.blocks_orders()
    with pytest.raises(KillSwitchError, match="change to ACTIVE failed"):
        stranded.activate("x", "y")
    healed = KillSwitch(lost, reconnect=lambda: connect(dsn, 5.0, 5000))
    assert not healed.status().active
    assert not healed.blocks_orders()


# -- the command --------------------------------------------------------------------------------
def cli(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {"ARB_SERVICES__DATA_DIR": str(tmp_path / "unused-services")}
    return run_cli("kill-switch", *args, env=env, timeout=timeout, cwd=tmp_path)


def test_kill_switch_command_round_trip(tmp_path: Path, dsn: str, server: ServiceEndpoints) -> None:
    where = ("--postgres-dsn", dsn, "--redis-url", server.redis_url)
    first = cli(tmp_path, "status", *where)
    assert (first.returncode, first.stdout, first.stderr) == (
        0, "kill switch: ACTIVE (default: no kill switch state recorded)\n", ""
    )  # fmt: skip
    released = cli(tmp_path, "deactivate", "--reason", "rehearsal approved", "--by", "alice", *where)
    assert released.returncode == 0, released.stderr
    assert released.stdout.startswith("kill switch: INACTIVE since ")
    assert released.stdout.rstrip().endswith("by alice: rehearsal approved")
    shown = cli(tmp_path, "status", "--json", *where)
    assert json.loads(shown.stdout)["state"] == "INACTIVE"
    again = cli(tmp_path, "activate", "--reason", "end of rehearsal", "--by", "alice", *where)
    assert again.returncode == 0 and "ACTIVE since" in again.stdout
    assert json.loads(cli(tmp_path, "status", "--json", *where).stdout)["reason"] == "end of rehearsal"
    assert not (tmp_path / "unused-services").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["activate", "--by", "alice"], "the following arguments are required: --reason"),
        (["deactivate", "--reason", "   ", "--by", "alice"], "invalid reason '   '"),
        (["toggle"], "invalid choice: 'toggle'"),
        ([], "the following arguments are required: action"),
    ],
)
def test_kill_switch_usage_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    done = cli(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and fragment in done.stderr, done.stderr


def test_unreachable_database_is_one_line_exit_1(tmp_path: Path, server: ServiceEndpoints) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    started = time.monotonic()
    done = cli(
        tmp_path,
        "status",
        "--postgres-dsn",
        f"postgresql://u@127.0.0.1:{port}/db",
        "--redis-url",
        server.redis_url,
    )
    assert time.monotonic() - started < 10.0
    assert done.returncode == 1
    assert done.stderr.startswith(f"arbitrage: postgres unreachable at 127.0.0.1:{port}/db")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_bad_redis_url_does_not_stop_an_emergency_activation(tmp_path: Path, dsn: str) -> None:
    with pytest.raises(KillSwitchError, match="kill switch cache URL is invalid"):
        KillSwitchCache.connect("bogus://cache")
    done = cli(
        tmp_path,
        "activate",
        "--reason",
        "stop now",
        "--by",
        "bob",
        "--postgres-dsn",
        dsn,
        "--redis-url",
        "bogus://x",
    )
    assert done.returncode == 0, done.stderr
    assert "ACTIVE since" in done.stdout
    assert (
        done.stderr
        == "arbitrage: note: redis unreachable or invalid, its kill switch copy was not refreshed\n"
    )
    with connect(dsn, 5.0, 5000) as conn:
        assert KillSwitch(conn).status().by == "bob"
