"""Canary: recognizable fake exchange keys go in through the environment of every command that
can see them, and must come out nowhere: not in stdout/stderr, the evidence or any file the
commands wrote, Redis, or any PostgreSQL table. The search itself is proven able to find a
planted canary in each of those places."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest
import redis
from psycopg import sql

from arbitrage.ledger import Ledger, connect
from arbitrage.ops.live_arm import ARM_ACK_VALUE, KEY_VARS
from arbitrage.services import ServiceEndpoints
from harness.cli_process import run_cli
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration

MARK = "CANARY7f3e"
CANARY = {name: f"{MARK}-{name}-{secrets.token_hex(4)}" for name in KEY_VARS}


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "cn")


def in_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and MARK.encode() in p.read_bytes()]


def in_redis(url: str) -> list[str]:
    found: list[str] = []
    with redis.Redis.from_url(url, decode_responses=True, socket_timeout=2) as client:
        for key in client.scan_iter(count=500):
            kind = client.type(key)
            value = {
                "string": client.get, "hash": client.hgetall, "set": client.smembers,
                "list": lambda k: client.lrange(k, 0, -1), "zset": lambda k: client.zrange(k, 0, -1),
            }.get(str(kind), lambda k: "")(key)  # fmt: skip
            if MARK in f"{key} {value}":
                found.append(str(key))
    return found


def in_postgres(dsn: str) -> list[str]:
    found: list[str] = []
    with connect(dsn, 5.0, 5000) as conn:
        listed = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in listed]
        for table in tables:
            query = sql.SQL("SELECT count(*) FROM {} t WHERE t::text LIKE %s").format(sql.Identifier(table))
            row = conn.execute(query, (f"%{MARK}%",)).fetchone()
            if row and row[0]:
                found.append(table)
    return found


def arbitrage(tmp_path: Path, *args: str, armed: bool = True) -> subprocess.CompletedProcess[str]:
    env = CANARY | {"ARB_SERVICES__DATA_DIR": str(tmp_path / "never-used")}
    if armed:
        env.update(
            LIVE_ARM_ACK=ARM_ACK_VALUE, LIVE_ARM_AT=str(int(time.time())), LIVE_MAX_NOTIONAL_USD="50",
            ARBITRAGE_ENV="live",
        )  # fmt: skip
    return run_cli(*args, env=env, timeout=180, cwd=tmp_path)


def test_fake_keys_leak_nowhere(tmp_path: Path, dsn: str, server: ServiceEndpoints) -> None:
    where = ("--postgres-dsn", dsn, "--redis-url", server.redis_url)
    evidence = ("--evidence-root", str(tmp_path / "evidence"))
    live_preflight = ("preflight", "--mode", "live", "--output")
    outputs = [
        arbitrage(
            tmp_path, "run", "--ticks", "300", "--seed", "7", "--log-format", "json", *evidence, *where
        ),
        arbitrage(tmp_path, *live_preflight, str(tmp_path / "preflight.json"), *where),
        arbitrage(tmp_path, "run", "--mode", "live", "--ticks", "20", *evidence, *where),
        arbitrage(tmp_path, "kill-switch", "deactivate", "--reason", "canary", "--by", "pytest", *where),
        arbitrage(tmp_path, *live_preflight, str(tmp_path / "preflight2.json"), *where),
        arbitrage(tmp_path, "kill-switch", "activate", "--reason", "canary done", "--by", "pytest", *where),
    ]
    assert [done.returncode for done in outputs] == [0, 1, 1, 0, 0, 0], [o.stderr[-500:] for o in outputs]
    assert (tmp_path / "preflight2.json").exists() and list((tmp_path / "evidence").iterdir())
    for done in outputs:
        assert MARK not in done.stdout + done.stderr
    assert in_files(tmp_path) == []
    assert in_redis(server.redis_url) == []
    assert in_postgres(dsn) == []
    assert not (tmp_path / "never-used").exists()


def test_the_search_finds_a_planted_canary(tmp_path: Path, dsn: str, server: ServiceEndpoints) -> None:
    (tmp_path / "deep" / "dir").mkdir(parents=True)
    (tmp_path / "deep" / "dir" / "engine.log").write_text(f"key={CANARY['BINANCE_API_SECRET']}\n")
    key = f"canary-test:{secrets.token_hex(4)}"
    with redis.Redis.from_url(server.redis_url, decode_responses=True) as client:
        client.hset(key, mapping={"leak": CANARY["UPBIT_SECRET_KEY"]})
        try:
            assert in_redis(server.redis_url) == [key]
        finally:
            client.delete(key)
    ledger = Ledger(dsn)
    ledger.open()
    assert ledger.record_event(None, "LEAK", {"nested": {"key": CANARY["UPBIT_ACCESS_KEY"]}})
    ledger.close()
    assert in_files(tmp_path) == [str(tmp_path / "deep" / "dir" / "engine.log")]
    assert in_postgres(dsn) == ["event_log"]
