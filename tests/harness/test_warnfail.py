"""WARN->FAIL, tested through real inner pytest sessions."""

from __future__ import annotations

import pytest

from tests.harness.outcomes import outcomes
from tests.harness.outcomes import run_inner as run_plain

pytest_plugins = ["pytester"]


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inner session with WARN->FAIL switched on from the command line."""
    return run_plain(pytester, "--warnfail", *args)


def test_a_library_warning_fails_the_test_and_shows_the_record(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging

        def test_lib_warns():
            logging.getLogger("some.lib").warning("boom %d", 42)

        def test_quiet():
            logging.getLogger("some.lib").info("all fine")
        """
    )
    result = run_inner(pytester)
    assert outcomes(result) == {"test_lib_warns": ["FAILED"], "test_quiet": ["PASSED"]}
    result.stdout.fnmatch_lines(
        [
            "*WARN->FAIL: 1 WARNING-or-worse log record(s) during call not allowed by *allow_log:",
            "*Captured warnfail call*",
            "*WARNING [[]some.lib[]] boom 42 (in-process)",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_allow_log_lets_a_matching_warning_pass_but_not_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging
        import pytest

        @pytest.mark.allow_log("WARNING", "boom")
        def test_allowed():
            logging.getLogger("some.lib").warning("boom %d", 42)

        @pytest.mark.allow_log("WARNING", "boom")
        def test_error_is_not_a_warning():
            logging.getLogger("some.lib").error("boom at error level")

        @pytest.mark.allow_log("WARNING", "^expected")
        def test_pattern_must_match():
            logging.getLogger("some.lib").warning("boom, unexpected")

        @pytest.mark.allow_log(40, "disk")
        @pytest.mark.allow_log("warning", "retry")
        def test_markers_stack():
            logging.getLogger("a").warning("retry 1")
            logging.getLogger("b").error("disk slow")
        """
    )
    result = run_inner(pytester)
    assert outcomes(result) == {
        "test_allowed": ["PASSED"],
        "test_error_is_not_a_warning": ["FAILED"],
        "test_pattern_must_match": ["FAILED"],
        "test_markers_stack": ["PASSED"],
    }
    result.stdout.fnmatch_lines(["*ERROR [[]some.lib[]] boom at error level (in-process)"])


def test_allow_log_count_caps_the_allowed_records(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging
        import pytest

        log = logging.getLogger("some.lib")

        @pytest.fixture
        def noisy_setup():
            log.warning("boom in setup")
            yield

        @pytest.mark.allow_log("WARNING", "boom", count=3)
        def test_three_of_three(noisy_setup):
            log.warning("boom one")
            log.warning("boom two")

        @pytest.mark.allow_log("WARNING", "boom", count=2)
        def test_three_of_two(noisy_setup):
            log.warning("boom one")
            log.warning("boom two")
        """
    )
    result = run_inner(pytester)
    assert outcomes(result) == {"test_three_of_three": ["PASSED"], "test_three_of_two": ["FAILED"]}
    result.stdout.fnmatch_lines(
        ["*during call not allowed*", "*WARNING [[]some.lib[]] boom two (in-process)"]
    )
    result.stdout.no_fnmatch_line("*WARNING [[]some.lib[]] boom one (in-process)")


def test_caplog_and_logger_levels_cannot_hide_records(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging
        import threading

        quiet = logging.getLogger("quiet.lib")
        quiet.propagate = False
        quiet.addHandler(logging.NullHandler())

        def test_caplog_root_level(caplog):
            caplog.set_level(logging.ERROR)
            logging.getLogger("some.lib").warning("hidden by root level?")

        def test_caplog_logger_level(caplog):
            caplog.set_level(logging.CRITICAL, logger="some.lib")
            logging.getLogger("some.lib").warning("hidden by logger level?")

        def test_caplog_at_level(caplog):
            with caplog.at_level(logging.CRITICAL):
                logging.getLogger("some.lib").error("hidden by at_level?")

        def test_non_propagating_logger():
            quiet.warning("hidden by propagate=False?")

        def test_warning_from_a_thread():
            worker = threading.Thread(target=lambda: logging.getLogger("bg").warning("from a thread"))
            worker.start()
            worker.join()
        """
    )
    result = run_inner(pytester, "--log-level=CRITICAL")
    assert outcomes(result) == {
        "test_caplog_root_level": ["FAILED"],
        "test_caplog_logger_level": ["FAILED"],
        "test_caplog_at_level": ["FAILED"],
        "test_non_propagating_logger": ["FAILED"],
        "test_warning_from_a_thread": ["FAILED"],
    }
    for message in (
        "hidden by root level?",
        "hidden by logger level?",
        "hidden by at_level?",
        "hidden by propagate=False?",
        "from a thread",
    ):
        result.stdout.fnmatch_lines([f"*] {message} (in-process)"])


def test_setup_and_teardown_records_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging
        import pytest

        @pytest.fixture
        def warns_in_setup():
            logging.getLogger("fixture").warning("setup noise")
            yield

        @pytest.fixture
        def warns_in_teardown():
            yield
            logging.getLogger("fixture").error("teardown noise")

        def test_setup(warns_in_setup):
            pass

        def test_teardown(warns_in_teardown):
            pass

        def test_failing_call_still_shows_records():
            logging.getLogger("x").warning("before the crash")
            raise RuntimeError("crash")
        """
    )
    result = run_inner(pytester)
    assert outcomes(result) == {
        "test_setup": ["ERROR"],
        "test_teardown": ["PASSED", "ERROR"],
        "test_failing_call_still_shows_records": ["FAILED"],
    }
    result.stdout.fnmatch_lines(["*during setup not allowed*", "*WARNING [[]fixture[]] setup noise*"])
    result.stdout.fnmatch_lines(["*during teardown not allowed*", "*ERROR [[]fixture[]] teardown noise*"])
    result.stdout.fnmatch_lines(["*RuntimeError: crash*", "*Captured warnfail call*", "*before the crash*"])


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_records_outside_any_test_fail_the_session(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makepyfile(
        """
        import logging

        logging.getLogger("import.time").warning("logged while collecting")

        def test_fine():
            pass
        """
    )
    result = run_inner(pytester, *xdist)
    assert outcomes(result) == {"test_fine": ["PASSED"]}
    result.stdout.fnmatch_lines(
        ["*WARN->FAIL: log records outside any test*", "WARNING [[]import.time[]] logged while collecting*"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ('allow_log("LOUD", "x")', "level 'LOUD' is not a logging level"),
        ('allow_log("WARNING", "(")', "missing ), unterminated subpattern"),
        ('allow_log("WARNING", "x", count=0)', "count=0 must be a positive integer"),
        ('allow_log("WARNING")', "needs a level and a pattern"),
    ],
)
def test_a_malformed_allow_log_is_a_usage_error(pytester: pytest.Pytester, marker: str, problem: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked():
            pass
        """
    )
    result = run_inner(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*invalid @pytest.mark.allow_log on *::test_marked: *{problem}*"])
