"""The regression gate's schedule: modules longest first by a record of their seconds, and the record."""

from __future__ import annotations

import json

import pytest

from harness.durations import outgrown
from tests.harness.outcomes import run_inner

pytest_plugins = ["pytester"]

MODULES = {
    "test_alpha": "def test_a1():\n    pass\n\ndef test_a2():\n    pass\n",
    "test_beta": "def test_b1():\n    pass\n",
    "test_gamma": "def test_g1():\n    pass\n\ndef test_g2():\n    pass\n",
    "test_delta": "def test_d1():\n    pass\n",
}


def _ran(result: pytest.RunResult) -> list[str]:
    """The tests in the order the inner session ran them."""
    verbose = [line.split() for line in result.outlines if line.startswith("test_") and " PASSED" in line]
    return [words[0].split("::")[1] for words in verbose]


def test_modules_run_longest_first_unknown_ones_before_all_and_keep_their_own_order(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(**MODULES)
    record = pytester.path / "durations.json"
    record.write_text(json.dumps({"test_alpha.py": 3.0, "test_beta.py": 40.0, "test_gamma.py": 12.5}))

    result = run_inner(pytester, "--order-by-durations", str(record))

    result.assert_outcomes(passed=6)
    assert _ran(result) == ["test_d1", "test_b1", "test_g1", "test_g2", "test_a1", "test_a2"]


def test_without_the_option_the_collection_order_stands(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**MODULES)
    result = run_inner(pytester)
    result.assert_outcomes(passed=6)
    assert _ran(result) == ["test_a1", "test_a2", "test_b1", "test_d1", "test_g1", "test_g2"]


def test_an_unreadable_record_orders_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**MODULES)
    record = pytester.path / "durations.json"
    record.write_text("not json {")
    result = run_inner(pytester, "--order-by-durations", str(record))
    result.assert_outcomes(passed=6)
    assert _ran(result) == ["test_a1", "test_a2", "test_b1", "test_d1", "test_g1", "test_g2"]


def test_the_record_holds_every_module_that_ran_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**MODULES)
    record = pytester.path / "out" / "durations.json"
    record.parent.mkdir()

    result = run_inner(pytester, "-n", "2", "--record-durations", str(record))

    result.assert_outcomes(passed=6)
    written = json.loads(record.read_text())
    assert sorted(written) == ["test_alpha.py", "test_beta.py", "test_delta.py", "test_gamma.py"]
    assert all(isinstance(seconds, float | int) and seconds >= 0 for seconds in written.values()), written


def test_the_run_names_the_modules_the_record_does_not_hold(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**MODULES)
    record = pytester.path / "durations.json"
    record.write_text(json.dumps({"test_alpha.py": 3.0, "test_beta.py": 40.0}))

    result = run_inner(pytester, "--order-by-durations", str(record))

    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            f"*duration record {record}*",
            "not in the record (they ran first): test_delta.py, test_gamma.py",
            f"refresh the record with --record-durations {record}",
        ]
    )


def test_a_record_that_fits_the_run_adds_no_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**MODULES)
    record = pytester.path / "durations.json"
    record.write_text(json.dumps({f"{name}.py": 0.5 for name in MODULES}))

    result = run_inner(pytester, "--order-by-durations", str(record))

    result.assert_outcomes(passed=6)
    assert "duration record" not in result.stdout.str()


def test_a_module_outgrows_the_record_past_twice_its_seconds_and_twenty_seconds() -> None:
    recorded = {"a.py": 4.0, "b.py": 20.0, "c.py": 20.0, "d.py": 30.0}
    measured = {"a.py": 19.9, "b.py": 40.0, "c.py": 40.1, "d.py": 5.0, "e.py": 1.0}

    unknown, slower = outgrown(recorded, measured)

    assert unknown == ["e.py"]
    assert slower == ["c.py (20.0 s recorded, 40.1 s now)"]
