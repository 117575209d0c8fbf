"""Ramp-up profiles resolve to D98 §2's numbers, explicit flags beat them, and the env or the config
file do not; the CLI, the config and the profile table name the same profiles."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from arbitrage.cli import PROFILE_CHOICES, build_parser, config_overrides
from arbitrage.config import ConfigError, LoadedConfig, ProfileName
from arbitrage.market.universe import top_n
from arbitrage.profiles import PROFILES, load_profiled
from evidence.ramp_checks import profile_phase

EMPTY = "run:\n  seed: 7\n"


def resolve(
    tmp_path: Path, argv: list[str], env: dict[str, str] | None = None, file: str = EMPTY
) -> LoadedConfig:
    config = tmp_path / "config.yml"
    config.write_text(file)
    args = build_parser().parse_args(["run", *argv])
    cli, flags = config_overrides(args)
    return load_profiled(config, env or {}, cli, flags)


def test_the_cli_the_config_and_the_table_name_the_same_profiles() -> None:
    assert set(PROFILES) == set(get_args(ProfileName)) == set(PROFILE_CHOICES)
    assert all(profile_phase(name) == profile.phase for name, profile in PROFILES.items())


@pytest.mark.parametrize(
    ("name", "mode", "seconds", "usd", "universe"),
    [
        ("live-phase1", "live", 300.0, 50.0, "top10"),
        ("live-phase2", "live", 1800.0, 100.0, "top20"),
        ("live-phase3", "live", 3600.0, 500.0, "top50"),
        ("paper-phase1", "paper", 300.0, 50.0, "top10"),
        ("paper-phase2", "paper", 1800.0, 100.0, "top20"),
        ("paper-phase3", "paper", 3600.0, 500.0, "top50"),
    ],
)
def test_a_profile_sets_the_runbooks_phase(
    tmp_path: Path, name: str, mode: str, seconds: float, usd: float, universe: str
) -> None:
    loaded = resolve(tmp_path, ["--profile", name])
    config = loaded.config
    assert (config.run.profile, config.run.mode, config.run.duration_sec) == (name, mode, seconds)
    assert (config.strategy.order_notional_usd, config.symbols.universe) == (usd, universe)
    assert loaded.origin("symbols.universe") == f"CLI --profile {name}"


def test_explicit_flags_win_and_the_profile_beats_env_and_file(tmp_path: Path) -> None:
    env = {"ARB_STRATEGY__ORDER_NOTIONAL_USD": "900", "ARB_RUN__MODE": "live"}
    file = "symbols:\n  universe: top5\nrun:\n  duration_sec: 10\n"
    loaded = resolve(tmp_path, ["--profile", "paper-phase1", "--duration", "90s"], env, file)
    config = loaded.config
    assert config.run.duration_sec == 90.0
    assert loaded.origin("run.duration_sec") == "CLI --duration"
    assert (config.run.mode, config.strategy.order_notional_usd, config.symbols.universe) == (
        "paper",
        50.0,
        "top10",
    )


def test_without_a_profile_nothing_changes(tmp_path: Path) -> None:
    config = resolve(tmp_path, []).config
    assert config.run.profile is None
    assert config.symbols.universe == "top10"
    assert config.strategy.order_notional_usd == 200.0


def test_a_matching_mode_flag_is_accepted_and_a_contradicting_one_refused(tmp_path: Path) -> None:
    assert resolve(tmp_path, ["--profile", "live-phase2", "--mode", "live"]).config.run.mode == "live"
    with pytest.raises(ConfigError, match=r"--mode live .*contradicts --profile paper-phase2.*live-phase2"):
        resolve(tmp_path, ["--profile", "paper-phase2", "--mode", "live"])


def test_a_profile_in_the_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run.profile = 'live-phase1' \(.*config.yml\)"):
        resolve(tmp_path, [], file="run:\n  profile: live-phase1\n")


def test_top50_is_a_universe_of_fifty_distinct_coins_ranked_after_top20() -> None:
    fifty = top_n(50)
    assert len(set(fifty)) == 50
    assert fifty[:20] == top_n(20)


def test_run_help_documents_the_profile_precedence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--profile" in text and "Explicit flags win" in text and "needs the live arming" in text
