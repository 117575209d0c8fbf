"""Per-test outcomes of an inner pytest run (``-v`` output), for pytester-based plugin tests."""

from __future__ import annotations

import re

import pytest

_OUTCOME = r"(?P<outcome>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)"
_NAME = r"(?P<name>[\w\[\]-]+)"
_LINES = (
    re.compile(rf"^\S+::{_NAME} {_OUTCOME}\b"),
    re.compile(rf"^\[gw\d+\] \[\s*\d+%\] {_OUTCOME} \S+::{_NAME}"),
)


def outcomes(result: pytest.RunResult) -> dict[str, list[str]]:
    """``{test name: [outcome, ...]}``; a test that passed its call but errored in teardown has two."""
    found: dict[str, list[str]] = {}
    for line in result.outlines:
        for pattern in _LINES:
            match = pattern.search(line)
            if match:
                found.setdefault(match["name"], []).append(match["outcome"])
    return found


def run_inner(pytester: pytest.Pytester, *args: str, timeout: float = 120) -> pytest.RunResult:
    """Run the inner session in a subprocess, so its log records never reach this session's WARN->FAIL."""
    return pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", "-rA", *args, timeout=timeout)
