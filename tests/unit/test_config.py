"""Config precedence (YAML < env < CLI) and one-line errors that name key, value and origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbitrage.config import AppConfig, ConfigError, load_config


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
