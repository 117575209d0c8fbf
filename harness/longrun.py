"""``@pytest.mark.longrun``: scaled durations, timeouts derived from them, and the D77-4 sequence.

Scaling rule: ``--longrun-minutes N`` replaces every longrun marker's ``minutes`` with N (it does
not multiply), so ``-m longrun --longrun-minutes 2`` runs each soak for exactly two minutes.
Runs of 10 minutes or more beat every 60 s, the engine's default; shorter ones every 10 s so the
heartbeat invariant still sees several beats.

D77-4 sequence: a smoke run gates the soaks. Longrun tests are moved after every other test,
and once a test that ran a ``smoke``-phase engine has failed, the remaining longrun tests of the
session are skipped with that failure as the reason. Under pytest-xdist this holds per worker.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Final

import pytest

from harness.options import SETTINGS_KEY, HarnessSettings

MARKER: Final = "longrun"
MARKER_HELP: Final = (
    "longrun(minutes, phase): an engine soak of `minutes` (replaced by --longrun-minutes) in engine "
    "phase `phase` (smoke|baseline|longrun); skipped when a smoke run failed earlier in the session."
)
PHASES: Final = ("smoke", "baseline", "longrun")
LONG_RUN_MINUTES: Final = 10.0
LONG_HEARTBEAT_SECONDS: Final = 60.0
SHORT_HEARTBEAT_SECONDS: Final = 10.0
ENGINE_WAIT_MARGIN_SECONDS: Final = 120.0
TIMEOUT_MARGIN_SECONDS: Final = 240.0


@dataclass(frozen=True)
class LongrunPlan:
    """How long one longrun test's engine runs, how often it beats, and how long pytest allows."""

    phase: str
    minutes: float
    marker_minutes: float
    heartbeat_interval: float

    @property
    def duration_seconds(self) -> float:
        return self.minutes * 60.0

    @property
    def wait_timeout(self) -> float:
        """Seconds to wait for the engine to exit on its own."""
        return self.duration_seconds + ENGINE_WAIT_MARGIN_SECONDS

    @property
    def timeout_seconds(self) -> float:
        """The pytest-timeout budget for the whole test: the engine wait plus services and checks."""
        return math.ceil(self.wait_timeout + TIMEOUT_MARGIN_SECONDS)

    def engine_args(self) -> list[str]:
        """``arbitrage run`` arguments for this plan."""
        return [
            "--phase", self.phase,
            "--duration", f"{self.duration_seconds:g}s",
            "--heartbeat-interval", f"{self.heartbeat_interval:g}",
        ]  # fmt: skip


def plan_for(item: pytest.Item, settings: HarnessSettings) -> LongrunPlan | None:
    """The plan of a longrun-marked test, or None; a malformed marker is a usage error."""
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None
    kwargs = dict(zip(("minutes", "phase"), mark.args, strict=False)) | dict(mark.kwargs)
    minutes, phase = kwargs.get("minutes"), kwargs.get("phase")
    problem = None
    if len(mark.args) > 2 or set(kwargs) - {"minutes", "phase"}:
        problem = "takes (minutes, phase)"
    elif isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes < math.inf:
        problem = f"minutes={minutes!r} must be a positive number"
    elif phase not in PHASES:
        problem = f"phase={phase!r} must be one of {', '.join(PHASES)}"
    if problem is not None:
        raise pytest.UsageError(f"invalid @pytest.mark.{MARKER} on {item.nodeid}: {problem}")
    assert isinstance(minutes, int | float) and isinstance(phase, str)
    effective = settings.longrun_minutes if settings.longrun_minutes is not None else float(minutes)
    interval = LONG_HEARTBEAT_SECONDS if effective >= LONG_RUN_MINUTES else SHORT_HEARTBEAT_SECONDS
    return LongrunPlan(phase, effective, float(minutes), interval)


ENGINE_PHASES_KEY: Final = pytest.StashKey[set[str]]()
"""Engine phases a test has started; a failed test with ``smoke`` among them gates the soaks."""


def note_engine_phase(item: pytest.Item, phase: str) -> None:
    """Record that ``item`` started an engine run in ``phase``."""
    item.stash.setdefault(ENGINE_PHASES_KEY, set()).add(phase)


class LongrunPlugin:
    """Orders, times and gates longrun tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.smoke_failures: list[str] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        settings = self.config.stash[SETTINGS_KEY]
        has_timeout = self.config.pluginmanager.hasplugin("timeout")
        soaks: list[pytest.Item] = []
        others: list[pytest.Item] = []
        for item in items:
            plan = plan_for(item, settings)
            if plan is None:
                others.append(item)
                continue
            soaks.append(item)
            if has_timeout and item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(plan.timeout_seconds))
        items[:] = others + soaks

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.smoke_failures and item.get_closest_marker(MARKER) is not None:
            pytest.skip(
                f"D77-4 sequence: the smoke run failed earlier in this session: {self.smoke_failures[0]}"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and "smoke" in item.stash.get(ENGINE_PHASES_KEY, set()):
            crash = getattr(report.longrepr, "reprcrash", None)
            lines = report.longreprtext.strip().splitlines()
            reason = str(getattr(crash, "message", "")) or (lines[-1] if lines else "failed")
            self.smoke_failures.append(f"{item.nodeid} ({report.when}): {reason.splitlines()[0][:200]}")
        return report


@pytest.fixture
def longrun_plan(request: pytest.FixtureRequest) -> LongrunPlan:
    """The plan of the requesting test's ``@pytest.mark.longrun``."""
    plan = plan_for(request.node, request.config.stash[SETTINGS_KEY])
    if plan is None:
        pytest.fail(
            f"{request.node.nodeid} uses longrun_plan but has no @pytest.mark.{MARKER}", pytrace=False
        )
    return plan
