"""A run that cannot be set up: PostgreSQL or Redis refuses the run's registration at start-up.

Found by chaos (seed 1, run 93: the Redis link blackholed at start-up): the registration failed
after the evidence directory existed, and the run sealed a `failed` manifest with only its
journal, no kpi, summary or heartbeat. A run that refused to start must either leave no
evidence directory at all (PostgreSQL refused, so there is no run to account for) or the whole
minimum set saying why (Redis refused, after the run was registered in PostgreSQL). Here the
refusals are real: a PostgreSQL trigger that refuses new `runs` rows, a Redis ACL user that may only read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from evidence import names
from evidence.completeness import check_completeness
from gates.chaos.checker import LedgerAudit
from tests.support.controlled_pg import ControlledPostgres
from tests.support.ledger_audit import EngineRun, tracebacks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def read_only_redis(redis_url: str) -> Iterator[str]:
    """A URL for a Redis user that may only read: the preflight passes, the run's registration is refused."""
    admin = redis.Redis.from_url(redis_url)
    user, password = f"pinger_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], commands=["+@read", "+ping"], keys=["*"]
    )
    parts = urlsplit(redis_url)
    host = "" if parts.scheme == "unix" else f"{parts.hostname}:{parts.port}"
    netloc = f"{user}:{password}@{host}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    finally:
        admin.acl_deluser(user)
        admin.close()


@pytest.fixture
def refusing_runs(controlled_pg: ControlledPostgres) -> str:
    """The fault database, with a trigger that makes PostgreSQL refuse every new `runs` row."""
    with psycopg.connect(controlled_pg.dsn, autocommit=True) as owner:
        owner.execute(
            "CREATE FUNCTION refuse_runs() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'runs are closed for maintenance'; END $$"
        )
        owner.execute(
            "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION refuse_runs()"
        )
    return controlled_pg.dsn


def test_redis_refusing_the_registration_leaves_the_whole_minimum_set(
    controlled_pg: ControlledPostgres, read_only_redis: str, tmp_path: Path
) -> None:
    run = EngineRun.start(tmp_path, controlled_pg.dsn, read_only_redis, "--duration", "20s")
    code = run.finish(timeout=90)

    assert code == 1
    assert tracebacks(run.stdout, run.stderr) == [], run.stderr
    refusals = [line for line in run.stderr.splitlines() if "refused the run registration" in line]
    assert len(refusals) == 1 and refusals[0].startswith("arbitrage: redis refused"), run.stderr
    run_dir = run.run_dir
    for name in names.MINIMUM_SET:
        assert (run_dir / name).stat().st_size > 0, name
    assert not check_completeness(run_dir).failed, check_completeness(run_dir).detail
    summary = json.loads((run_dir / names.CHAIN_SUMMARY).read_text())
    assert (summary["stop_reason"], summary["exit_code"], summary["closed_trades"]) == (
        "BOOTSTRAP_FAILED",
        1,
        0,
    )
    manifest = json.loads((run_dir / names.MANIFEST).read_text())
    assert manifest["status"] == "failed"
    audit = LedgerAudit.of(controlled_pg.dsn, run_dir)
    assert audit.lost() == []
    assert audit.unexplained(killed=False) == []
    assert audit.run_row is not None and audit.run_row[:2] == ("failed", 1)
    with psycopg.connect(controlled_pg.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT stop_reason FROM runs WHERE run_id = %s", (run.run_id,)).fetchone()
    assert row == ("BOOTSTRAP_FAILED",)


def test_postgres_refusing_the_registration_leaves_no_run_behind(
    refusing_runs: str, redis_url: str, tmp_path: Path
) -> None:
    run = EngineRun.start(tmp_path, refusing_runs, redis_url, "--duration", "20s")
    code = run.finish(timeout=90)

    assert code == 1
    assert tracebacks(run.stdout, run.stderr) == [], run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("arbitrage: postgres refused the run registration: "), run.stderr
    assert "runs are closed for maintenance" in lines[-1]
    assert "evidence: " not in run.stdout
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
    with psycopg.connect(refusing_runs, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
