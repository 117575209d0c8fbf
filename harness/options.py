"""Command-line options, their ini twins, and the typed settings they resolve to.

Every option can also be set in the ini file; the command line wins. A bad value stops the
session at startup with a usage error that names the value and where it came from, so a typo in
``pyproject.toml`` is not mistaken for a typo on the command line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import pytest

DEFAULT_SCRAPE_SECONDS: Final = 10.0
"""How often the monitor scrapes a run's metrics endpoint unless told otherwise."""
DEFAULT_EVIDENCE_ROOT: Final = Path("logs") / "evidence"
MANAGED_ENGINE_FLAGS: Final = ("--evidence-root", "--postgres-dsn", "--redis-url", "--log-format")
"""Engine flags the harness always sets itself; ``--engine-arg`` may not override them."""


@dataclass(frozen=True)
class HarnessSettings:
    """The validated option values, one object per session (``config.stash[SETTINGS_KEY]``)."""

    evidence_root: Path
    longrun_minutes: float | None
    postgres_dsn: str | None
    redis_url: str | None
    engine_args: tuple[str, ...]
    metrics_scrape_seconds: float = DEFAULT_SCRAPE_SECONDS
    warnfail: bool = False
    """WARN->FAIL for every test's in-process records; engine records are judged either way."""


SETTINGS_KEY: Final = pytest.StashKey[HarnessSettings]()


@dataclass(frozen=True)
class _Raw:
    value: str
    source: str


def add_options(parser: pytest.Parser) -> None:
    """Register each option with its ini twin (same name, dashes as underscores)."""
    group = parser.getgroup("arbitrage", "arbitrage engine harness")
    group.addoption(
        "--warnfail",
        action="store_true",
        default=None,
        help="fail any test during which a WARNING-or-worse log record is emitted, unless allowed by "
        "@pytest.mark.allow_log (ini: warnfail = true; default: off, engine records are always judged)",
    )
    group.addoption(
        "--evidence-root",
        metavar="DIR",
        help="where engine runs write evidence (ini: evidence_root; default: <rootdir>/logs/evidence)",
    )
    group.addoption(
        "--longrun-minutes",
        metavar="N",
        help="run every @longrun test for N minutes instead of its marker's minutes (ini: longrun_minutes)",
    )
    group.addoption(
        "--postgres-dsn",
        metavar="DSN",
        help="use this PostgreSQL instead of an embedded one (ini: postgres_dsn; env POSTGRES_DSN)",
    )
    group.addoption(
        "--redis-url",
        metavar="URL",
        help="use this Redis instead of an embedded one (ini: redis_url; env REDIS_URL)",
    )
    group.addoption(
        "--engine-arg",
        action="append",
        metavar="ARG",
        help="extra argument for every engine run, repeatable; write --engine-arg=--seed=9 "
        "(ini: engine_args, shell-quoted; command-line values come after the ini ones)",
    )
    group.addoption(
        "--metrics-scrape-interval",
        metavar="SECONDS",
        help="how often the monitor scrapes an engine that serves metrics "
        f"(ini: metrics_scrape_interval; default: {DEFAULT_SCRAPE_SECONDS:g})",
    )
    parser.addini("warnfail", "WARN->FAIL for every test (true/false)", type="bool", default=False)
    parser.addini("evidence_root", "where engine runs write evidence", type="string", default="")
    parser.addini("longrun_minutes", "minutes for every @longrun test", type="string", default="")
    parser.addini("postgres_dsn", "external PostgreSQL DSN", type="string", default="")
    parser.addini("redis_url", "external Redis URL", type="string", default="")
    parser.addini("engine_args", "extra arguments for every engine run", type="args", default=[])
    parser.addini(
        "metrics_scrape_interval", "seconds between the monitor's metrics scrapes", type="string", default=""
    )


def _ini_source(config: pytest.Config, name: str) -> str:
    where = config.inipath if config.inipath is not None else "the ini file"
    return f"ini option {name} in {where}"


def _raw(config: pytest.Config, flag: str, ini: str, env: str | None = None) -> _Raw | None:
    cli = config.getoption(flag)
    if cli is not None:
        return _Raw(str(cli), f"command line {flag}")
    from_ini = str(config.getini(ini))
    if from_ini:
        return _Raw(from_ini, _ini_source(config, ini))
    if env is not None and os.environ.get(env):
        return _Raw(os.environ[env], f"environment variable {env}")
    return None


def _bad(flag: str, raw: _Raw, problem: str, shown: str | None = None) -> pytest.UsageError:
    value = repr(raw.value) if shown is None else shown
    return pytest.UsageError(f"invalid {flag} value {value} from {raw.source}: {problem}")


def _evidence_root(config: pytest.Config) -> Path:
    raw = _raw(config, "--evidence-root", "evidence_root")
    if raw is None:
        return config.rootpath / DEFAULT_EVIDENCE_ROOT
    if raw.source.startswith("command line"):
        base = config.invocation_params.dir
    else:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
    path = (base / Path(raw.value).expanduser()).resolve()
    if path.exists() and not path.is_dir():
        raise _bad("--evidence-root", raw, f"{path} exists and is not a directory")
    return path


def _positive_number(config: pytest.Config, flag: str, ini: str, unit: str, example: str) -> float | None:
    raw = _raw(config, flag, ini)
    if raw is None:
        return None
    try:
        value = float(raw.value)
    except ValueError:
        raise _bad(flag, raw, f"expected a number of {unit}, e.g. {example}") from None
    if not math.isfinite(value) or value <= 0:
        raise _bad(flag, raw, f"expected a positive, finite number of {unit}")
    return value


def _longrun_minutes(config: pytest.Config) -> float | None:
    return _positive_number(config, "--longrun-minutes", "longrun_minutes", "minutes", "2 or 0.5")


def _metrics_scrape_seconds(config: pytest.Config) -> float:
    flag, ini = "--metrics-scrape-interval", "metrics_scrape_interval"
    seconds = _positive_number(config, flag, ini, "seconds", "10 or 0.5")
    return DEFAULT_SCRAPE_SECONDS if seconds is None else seconds


def _postgres_dsn(config: pytest.Config) -> str | None:
    raw = _raw(config, "--postgres-dsn", "postgres_dsn", env="POSTGRES_DSN")
    if raw is None:
        return None
    from psycopg import conninfo
    from psycopg.errors import ProgrammingError

    try:
        conninfo.conninfo_to_dict(raw.value)
    except ProgrammingError as exc:
        raise _bad("--postgres-dsn", raw, f"not a libpq DSN or URI ({exc})", shown="<redacted>") from None
    return raw.value


def _redis_url(config: pytest.Config) -> str | None:
    raw = _raw(config, "--redis-url", "redis_url", env="REDIS_URL")
    if raw is None:
        return None
    parts = urlsplit(raw.value)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise _bad("--redis-url", raw, "expected a redis://, rediss:// or unix:// URL", shown="<redacted>")
    if parts.scheme == "unix" and not parts.path:
        raise _bad("--redis-url", raw, "a unix:// URL needs a socket path", shown="<redacted>")
    if parts.scheme != "unix" and not parts.hostname:
        raise _bad("--redis-url", raw, "the URL has no host", shown="<redacted>")
    return raw.value


def _engine_args(config: pytest.Config) -> tuple[str, ...]:
    sourced = [(arg, _ini_source(config, "engine_args")) for arg in config.getini("engine_args")]
    sourced += [(arg, "command line --engine-arg") for arg in config.getoption("--engine-arg") or []]
    for arg, source in sourced:
        flag = arg.split("=", 1)[0]
        if flag in MANAGED_ENGINE_FLAGS:
            raise _bad(
                "--engine-arg",
                _Raw(arg, source),
                f"the harness sets {flag} itself (use --evidence-root/--postgres-dsn/--redis-url "
                "of pytest instead)",
            )
    return tuple(arg for arg, _ in sourced)


def _warnfail(config: pytest.Config) -> bool:
    if config.getoption("--warnfail"):
        return True
    try:
        return bool(config.getini("warnfail"))
    except (ValueError, pytest.UsageError) as exc:
        raise pytest.UsageError(
            f"invalid {_ini_source(config, 'warnfail')}: {exc}; expected true or false"
        ) from None


def resolve_settings(config: pytest.Config) -> HarnessSettings:
    """Validate every option once, raising ``pytest.UsageError`` that names the value's source."""
    return HarnessSettings(
        evidence_root=_evidence_root(config),
        longrun_minutes=_longrun_minutes(config),
        postgres_dsn=_postgres_dsn(config),
        redis_url=_redis_url(config),
        engine_args=_engine_args(config),
        metrics_scrape_seconds=_metrics_scrape_seconds(config),
        warnfail=_warnfail(config),
    )
