"""WARN->FAIL is opt-in: an unrelated project that installs the package keeps its verdicts.

The inner sessions are that project: a test whose library logs a warning, with the plugin loaded
through its ``pytest11`` entry point as in any environment where the package is installed.
"""

from __future__ import annotations

import logging

import pytest

from tests.harness.outcomes import outcomes, run_inner

pytest_plugins = ["pytester"]

UNRELATED_PROJECT = """
import logging

def test_library_warns():
    logging.getLogger("some.library").warning("deprecated setting, using the default")
"""


@pytest.fixture
def unrelated(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_unrelated=UNRELATED_PROJECT)
    return pytester


def test_the_plugin_is_loaded_but_leaves_a_warning_alone(unrelated: pytest.Pytester) -> None:
    result = run_inner(unrelated, "--trace-config")
    result.stdout.fnmatch_lines(["*arbitrage_harness*"])
    assert outcomes(result) == {"test_library_warns": ["PASSED"]}
    assert result.ret == pytest.ExitCode.OK


def test_the_command_line_flag_turns_warn_fail_on(unrelated: pytest.Pytester) -> None:
    result = run_inner(unrelated, "--warnfail")
    assert outcomes(result) == {"test_library_warns": ["FAILED"]}
    result.stdout.fnmatch_lines(["*WARNING [[]some.library[]] deprecated setting, using the default*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("pyproject.toml", "[tool.pytest.ini_options]\nwarnfail = true\n"),
        ("pytest.ini", "[pytest]\nwarnfail = true\n"),
    ],
)
def test_the_ini_key_turns_warn_fail_on(unrelated: pytest.Pytester, name: str, content: str) -> None:
    (unrelated.path / name).write_text(content)
    result = run_inner(unrelated)
    assert outcomes(result) == {"test_library_warns": ["FAILED"]}
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_ini_key_set_false_keeps_it_off(unrelated: pytest.Pytester) -> None:
    unrelated.makeini("[pytest]\nwarnfail = false\n")
    result = run_inner(unrelated)
    assert outcomes(result) == {"test_library_warns": ["PASSED"]}


def test_a_bad_ini_value_is_a_usage_error_naming_it(unrelated: pytest.Pytester) -> None:
    unrelated.makeini("[pytest]\nwarnfail = maybe\n")
    result = run_inner(unrelated)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid ini option warnfail in *tox.ini*'maybe'*expected true or false*"])


def test_log_records_stay_quiet_below_the_logger_level_when_off(unrelated: pytest.Pytester) -> None:
    unrelated.makepyfile(
        test_levels="""
        import logging

        def test_disabled_warning_is_not_even_emitted():
            logger = logging.getLogger("quiet.library")
            logger.setLevel(logging.ERROR)
            assert not logger.isEnabledFor(logging.WARNING)
        """
    )
    result = run_inner(unrelated)
    assert outcomes(result)["test_disabled_warning_is_not_even_emitted"] == ["PASSED"]


def test_the_level_floor_lasts_only_as_long_as_its_session(unrelated: pytest.Pytester) -> None:
    unrelated.makepyfile(
        test_levels="""
        import logging

        def test_the_floor_is_in_effect_inside_the_session():
            logger = logging.getLogger("quiet.library")
            logger.setLevel(logging.ERROR)
            assert logger.isEnabledFor(logging.WARNING)
        """
    )
    before = logging.Logger.isEnabledFor
    result = unrelated.runpytest_inprocess("--warnfail", "-v", "-p", "no:cacheprovider", "test_levels.py")
    assert outcomes(result) == {"test_the_floor_is_in_effect_inside_the_session": ["PASSED"]}
    assert logging.Logger.isEnabledFor is before
