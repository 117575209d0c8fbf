"""Fixtures shared by the integration tests that need a PostgreSQL and Redis of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arbitrage.ledger import Ledger
from arbitrage.services import EmbeddedServices, ServiceEndpoints


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoints]:
    """Real embedded PostgreSQL and Redis private to one test module (its Redis keys included)."""
    services = EmbeddedServices(tmp_path_factory.mktemp("svc"))
    try:
        yield services.resolve(None, None)
    finally:
        services.stop()


@pytest.fixture
def ledger(dsn: str) -> Iterator[Ledger]:
    """The engine's ledger, schema created, on the module's `dsn` fixture."""
    opened = Ledger(dsn)
    opened.open()
    yield opened
    opened.close()
