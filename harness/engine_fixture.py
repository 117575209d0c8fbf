"""The ``engine`` fixture as the plugin registers it.

The engine machinery (:mod:`harness.engine`, and the evidence reader and monitor under it) took
about a quarter of a second to import, about a third of a pytest process's start. It loads with
the first test that asks for an engine, so the pytest processes that start none (the harness's own
inner sessions, the unit tests' workers) never pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.engine import EngineLauncher


@pytest.fixture
def engine(
    request: pytest.FixtureRequest, postgres_dsn: str, redis_url: str, redis_key_prefix: str
) -> Iterator[EngineLauncher]:
    """Factory of EngineProcess for this test; every process is stopped and summarised at teardown."""
    from harness.engine import launcher_for_test

    yield from launcher_for_test(request, postgres_dsn, redis_url, redis_key_prefix)
