"""The harness reads an engine's phase and hides its service URLs as the engine's own flags parse them."""

from __future__ import annotations

import pytest

from harness.engine_args import engine_phase, redact

DSN = "postgresql://arb:s3cret@127.0.0.1:5432/arb"
REDIS = "redis://:hunter2@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("args", "phase"),
    [
        ([], "smoke"),
        (["--ticks", "20"], "smoke"),
        (["--phase", "baseline"], "baseline"),
        (["--phase=longrun", "--seed", "7"], "longrun"),
        (["--ph", "baseline"], "baseline"),
        (["--phase", "smoke", "--phase", "longrun"], "longrun"),
        (["30:careful: boom", "--phase", "baseline"], "baseline"),
    ],
)
def test_the_phase_is_read_as_the_engine_reads_it(args: list[str], phase: str) -> None:
    assert engine_phase(args) == phase


@pytest.mark.parametrize(
    "args", [["--phase", "weekly"], ["--phase", "baseline", "--ticks", "0"], ["--phase"]]
)
def test_arguments_the_engine_would_refuse_give_the_default_phase(args: list[str]) -> None:
    assert engine_phase(args) == "smoke"


def test_service_urls_are_redacted_in_every_spelling() -> None:
    args = ["--log-format", "json", "--postgres-dsn", DSN, f"--redis-url={REDIS}", "--seed", "7"]
    assert redact(args) == [
        "--log-format", "json", "--postgres-dsn", "<redacted>", "--redis-url=<redacted>", "--seed", "7",
    ]  # fmt: skip


def test_an_abbreviated_secret_flag_is_redacted_by_its_value() -> None:
    shown = redact(["--postgres", DSN, "--ticks", "5"])
    assert shown == ["--postgres", "<redacted>", "--ticks", "5"]


def test_secrets_are_redacted_even_when_the_engine_would_refuse_the_arguments() -> None:
    shown = redact(["--phase", "weekly", "--postgres-dsn", DSN])
    assert "s3cret" not in " ".join(shown)
