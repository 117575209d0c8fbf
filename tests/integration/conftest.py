"""Fixtures shared by the integration tests that need PostgreSQL and Redis.

There is one embedded-services stack: the harness's session servers (``postgres_server``,
``redis_url``). Every module here sees them through a Redis key prefix of its own, and a
database of its own through ``server``;
tests whose point is a server they start, stop or freeze (the fault suite, chaos, the embedded
orphan tests) keep servers of their own instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arbitrage.ledger import Ledger
from arbitrage.services import ServiceEndpoints
from harness.cli_process import KEY_PREFIX_VAR
from harness.services import external_postgres
from tests.support.databases import drop_databases_made_from
from tests.support.engine_process import stop_leftover_engines


@pytest.fixture(scope="module", autouse=True)
def module_key_prefix(redis_key_prefix: str) -> Iterator[str]:
    """Every module's own Redis key prefix, set in the environment every engine and command the
    module starts inherits, so no key (the kill switch's cache, the run registry, heartbeats) is
    seen by another module: a live preflight in one module never counts another's engines."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_PREFIX_VAR, redis_key_prefix)
        yield redis_key_prefix


@pytest.fixture(autouse=True)
def no_engine_outlives_its_test() -> Iterator[None]:
    """Kill what a failed test left of its `tests.support` engines, so none runs on into the next."""
    yield
    stop_leftover_engines()


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, postgres_dsn: str, redis_url: str, module_key_prefix: str
) -> Iterator[ServiceEndpoints]:
    """The session's PostgreSQL and Redis as this module's own: a database of its own, and Redis
    under the module's key prefix. The databases made from the module's are dropped with it on a
    server that outlives the session."""
    yield ServiceEndpoints(postgres_dsn, redis_url)
    if external_postgres(request.config):
        drop_databases_made_from(postgres_dsn)


@pytest.fixture
def ledger(dsn: str) -> Iterator[Ledger]:
    """The engine's ledger, schema created, on the module's `dsn` fixture."""
    opened = Ledger(dsn)
    opened.open()
    yield opened
    opened.close()
