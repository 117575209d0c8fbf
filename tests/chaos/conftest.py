"""Fixtures of the chaos machinery's tests: a PostgreSQL of their own on 127.0.0.1 TCP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gates.chaos.postgres import ControlledPostgres


@pytest.fixture(scope="module")
def tcp_postgres() -> Iterator[ControlledPostgres]:
    """A controlled PostgreSQL per test module (TCP, so a proxy can sit in front of it)."""
    server = ControlledPostgres.create()
    try:
        yield server
    finally:
        server.close()
