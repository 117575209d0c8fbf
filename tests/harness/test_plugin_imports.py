"""Loading the harness's pytest plugins loads none of the engine machinery.

Every pytest process loads them: the xdist workers and the harness's own inner sessions, most of
which start no engine. The engine launcher, the evidence models and the engine's config load with
the first fixture that needs them. Each check runs in a fresh interpreter, because this process has
long since imported all of them.
"""

from __future__ import annotations

from tests.support.fresh_interpreter import modules_after

PLUGINS = "import harness.plugin, gates.chaos.fixture"
DEFERRED = ("harness.engine", "harness.monitor", "evidence.documents", "arbitrage.config", "psycopg", "redis")


def loaded(code: str) -> list[str]:
    """Which of DEFERRED `code` leaves in sys.modules of a fresh interpreter."""
    modules = modules_after(code)
    return [name for name in DEFERRED if name in modules]


def test_the_plugins_load_no_engine_machinery() -> None:
    assert loaded(PLUGINS) == []


def test_the_probe_sees_what_the_engine_fixture_loads() -> None:
    assert loaded(f"{PLUGINS}\nimport harness.engine") == [
        "harness.engine", "harness.monitor", "evidence.documents", "arbitrage.config",
    ]  # fmt: skip
