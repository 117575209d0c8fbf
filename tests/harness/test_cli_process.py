"""`harness.cli_process`: what an `arbitrage` subprocess inherits, and that it is this interpreter's."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from arbitrage.ops.live_arm import KEY_VARS
from harness.cli_process import KEY_PREFIX_VAR, cli_command, inherited, operator_env, run_cli, start_cli


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell with services, keys, settings and the module's key prefix set."""
    for name in ("POSTGRES_DSN", "REDIS_URL", *KEY_VARS):
        monkeypatch.setenv(name, f"inherited-{name}")
    monkeypatch.setenv("ARB_WARN_POLICY", "continue")
    monkeypatch.setenv("ARB_SERVICES__DATA_DIR", "/elsewhere")
    monkeypatch.setenv(KEY_PREFIX_VAR, "arbtest:module")
    monkeypatch.setenv("LIVE_ARM_ACK", "inherited-ack")
    monkeypatch.setenv("HOME_AWAY", "kept")


@pytest.mark.usefixtures("shell")
def test_the_operator_env_drops_services_keys_and_settings_but_keeps_the_key_prefix() -> None:
    env = operator_env()
    gone = {"POSTGRES_DSN", "REDIS_URL", *KEY_VARS, "ARB_WARN_POLICY", "ARB_SERVICES__DATA_DIR"}
    assert sorted(gone & env.keys()) == []
    assert env[KEY_PREFIX_VAR] == "arbtest:module"
    assert (env["LIVE_ARM_ACK"], env["HOME_AWAY"]) == ("inherited-ack", "kept")
    assert {name for name in [*gone, KEY_PREFIX_VAR, "HOME_AWAY"] if inherited(name)} == {
        KEY_PREFIX_VAR, "HOME_AWAY",
    }  # fmt: skip


@pytest.mark.usefixtures("shell")
def test_changes_set_override_and_remove() -> None:
    env = operator_env(
        {"POSTGRES_DSN": "refused", KEY_PREFIX_VAR: "own", "LIVE_ARM_ACK": None, "NEVER_SET": None}
    )
    assert (env["POSTGRES_DSN"], env[KEY_PREFIX_VAR]) == ("refused", "own")
    assert "LIVE_ARM_ACK" not in env and "NEVER_SET" not in env


def test_the_command_is_this_interpreter_running_the_package() -> None:
    assert cli_command("run", "--ticks", "1") == [sys.executable, "-m", "arbitrage", "run", "--ticks", "1"]


def test_run_and_start_reach_the_installed_command_line(tmp_path: Path) -> None:
    done = run_cli("--version", cwd=tmp_path, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"arbitrage {version('arbitrage-harness')}")
    started: subprocess.Popen[str] = start_cli("--version", cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    out, _ = started.communicate(timeout=60)
    assert (started.returncode, out) == (0, done.stdout)
