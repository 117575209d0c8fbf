"""The chaos rig with real servers and processes: a real engine runs through it, and each fault
kind has its effect when struck and is gone when cleared."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from arbitrage.ledger import APPLICATION_NAME
from gates.chaos.faults import ACTIONS, EXCHANGE_LATENCY_MS, FaultError, Rig, clear, reset, strike
from gates.chaos.model import EXCHANGE_SIM_FAULT, LIVE_FAULT_KINDS, ORDER_SIM_FAULT, Fault
from gates.chaos.postgres import ControlledPostgres
from harness.cli_process import run_cli, start_cli
from tests.support.calls import Call
from tests.support.engine_process import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CLIENT_WAIT_SEC = 1.0
DEADLINE_SEC = 15.0
ENGINE_TIMEOUT_SEC = 120.0
FREEZE_HOLD_SEC = 2.0
SLOW_START_ENV = {
    "ARB_WATCHDOG__MARKET_DATA_LAG_WARN_SEC": "30",
    "ARB_WATCHDOG__MARKET_DATA_LAG_ERROR_SEC": "60",
}
"""The watchdog starts before the ccxt source is built, and importing ccxt alone takes 7-9 s on
this loaded 2-core machine: without room for it the run ends on a market-data-lag WARNING."""


def fault(kind: str) -> Fault:
    return Fault(kind, at_sec=0.0, duration_sec=1.0)


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    built = Rig.create(tmp_path_factory.mktemp("rig"))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    """The module's rig, healthy before and after each test (a reset that finds a problem fails the test),
    and no connection of an earlier test still open through its proxies: a client's close reaches the
    proxy a moment later, and a connection fault would count it."""
    assert reset(module_rig) == []
    proxies = (module_rig.pg_proxy, module_rig.redis_proxy)
    wait_for(lambda: all(p.stats().open == 0 for p in proxies), DEADLINE_SEC, "earlier links to close")
    yield module_rig
    assert reset(module_rig) == []


def engine_conn(rig: Rig) -> psycopg.Connection[tuple[Any, ...]]:
    """A client through the PostgreSQL proxy that the pg faults treat as the engine's."""
    return psycopg.connect(
        rig.engine_dsn, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME
    )


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=CLIENT_WAIT_SEC, socket_connect_timeout=CLIENT_WAIT_SEC)


def test_every_fault_kind_has_a_strike_and_a_clear() -> None:
    assert sorted(ACTIONS) == sorted(LIVE_FAULT_KINDS)


def test_an_unknown_or_unavailable_fault_is_refused_with_its_reason(rig: Rig) -> None:
    with pytest.raises(FaultError, match=r"unknown fault kind 'pg-melt'; known: sigterm, sigkill, "):
        strike(rig, fault("pg-melt"))
    saved, rig.disk_full_unavailable = rig.disk_full_unavailable, "disk-full needs a tmpfs evidence root"
    try:
        with pytest.raises(FaultError, match=r"^disk-full needs a tmpfs evidence root$"):
            strike(rig, fault("disk-full"))
    finally:
        rig.disk_full_unavailable = saved
    assert not rig.filler.exists()


def test_an_engine_runs_clean_through_the_rig(rig: Rig) -> None:
    result = run_cli(
        "run", "--ticks", "4", "--seed", "3", *rig.engine_args(),
        env=SLOW_START_ENV, timeout=ENGINE_TIMEOUT_SEC,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    evidence = Path(
        next(x for x in result.stdout.splitlines() if x.startswith("evidence: ")).split(" ", 1)[1]
    )
    assert evidence.parent == rig.evidence_root
    with psycopg.connect(rig.direct_dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT status, exit_code FROM runs WHERE run_id = %s", (evidence.name,)
        ).fetchone()
        events = conn.execute("SELECT count(*) FROM event_log WHERE run_id = %s", (evidence.name,)).fetchone()
    assert row == ("ended", 0)
    assert events is not None and events[0] > 0
    assert rig.pg_proxy.stats().bytes_up > 0 and rig.redis_proxy.stats().bytes_up > 0
    assert rig.sim.stats()["requests"], "the engine read no book from the rig's simulator"


def test_a_fault_reaches_a_live_engines_backends(rig: Rig) -> None:
    env = {**SLOW_START_ENV, "ARB_WARN_POLICY": "continue"}
    engine = rig.engine = start_cli(
        "run", "--duration", "5s", "--seed", "3", *rig.engine_args(),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pg = rig.pg
    assert isinstance(pg, ControlledPostgres), "this test freezes backends of a server it controls"

    def connected() -> bool:
        assert engine.poll() is None, "the engine exited before it connected"
        return bool(pg.backend_pids(APPLICATION_NAME))

    wait_for(connected, ENGINE_TIMEOUT_SEC, "the engine's PostgreSQL connection")

    detail = strike(rig, fault("pg-freeze"))
    with contextlib.suppress(subprocess.TimeoutExpired):
        rig.engine.wait(timeout=FREEZE_HOLD_SEC)
    clear(rig, fault("pg-freeze"))
    stdout, stderr = rig.engine.communicate(timeout=ENGINE_TIMEOUT_SEC)

    assert detail.startswith("froze ") and not detail.startswith("froze 0 "), detail
    assert "Traceback" not in stderr, stderr[-3000:]
    run_id = Path(next(x for x in stdout.splitlines() if x.startswith("evidence: ")).split(" ", 1)[1]).name
    with psycopg.connect(rig.direct_dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row is not None and row[0] in ("ended", "failed"), (row, stderr[-3000:])


@pytest.mark.parametrize("kind", ["sigterm", "sigkill"])
def test_signals_reach_the_engine(rig: Rig, kind: str) -> None:
    rig.engine = subprocess.Popen(["sleep", "60"], text=True)
    assert strike(rig, fault(kind)).startswith(f"{kind.upper()} to pid")
    assert rig.engine.wait(timeout=DEADLINE_SEC) == -(15 if kind == "sigterm" else 9)
    assert clear(rig, fault(kind)) == ""
    assert strike(rig, fault(kind)) == f"engine already exited ({rig.engine.returncode})"


def test_pg_terminate_drops_the_engines_connection(rig: Rig) -> None:
    with engine_conn(rig) as conn:
        conn.execute("SELECT 1")
        assert strike(rig, fault("pg-terminate")) == "terminated 1 backend(s)"
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")


def test_pg_restart_stops_the_server_until_clear(rig: Rig) -> None:
    strike(rig, fault("pg-restart"))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(rig.direct_dsn, connect_timeout=2).close()
    clear(rig, fault("pg-restart"))
    with engine_conn(rig) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pg_freeze_leaves_a_query_unanswered_until_clear(rig: Rig) -> None:
    conn = engine_conn(rig)
    try:
        assert strike(rig, fault("pg-freeze")) == "froze 1 backend(s)"
        call = Call(lambda: conn.execute("SELECT 5").fetchone())
        assert not call.returned_within(CLIENT_WAIT_SEC), "a frozen backend answered"
        clear(rig, fault("pg-freeze"))
        assert call.returned_within(DEADLINE_SEC) and call.result == (5,), call.error
    finally:
        conn.close()


def test_pg_net_reset_breaks_the_connection_and_new_ones_work(rig: Rig) -> None:
    with engine_conn(rig) as conn:
        conn.execute("SELECT 1")
        assert strike(rig, fault("pg-net-reset")).endswith("reset 1 connection(s)")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    clear(rig, fault("pg-net-reset"))
    with engine_conn(rig) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pg_net_blackhole_holds_a_query_and_clear_fails_it(rig: Rig) -> None:
    conn = engine_conn(rig)
    try:
        strike(rig, fault("pg-net-blackhole"))
        call = Call(lambda: conn.execute("SELECT 1").fetchone())
        assert not call.returned_within(CLIENT_WAIT_SEC), "a query crossed the blackhole"
        assert clear(rig, fault("pg-net-blackhole")).endswith("reset 1 connection(s)")
        assert call.returned_within(DEADLINE_SEC)
        assert isinstance(call.error, psycopg.OperationalError), call.error
    finally:
        conn.close()


def test_pg_net_delay_still_answers(rig: Rig) -> None:
    with engine_conn(rig) as conn:
        assert "delay" in strike(rig, fault("pg-net-delay"))
        assert conn.execute("SELECT 1").fetchone() == (1,)
        during = rig.pg_proxy.mode
    clear(rig, fault("pg-net-delay"))
    assert (during, rig.pg_proxy.mode) == ("delay", "pass")


def test_overlapping_network_faults_keep_the_strongest_mode_in_effect(rig: Rig) -> None:
    modes = []
    for action, kind in [
        (strike, "pg-net-blackhole"), (strike, "pg-net-delay"), (strike, "pg-net-reset"),
        (clear, "pg-net-reset"), (clear, "pg-net-blackhole"), (clear, "pg-net-delay"),
    ]:  # fmt: skip
        action(rig, fault(kind))
        modes.append(str(rig.pg_proxy.mode))
    assert modes == ["blackhole", "blackhole", "blackhole", "blackhole", "delay", "pass"]


def test_faults_on_a_server_that_is_down_say_so(rig: Rig) -> None:
    strike(rig, fault("pg-restart"))
    assert strike(rig, fault("pg-freeze")) == "postgres is down: no backend to freeze"
    assert strike(rig, fault("pg-terminate")) == "postgres is down: no backend to terminate"
    strike(rig, fault("redis-kill"))
    assert strike(rig, fault("redis-freeze")) == "redis is down: nothing to freeze"
    assert clear(rig, fault("redis-freeze")) == "redis continued"


def test_redis_freeze_leaves_ping_unanswered_until_clear(rig: Rig) -> None:
    client = redis_client(rig.redis.url)
    try:
        strike(rig, fault("redis-freeze"))
        with pytest.raises(redis.TimeoutError):
            client.ping()
        clear(rig, fault("redis-freeze"))
        assert redis_client(rig.redis.url).ping()
    finally:
        client.close()


def test_redis_kill_refuses_until_clear_restarts_it(rig: Rig) -> None:
    strike(rig, fault("redis-kill"))
    assert not rig.redis.running
    with pytest.raises(redis.ConnectionError):
        redis_client(rig.redis.url).ping()
    clear(rig, fault("redis-kill"))
    assert redis_client(rig.engine_redis_url).ping()


def test_redis_net_blackhole_holds_the_engines_side_only(rig: Rig) -> None:
    through_proxy = redis_client(rig.engine_redis_url)
    assert through_proxy.ping()
    strike(rig, fault("redis-net-blackhole"))
    with pytest.raises(redis.TimeoutError):
        through_proxy.ping()
    assert redis_client(rig.redis.url).ping(), "the blackhole reached the server itself"
    clear(rig, fault("redis-net-blackhole"))
    assert redis_client(rig.engine_redis_url).ping()


@pytest.mark.parametrize("kind", sorted(EXCHANGE_SIM_FAULT))
def test_an_exchange_fault_is_active_until_clear(rig: Rig, kind: str) -> None:
    strike(rig, fault(kind))
    assert rig.sim.stats()["faults"] == [EXCHANGE_SIM_FAULT[kind]]
    clear(rig, fault(kind))
    assert rig.sim.stats()["faults"] == []


@pytest.mark.parametrize("kind", sorted(ORDER_SIM_FAULT))
def test_an_order_fault_combines_with_an_exchange_fault_and_clears_alone(rig: Rig, kind: str) -> None:
    strike(rig, fault("exchange-429"))
    strike(rig, fault(kind))
    assert rig.sim.stats()["faults"] == sorted(["rate_limit", ORDER_SIM_FAULT[kind]])
    clear(rig, fault(kind))
    assert rig.sim.stats()["faults"] == ["rate_limit"]
    clear(rig, fault("exchange-429"))


def test_order_refused_makes_both_venues_refuse_orders_until_clear(rig: Rig) -> None:
    strike(rig, fault("order-refused"))
    assert rig.sim.stats()["reject_orders"] == ["binance", "upbit"]
    clear(rig, fault("order-refused"))
    assert rig.sim.stats()["reject_orders"] == []


def test_two_exchange_faults_combine_and_clear_one_at_a_time(rig: Rig) -> None:
    strike(rig, fault("exchange-429"))
    strike(rig, fault("exchange-latency"))
    strike(rig, fault("exchange-stale"))
    assert rig.sim.stats()["faults"] == ["rate_limit", "stale"]
    assert rig.sim.stats()["latency_ms"] == EXCHANGE_LATENCY_MS
    clear(rig, fault("exchange-429"))
    clear(rig, fault("exchange-latency"))
    state = rig.sim.stats()
    assert (state["faults"], state["latency_ms"]) == (["stale"], 0)


def test_disk_full_makes_evidence_writes_fail_until_clear(rig: Rig) -> None:
    if rig.disk_full_unavailable is not None:
        pytest.skip(rig.disk_full_unavailable)
    probe = rig.evidence_root / "probe.bin"
    strike(rig, fault("disk-full"))
    with pytest.raises(OSError) as refused:
        probe.write_bytes(b"x" * 65536)
    assert refused.value.errno == errno.ENOSPC
    clear(rig, fault("disk-full"))
    probe.write_bytes(b"x" * 65536)
    probe.unlink()


def test_reset_heals_every_fault_at_once_and_is_quiet_when_healthy(rig: Rig) -> None:
    kinds = ["pg-freeze", "pg-restart", "pg-net-blackhole", "redis-freeze", "redis-kill", "exchange-timeout"]
    if rig.disk_full_unavailable is None:
        kinds.append("disk-full")
    conn = engine_conn(rig)
    for kind in kinds:
        strike(rig, fault(kind))
    conn.close()

    assert reset(rig) == []

    assert reset(rig) == []
    with engine_conn(rig) as fresh:
        assert fresh.execute("SELECT 1").fetchone() == (1,)
    assert redis_client(rig.engine_redis_url).ping()
    assert rig.sim.stats()["faults"] == []
    assert not rig.filler.exists()
