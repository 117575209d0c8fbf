"""The README's example test is real: it imports, its markers are registered and its fixtures exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness.outcomes import run_inner

pytest_plugins = ["pytester"]

README = Path(__file__).parents[2] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using the harness in your tests", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README section has no python example"
    return match.group(1)


def test_the_readme_example_collects_and_plans_its_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=_example())
    result = run_inner(pytester, "--strict-markers", "--setup-plan")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*SETUP    F engine*", "*test_example.py::test_five_minutes_on_paper*"])
