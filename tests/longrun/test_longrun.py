"""D77-4 main run: a 60-minute soak (``--longrun-minutes`` replaces the duration)."""

from __future__ import annotations

import pytest

from harness.engine import EngineLauncher
from harness.longrun import LongrunPlan
from tests.support.engine_runs import soak

pytestmark = pytest.mark.longrun(minutes=60, phase="longrun")


def test_longrun(engine: EngineLauncher, longrun_plan: LongrunPlan, postgres_dsn: str) -> None:
    soak(engine, longrun_plan, postgres_dsn, seed=11)
