"""`arbitrage --help`, the command line's parsing and a run refused for its config load no database
or cache client, and a `--ticks 1` run loads only what a run uses.

Each check runs in a fresh interpreter, because this process has long since imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli_process import KEY_PREFIX_VAR, operator_env
from tests.support.fresh_interpreter import modules_after

HEAVY = ("psycopg", "redis", "ccxt", "rich")

PROBES = {
    "import arbitrage.cli": "import arbitrage.cli",
    "build the parser": "import arbitrage.cli; arbitrage.cli.build_parser()",
    "parse a run": "import arbitrage.cli; arbitrage.cli.build_parser().parse_args(['run', '--ticks', '1'])",
    "import arbitrage.config": "import arbitrage.config",
}


def loaded_packages(code: str) -> list[str]:
    """The top-level packages among HEAVY that `code` leaves in sys.modules of a fresh interpreter."""
    loaded = {name.split(".")[0] for name in modules_after(code)}
    return [name for name in HEAVY if name in loaded]


@pytest.mark.parametrize("what", sorted(PROBES))
def test_parsing_the_command_line_loads_no_database_or_cache_client(what: str) -> None:
    assert loaded_packages(PROBES[what]) == [], f"{what} loaded these before any command needed them"


def test_the_probe_sees_a_package_that_is_loaded() -> None:
    assert loaded_packages("import arbitrage.ledger") == ["psycopg"]


RUN_NEVER_LOADS = (
    "jsonschema", "referencing", "rpds", "jsonschema_specifications", "ccxt", "rich", "matplotlib",
)  # fmt: skip
"""What a paper run on the synthetic market does not need: the readers' JSON Schema validator (the
engine checks its documents with their models), the exchange client, the report and the harness."""

RUN_GATES_MODULES = {"gates", "gates.chaos_command", "gates.health_defaults", "gates.verify_command"}
"""The only `gates` modules a run loads: the subcommands' registration, for the parser."""

RUN_HARNESS_MODULES = {"harness", "harness.exchange_sim", "harness.exchange_sim.command"}
"""The only `harness` modules a run loads: `arbitrage sim`'s registration, for the parser (no
pytest plugin, no simulator server)."""

_PROBE = """
import atexit, json, runpy, sys
out, sys.argv = sys.argv[1], ["arbitrage", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("arbitrage", run_name="__main__", alter_sys=True)
"""
"""Runs `python -m arbitrage ARGS` and writes its sys.modules at exit (`console` runs the exit
handlers before its quick exit)."""


def probe_run(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`arbitrage run ARGS` in a fresh interpreter: how it ended, and every module it had loaded."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), "run", *args],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    loaded: list[str] = json.loads(out.read_text())
    return done, set(loaded)


def run_imports(tmp_path: Path, dsn: str, url: str, prefix: str) -> set[str]:
    """Every module a `--ticks 1` paper run has loaded when it exits."""
    args = ["--ticks", "1", "--postgres-dsn", dsn, "--redis-url", url,
            "--evidence-root", str(tmp_path / "evidence")]  # fmt: skip
    done, modules = probe_run(tmp_path, args, operator_env({KEY_PREFIX_VAR: prefix}))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TICKS_COMPLETED" in done.stdout, done.stdout[-2000:]
    return modules


def test_a_run_refused_for_its_config_loads_no_database_or_cache_client(tmp_path: Path) -> None:
    env = operator_env({"ARB_RUN__BOOK_MAX_AGE_SEC": "two"})
    done, modules = probe_run(tmp_path, ["--ticks", "1", "--evidence-root", str(tmp_path / "evidence")], env)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "run.book_max_age_sec = 'two' (env ARB_RUN__BOOK_MAX_AGE_SEC)" in done.stderr
    packages = {name.split(".")[0] for name in modules}
    assert "pydantic" in packages, "the probe must see what the refusal loads"
    assert [name for name in HEAVY if name in packages] == []
    assert not (tmp_path / "evidence").exists()


def test_a_ticks_1_run_loads_what_a_run_uses_and_nothing_else(
    tmp_path: Path, postgres_dsn: str, redis_url: str, redis_key_prefix: str
) -> None:
    modules = run_imports(tmp_path, postgres_dsn, redis_url, redis_key_prefix)
    packages = {name.split(".")[0] for name in modules}
    assert {"psycopg", "redis", "pydantic", "prometheus_client", "arbitrage", "evidence"} <= packages, (
        "the probe must see what a run does load"
    )
    assert sorted(packages.intersection(RUN_NEVER_LOADS)) == []
    assert {name for name in modules if name.split(".")[0] == "gates"} == RUN_GATES_MODULES
    assert {name for name in modules if name.split(".")[0] == "harness"} == RUN_HARNESS_MODULES
