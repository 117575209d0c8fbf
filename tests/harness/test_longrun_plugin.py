"""@pytest.mark.longrun: marker durations, --longrun-minutes scaling, timeouts and ordering."""

from __future__ import annotations

import pytest

from tests.harness.outcomes import outcomes, run_inner

pytest_plugins = ["pytester"]

PLANS = """
import pytest

@pytest.mark.longrun(minutes=60, phase="longrun")
def test_a_soak(longrun_plan, request):
    print("PLAN", longrun_plan.phase, longrun_plan.minutes, longrun_plan.heartbeat_interval,
          longrun_plan.engine_args(), request.node.get_closest_marker("timeout").args)

@pytest.mark.longrun(20, "baseline")
def test_b_baseline(longrun_plan, request):
    print("PLAN", longrun_plan.phase, longrun_plan.minutes, longrun_plan.heartbeat_interval,
          longrun_plan.engine_args(), request.node.get_closest_marker("timeout").args)

@pytest.mark.longrun(minutes=20, phase="baseline")
@pytest.mark.timeout(5)
def test_c_own_timeout(request):
    print("PLAN own timeout", request.node.get_closest_marker("timeout").args)

def test_z_plain():
    pass
"""


def _plans(result: pytest.RunResult) -> list[str]:
    return [line.split("PLAN ", 1)[1] for line in result.outlines if "PLAN " in line]


def test_marker_minutes_drive_duration_heartbeat_and_timeout(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLANS)
    result = run_inner(pytester, "-s")
    assert result.ret == pytest.ExitCode.OK
    assert _plans(result) == [
        "longrun 60.0 60.0 ['--phase', 'longrun', '--duration', '3600s', "
        "'--heartbeat-interval', '60'] (3960,)",
        "baseline 20.0 60.0 ['--phase', 'baseline', '--duration', '1200s', "
        "'--heartbeat-interval', '60'] (1560,)",
        "own timeout (5,)",
    ]


def test_longrun_minutes_replaces_every_marker_duration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLANS)
    result = run_inner(pytester, "-s", "--longrun-minutes", "2")
    assert result.ret == pytest.ExitCode.OK
    assert _plans(result) == [
        "longrun 2.0 10.0 ['--phase', 'longrun', '--duration', '120s', '--heartbeat-interval', '10'] (480,)",
        "baseline 2.0 10.0 ['--phase', 'baseline', '--duration', '120s', "
        "'--heartbeat-interval', '10'] (480,)",
        "own timeout (5,)",
    ]


def test_longrun_tests_run_after_all_others(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLANS)
    result = run_inner(pytester)
    assert list(outcomes(result)) == ["test_z_plain", "test_a_soak", "test_b_baseline", "test_c_own_timeout"]


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ('longrun(minutes=0, phase="baseline")', "minutes=0 must be a positive number"),
        ('longrun(minutes="20", phase="baseline")', "minutes='20' must be a positive number"),
        ('longrun(minutes=20, phase="soak")', "phase='soak' must be one of smoke, baseline, longrun"),
        ('longrun(minutes=20, phase="baseline", hours=1)', "takes (minutes, phase)"),
    ],
)
def test_a_malformed_longrun_marker_is_a_usage_error(
    pytester: pytest.Pytester, marker: str, problem: str
) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.{marker}\ndef test_soak():\n    pass\n")
    result = run_inner(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*invalid @pytest.mark.longrun on *::test_soak: {problem}"])


def test_longrun_plan_without_the_marker_fails_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_unmarked(longrun_plan):\n    pass\n")
    result = run_inner(pytester)
    assert outcomes(result) == {"test_unmarked": ["ERROR"]}
    result.stdout.fnmatch_lines(["*uses longrun_plan but has no @pytest.mark.longrun*"])
