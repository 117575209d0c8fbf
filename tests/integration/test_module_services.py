"""The integration `server` fixture: the session's servers, a database and a key prefix per module.

Modules share one PostgreSQL and one Redis, so what one module leaves (a tripped kill switch's
cached state, registered runs, heartbeats, databases) must stay where only it looks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict

from arbitrage.services import ServiceEndpoints
from harness.cli_process import KEY_PREFIX_VAR, run_cli
from tests.support.databases import drop_databases_made_from, fresh_database

pytestmark = pytest.mark.integration


def databases(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {str(row[0]) for row in conn.execute("SELECT datname FROM pg_database")}


def test_an_engine_command_writes_the_kill_switch_under_the_modules_prefix(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    prefix = os.environ[KEY_PREFIX_VAR]
    assert prefix != "arb" and prefix.startswith("arbtest:")
    dsn = fresh_database(server.postgres_dsn, "ks")
    command = (
        "kill-switch", "activate", "--reason", "module prefix",
        "--by", "pytest", "--postgres-dsn", dsn, "--redis-url", server.redis_url,
    )  # fmt: skip
    with redis.Redis.from_url(server.redis_url, decode_responses=True) as client:
        assert client.get(f"{prefix}:kill_switch") is None
        done = run_cli(*command, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        cached = client.get(f"{prefix}:kill_switch")
    assert isinstance(cached, str) and json.loads(cached)["state"] == "ACTIVE"


def test_the_module_database_is_its_own_and_what_is_made_from_it_is_dropped(server: ServiceEndpoints) -> None:
    own = str(conninfo_to_dict(server.postgres_dsn)["dbname"])
    assert own not in ("postgres", "template1")
    parent = fresh_database(server.postgres_dsn, "parent", with_schema=False)
    child = fresh_database(parent, "child", with_schema=False)
    sibling = fresh_database(server.postgres_dsn, "sibling", with_schema=False)
    names = {
        key: str(conninfo_to_dict(dsn)["dbname"])
        for key, dsn in (("p", parent), ("c", child), ("s", sibling))
    }
    held = psycopg.connect(child, autocommit=True)
    try:
        assert drop_databases_made_from(parent) == [names["c"]]
    finally:
        held.close()
    left = databases(server.postgres_dsn)
    assert names["c"] not in left and {own, names["p"], names["s"]} <= left
    assert {names["p"], names["s"]} <= set(drop_databases_made_from(server.postgres_dsn))
    assert not {names["p"], names["s"]} & databases(server.postgres_dsn)
