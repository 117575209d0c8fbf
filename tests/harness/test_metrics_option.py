"""``--metrics-scrape-interval`` and its ini twin reach the monitor's limits; bad values name their source."""

from __future__ import annotations

import pytest

from tests.harness.outcomes import run_inner

pytest_plugins = ["pytester"]

SHOW_INTERVAL = """
from harness.options import SETTINGS_KEY

def test_show(request):
    print("INTERVAL", request.config.stash[SETTINGS_KEY].metrics_scrape_seconds)
"""


def _interval(result: pytest.RunResult) -> float:
    for line in result.outlines:
        if "INTERVAL " in line:
            return float(line.split("INTERVAL ", 1)[1].split()[0])
    raise AssertionError("inner test printed no interval:\n" + result.stdout.str())


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        ([], None, 10.0),
        ([], "metrics_scrape_interval = 2.5", 2.5),
        (["--metrics-scrape-interval=0.5"], "metrics_scrape_interval = 2.5", 0.5),
    ],
)
def test_the_interval_defaults_to_10_s_and_the_command_line_wins(
    pytester: pytest.Pytester, args: list[str], ini: str | None, expected: float
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(SHOW_INTERVAL)
    assert _interval(run_inner(pytester, "-s", *args)) == expected


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--metrics-scrape-interval=soon"],
            None,
            "invalid --metrics-scrape-interval value 'soon' from command line --metrics-scrape-interval: "
            "expected a number of seconds*",
        ),
        (
            [],
            "metrics_scrape_interval = 0",
            "invalid --metrics-scrape-interval value '0' from ini option metrics_scrape_interval "
            "in *tox.ini: expected a positive, finite number of seconds",
        ),
    ],
)
def test_a_bad_interval_names_its_source(
    pytester: pytest.Pytester, args: list[str], ini: str | None, message: str
) -> None:
    if ini is not None:
        pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_never_runs():\n    raise AssertionError('configure must fail first')\n")
    result = run_inner(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
