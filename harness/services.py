"""Service fixtures: PostgreSQL, Redis and the exchange simulator, real and isolated.

The servers are session-scoped and, when no external one is configured, embedded real servers
that every pytest-xdist worker of the session shares (their data directory sits in the basetemp
all workers have in common, the layout pytest-xdist recommends). Isolation is per test module:
a fresh database in ``postgres_dsn`` and a unique key prefix in ``redis_key_prefix``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.options import SETTINGS_KEY

if TYPE_CHECKING:
    from harness.exchange_sim.client import SimProcess


def worker_id() -> str:
    """The pytest-xdist worker name (``gw0``...), or ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that every xdist worker of this session, and only this session, resolves to.

    It is keyed by the basetemp the workers share but lives directly under the system temp dir:
    pytest keeps ``pytest-of-<user>`` at mode 0700, which the unprivileged user PostgreSQL runs
    as (when pytest runs as root) cannot traverse, and Unix socket paths must stay short.
    """
    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent
    digest = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"arb-svc-{digest}"
    path.mkdir(exist_ok=True)
    return path


def _remove(data_dir: Path) -> None:
    """Delete a stopped server's data, and the session's service dir once it is empty."""
    shutil.rmtree(data_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        data_dir.parent.rmdir()


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[-limit:].strip("_") or "m"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop embedded servers whose owners (killed engines, killed test sessions) are all gone."""
    from arbitrage.service_registry import RegistryError, sweep_orphaned_servers

    with contextlib.suppress(RegistryError):
        sweep_orphaned_servers()


@pytest.fixture(scope="session")
def postgres_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Admin DSN of the session's PostgreSQL: ``--postgres-dsn`` if configured, else embedded."""
    configured = request.config.stash[SETTINGS_KEY].postgres_dsn
    if configured is not None:
        yield configured
        return
    from arbitrage.services import EmbeddedPostgres

    data_dir = shared_dir(tmp_path_factory) / "postgres"
    server = EmbeddedPostgres(data_dir)
    dsn = server.start()
    if "PYTEST_XDIST_WORKER" in os.environ:
        _skip_fsync(dsn)
    try:
        yield dsn
    finally:
        server.stop()
        if not (data_dir / "postmaster.pid").exists():
            _remove(data_dir)


def _skip_fsync(dsn: str) -> None:
    """Turn fsync off on a parallel session's own embedded server, whose data directory is deleted
    at the end: its shutdown checkpoint, paid by whichever worker finishes last, took 10-17 s at
    the end of every 6-worker regression run. Killing a server process loses nothing either way
    (the page cache survives it); only an operating-system crash would, and no test makes one. The
    tests that stop, freeze or kill a server keep servers of their own, with fsync on, and a
    serial session (a soak) keeps it on too, so its commits cost what they would in production."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")


def external_postgres(config: pytest.Config) -> bool:
    """Whether the session's PostgreSQL is a configured one, which outlives the session.

    Only there are a module's databases worth dropping: an embedded server's data directory goes
    when the session ends, and each DROP DATABASE forces a checkpoint (about a second on a loaded
    machine), more than creating the database took.
    """
    return config.stash[SETTINGS_KEY].postgres_dsn is not None


@pytest.fixture(scope="module")
def postgres_dsn(request: pytest.FixtureRequest, postgres_server: str) -> Iterator[str]:
    """DSN of a database created for this test module alone (dropped when the module is done if
    the server outlives the session)."""
    import psycopg
    from psycopg import conninfo, sql

    module = _slug(request.node.nodeid, 30)
    name = f"arb_{_slug(worker_id(), 8)}_{module}_{secrets.token_hex(4)}"[:63]
    with psycopg.connect(postgres_server, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield conninfo.make_conninfo(postgres_server, dbname=name)
    if external_postgres(request.config):
        with psycopg.connect(postgres_server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's Redis: ``--redis-url`` if configured, else an embedded real server."""
    configured = request.config.stash[SETTINGS_KEY].redis_url
    if configured is not None:
        yield configured
        return
    from arbitrage.services import EmbeddedRedis

    data_dir = shared_dir(tmp_path_factory) / "redis"
    server = EmbeddedRedis(data_dir)
    with warnings.catch_warnings():
        # The server is detached on purpose and outlives the Popen object that started it.
        warnings.filterwarnings("ignore", r"subprocess \d+ is still running", ResourceWarning)
        url = server.start()
    try:
        yield url
    finally:
        server.stop()
        if not server.socket_path.exists():
            _remove(data_dir)


@pytest.fixture(scope="module")
def redis_key_prefix(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test module; its keys are deleted when the module is done."""
    import redis

    prefix = f"arbtest:{worker_id()}:{_slug(request.node.nodeid, 30)}:{secrets.token_hex(4)}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def exchange_sim_server(request: pytest.FixtureRequest) -> Iterator[SimProcess]:
    """One simulator per session (per xdist worker), on its own free port."""
    from harness.exchange_sim.client import SimUnavailable, start_exchange_sim

    try:
        sim = start_exchange_sim("--seed", "7", cwd=request.config.rootpath)
    except SimUnavailable as exc:
        pytest.skip(f"`arbitrage sim` is not available in this build yet: {exc}")
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def exchange_sim(exchange_sim_server: SimProcess) -> Iterator[SimProcess]:
    """The session's simulator with no faults set, and its faults cleared again afterwards."""
    exchange_sim_server.clear()
    yield exchange_sim_server
    exchange_sim_server.clear()
