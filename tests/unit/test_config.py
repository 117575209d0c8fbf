"""Config precedence (YAML < env < CLI) and one-line errors that name key, value and origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbitrage.config import AppConfig, ConfigError, load, load_config
from arbitrage.config.file import MAX_CONFIG_BYTES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def test_defaults_match_the_shipped_yaml() -> None:
    shipped = load_config(Path(__file__).parents[2] / "config/v2/config.yml", env={})
    assert shipped == AppConfig()


def test_env_overrides_yaml_and_cli_overrides_env(tmp_path: Path) -> None:
    path = write(tmp_path, "strategy:\n  entry_threshold_pct: 3.5\nheartbeat:\n  interval_sec: 30\n")
    env = {"ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "4.25", "ARB_HEARTBEAT__INTERVAL_SEC": "20"}
    config = load_config(path, env=env, cli={"heartbeat.interval_sec": 7.0})
    assert config.strategy.entry_threshold_pct == 4.25
    assert config.heartbeat.interval_sec == 7.0


def test_postgres_dsn_and_redis_url_come_from_their_env_names() -> None:
    config = load_config(
        None, env={"POSTGRES_DSN": "postgresql://u:pw@127.0.0.1/db", "REDIS_URL": "redis://x"}
    )
    assert config.services.postgres_dsn is not None
    assert config.services.postgres_dsn.get_secret_value() == "postgresql://u:pw@127.0.0.1/db"
    assert "pw@" not in str(config.redacted())


def test_bad_value_names_key_value_expectation_and_origin() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env={"ARB_STRATEGY__ORDER_NOTIONAL_USD": "lots"})
    message = str(err.value)
    assert "strategy.order_notional_usd" in message
    assert "'lots'" in message
    assert "valid number" in message
    assert "env ARB_STRATEGY__ORDER_NOTIONAL_USD" in message
    assert "\n" not in message


def test_unknown_key_in_yaml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  sede: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'run\.sede' = 3 \(.*config\.yml\)"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "file is empty"),
        ("run: [1, 2\n", "broken YAML at line"),
        ("- a\n- b\n", "top level is list"),
    ],
)
def test_unusable_files_give_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), env={})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yml", env={})


def test_negative_heartbeat_interval_is_rejected_with_its_bound() -> None:
    with pytest.raises(ConfigError, match=r"heartbeat\.interval_sec = -1\.0 .*greater than 0"):
        load_config(None, env={}, cli={"heartbeat.interval_sec": -1.0})


def test_the_venues_share_of_a_stop_leaves_the_close_out_two_seconds_of_its_ten() -> None:
    assert load_config(None, env={"ARB_LIVE__STOP_VENUE_SEC": "8"}).live.stop_venue_sec == 8.0
    with pytest.raises(ConfigError, match=r"live\.stop_venue_sec = '8\.5' .*less than or equal to 8"):
        load_config(None, env={"ARB_LIVE__STOP_VENUE_SEC": "8.5"})
    with pytest.raises(ConfigError, match=r"live\.fill_timeout_sec = '0' .*greater than 0"):
        load_config(None, env={"ARB_LIVE__FILL_TIMEOUT_SEC": "0"})


def test_secret_values_are_never_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            None, env={"ARB_SERVICES__POSTGRES_DSN": "123"}, cli={"services.postgres_dsn": ["pw-secret"]}
        )
    assert "pw-secret" not in str(err.value)


def test_expected_seconds_by_phase_duration_and_ticks() -> None:
    assert AppConfig().run.expected_seconds() == 300.0
    assert load_config(None, env={}, cli={"run.phase": "baseline"}).run.expected_seconds() == 1200.0
    assert load_config(None, env={}, cli={"run.duration_sec": 90.0}).run.expected_seconds() == 90.0
    assert load_config(None, env={}, cli={"run.ticks": 10}).run.expected_seconds() is None


def test_config_hash_changes_with_any_setting() -> None:
    base = AppConfig()
    changed = load_config(None, env={}, cli={"strategy.max_hold_sec": 121.0})
    assert len(base.config_hash()) == 64
    assert base.config_hash() != changed.config_hash()


def test_a_config_of_exactly_the_size_limit_is_accepted(tmp_path: Path) -> None:
    text = "run:\n  seed: 3\n"
    path = write(tmp_path, text + "#" * (MAX_CONFIG_BYTES - len(text) - 1) + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(path, env={}).run.seed == 3


def test_origins_name_the_file_the_env_variable_and_the_real_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "run:\n  seed: 3\nheartbeat:\n  interval_sec: 30\n")
    loaded = load(
        path,
        env={"ARB_STRATEGY__MAX_HOLD_SEC": "60"},
        cli={"heartbeat.interval_sec": 5.0, "metrics.port": 0},
        flags={"heartbeat.interval_sec": "--heartbeat-interval"},
    )
    assert loaded.origin("run.seed") == str(path)
    assert loaded.origin("strategy.max_hold_sec") == "env ARB_STRATEGY__MAX_HOLD_SEC"
    assert loaded.origin("heartbeat.interval_sec") == "CLI --heartbeat-interval"
    assert loaded.origin("metrics.port") == "command line"
    assert loaded.origin("heartbeat") == f"CLI --heartbeat-interval and {path}"
    assert loaded.origin("guards.max_open_positions") == "built-in default"
    monkeypatch.chdir(tmp_path)
    assert load(None, env={}).file is None


def test_an_env_variable_cannot_replace_a_section_the_file_sets(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  seed: 3\n")
    with pytest.raises(ConfigError, match=r"run = '1' \(env ARB_RUN\): names the section 'run'"):
        load(path, env={"ARB_RUN": "1"})


def test_a_file_scalar_where_a_section_belongs_is_not_hidden_by_env(tmp_path: Path) -> None:
    path = write(tmp_path, "run: 5\n")
    with pytest.raises(
        ConfigError, match=r"run = 5 \(.*config\.yml\): expected a mapping.*env ARB_RUN__SEED"
    ):
        load(path, env={"ARB_RUN__SEED": "3"})


def test_booleans_stay_valid_where_a_mapping_or_string_is_not_numeric() -> None:
    assert load_config(None, env={"ARB_RUN__EXCHANGE_URL": "true"}).run.exchange_url == "true"
