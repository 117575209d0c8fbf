"""The pytest plugin entry point (``pytest11: arbitrage_harness``): registration only.

Options live in :mod:`harness.options`; the stateful parts are plugin objects registered here
and reachable through typed ``pytest.StashKey``s; fixtures live beside what they manage.
"""

from __future__ import annotations

import pytest

from harness import durations, engine_fixture, longrun, services, warnfail
from harness.longrun import LongrunPlugin
from harness.options import SETTINGS_KEY, add_options, resolve_settings
from harness.sigterm import SigtermPlugin
from harness.summary import SUMMARY_KEY, SummaryPlugin
from harness.warnfail import WARNFAIL_KEY, WarnFailPlugin

MARKERS = (
    "slow: takes more than a few seconds (long engine runs); part of regression, not of fast",
    "integration: starts real services or subprocesses (PostgreSQL, Redis, the engine, the simulator)",
    longrun.MARKER_HELP,
    warnfail.MARKER_HELP,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    durations.add_options(parser.getgroup("arbitrage"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[SETTINGS_KEY] = resolve_settings(config)
    config.stash[WARNFAIL_KEY] = WarnFailPlugin(in_process=config.stash[SETTINGS_KEY].warnfail)
    config.stash[SUMMARY_KEY] = SummaryPlugin()
    config.pluginmanager.register(config.stash[WARNFAIL_KEY], "arbitrage_harness.warnfail")
    config.pluginmanager.register(config.stash[SUMMARY_KEY], "arbitrage_harness.summary")
    config.pluginmanager.register(LongrunPlugin(config), "arbitrage_harness.longrun")
    config.pluginmanager.register(longrun, "arbitrage_harness.longrun_fixtures")
    config.pluginmanager.register(services, "arbitrage_harness.services")
    config.pluginmanager.register(engine_fixture, "arbitrage_harness.engine")
    config.pluginmanager.register(SigtermPlugin(), "arbitrage_harness.sigterm")
    durations.register(config)
