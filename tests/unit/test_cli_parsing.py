"""CLI usage errors: exit 2 with exactly one line, before anything starts."""

from __future__ import annotations

import argparse

import pytest

from arbitrage.cli import build_parser, duration_seconds, run_flags
from arbitrage.config import AppConfig


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90.0), ("2m", 120.0), ("1h", 3600.0), ("45", 45.0)])
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0s", "-5s", "abc", "5d", "", "1.5.2m"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive number with unit"):
        duration_seconds(text)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--phase", "nightly"], "invalid choice: 'nightly'"),
        (["run", "--duration=-5s"], "invalid duration '-5s'"),
        (["run", "--heartbeat-interval", "0"], "invalid heartbeat interval '0'"),
        (["run", "--ticks", "ten"], "invalid tick count 'ten'"),
        (["run", "--ticks", "5", "--duration", "5s"], "not allowed with argument"),
        (
            ["run", "--heartbeat-interval", "inf"],
            "argument --heartbeat-interval: invalid heartbeat interval 'inf'",
        ),
        (
            ["run", "--heartbeat-interval", "NaN"],
            "invalid heartbeat interval 'NaN': expected a finite number",
        ),
        (["run", "--metrics-port", "1e3"], "argument --metrics-port: invalid metrics port '1e3'"),
        (["run", "--seed", "1.5"], "invalid seed '1.5': expected a whole number"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("arbitrage: run: usage error: ")
    assert fragment in err


def test_good_run_arguments_parse() -> None:
    args = build_parser().parse_args(["run", "--phase", "smoke", "--duration", "90s", "--seed", "7"])
    assert (args.phase, args.duration, args.seed, args.ticks) == ("smoke", 90.0, 7, None)


def test_every_run_flag_but_config_overrides_a_real_config_key() -> None:
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    run_parser = subcommands.choices["run"]
    flags = {option for action in run_parser._actions for option in action.option_strings}
    assert flags == {flag for _, flag in run_flags().values()} | {"--config", "-h", "--help"}
    settings = AppConfig().model_dump()
    for key in run_flags():
        section, name = key.split(".")
        assert name in settings[section], key
