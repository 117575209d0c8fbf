"""Longest modules first: the regression gate's schedule, from the seconds each module took last time.

Under ``-n N --dist loadscope --no-loadscope-reorder``, xdist hands whole modules to workers in
collection order, so sorting the modules by their recorded seconds, longest first, is the classic
longest-processing-time schedule: the last module to start is a short one, and no worker is left
running a long module after the others are done. A module keeps its own test order, and stays on
one worker, so its module-scoped fixtures (a database, a simulator, a shared engine run) are made
once. A module the record does not know yet goes first, since it may be long.

``--record-durations PATH`` writes the record (each module's setup, call and teardown seconds
summed) at the end of a run; ``--order-by-durations PATH`` reads it, and at the end of the run
names the modules the record no longer fits: those it does not hold and those that took over twice
their recorded seconds and at least 20 s, which a longest-first schedule may leave running after
the others are done.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

RECORD_OPTION = "--record-durations"
ORDER_OPTION = "--order-by-durations"
SLOWER_FACTOR = 2.0
SLOWER_FLOOR_SEC = 20.0
"""A module outgrew the record when it took over SLOWER_FACTOR times its recorded seconds and at
least SLOWER_FLOOR_SEC. Under 6 workers on 2 cores a module of a few seconds alone took up to 17 s
when it met the heavy ones, so shorter modules are left to the 25 slowest tests' list."""


def module_of(nodeid: str) -> str:
    """The test module's path in a node id (`tests/x/test_y.py::test_z[p]` -> `tests/x/test_y.py`)."""
    return nodeid.split("::", 1)[0]


def load_record(path: Path) -> dict[str, float]:
    """Seconds by module from a record; a missing or unreadable record orders nothing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


def longest_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """`items` with their modules in descending recorded seconds (unknown modules first), each
    module's tests in their own order."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(module_of(item.nodeid), []).append(item)
    order = sorted(modules, key=lambda module: -seconds.get(module, float("inf")))
    return [item for module in order for item in modules[module]]


def outgrown(recorded: dict[str, float], measured: dict[str, float]) -> tuple[list[str], list[str]]:
    """(modules the record does not hold, modules that outgrew it as `module (R s recorded, M s now)`),
    each sorted, for the modules in `measured`."""
    unknown = sorted(module for module in measured if module not in recorded)
    slower = [
        f"{module} ({recorded[module]:.1f} s recorded, {seconds:.1f} s now)"
        for module, seconds in sorted(measured.items())
        if module in recorded and seconds >= SLOWER_FLOOR_SEC and seconds > SLOWER_FACTOR * recorded[module]
    ]
    return unknown, slower


def _sum_phases(seconds: defaultdict[str, float], report: pytest.TestReport) -> None:
    seconds[module_of(report.nodeid)] += report.duration


class DurationRecorder:
    """Sums each module's test phases as their reports arrive (under xdist, on the controller, from
    every worker) and writes the record when the session ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        _sum_phases(self.seconds, report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.seconds:
            return
        ordered = {module: round(self.seconds[module], 1) for module in sorted(self.seconds)}
        self.path.write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")


class DurationOrder:
    """Reorders the collected tests longest module first, and says at the end which modules the
    record no longer fits (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds = load_record(path)
        self.measured: defaultdict[str, float] = defaultdict(float)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items[:] = longest_first(items, self.seconds)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        _sum_phases(self.measured, report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        unknown, slower = outgrown(self.seconds, self.measured)
        if not unknown and not slower:
            return
        terminalreporter.write_sep("-", f"duration record {self.path}")
        if unknown:
            terminalreporter.write_line(f"not in the record (they ran first): {', '.join(unknown)}")
        if slower:
            terminalreporter.write_line(
                f"over {SLOWER_FACTOR:g}x their recorded seconds: {'; '.join(slower)}"
            )
        terminalreporter.write_line(f"refresh the record with {RECORD_OPTION} {self.path}")


def add_options(group: pytest.OptionGroup) -> None:
    """The two options: write a record, and order a run by one."""
    group.addoption(
        RECORD_OPTION, metavar="PATH", type=Path, default=None,
        help="write each test module's total seconds to PATH (JSON) at the end of the run",
    )  # fmt: skip
    group.addoption(
        ORDER_OPTION, metavar="PATH", type=Path, default=None,
        help="run test modules longest first by the seconds recorded in PATH (see --record-durations)",
    )  # fmt: skip


def register(config: pytest.Config) -> None:
    """Register the recorder and the ordering when their options are given."""
    record: Path | None = config.getoption(RECORD_OPTION)
    order: Path | None = config.getoption(ORDER_OPTION)
    if record is not None and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(record), "arbitrage_harness.duration_record")
    if order is not None:
        config.pluginmanager.register(DurationOrder(order), "arbitrage_harness.duration_order")
