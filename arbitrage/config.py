"""Engine configuration: frozen pydantic models, loaded from YAML, then env, then CLI flags.

Every model forbids unknown keys, so a misspelled key is an error instead of a silently
ignored setting. A bad value becomes one `ConfigError` line naming the key path, the value,
what was expected, and where the value came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from arbitrage.market.backoff import RateLimitConfig
from arbitrage.ops.alerts import AlertsConfig
from arbitrage.ops.guards import GuardsConfig
from arbitrage.ops.metrics import MetricsConfig
from arbitrage.ops.sysmon import SysMonConfig
from arbitrage.ops.watchdog import WatchdogConfig

DEFAULT_CONFIG_PATH = Path("config/v2/config.yml")
ENV_PREFIX = "ARB_"
ENV_NESTING = "__"

Phase = Literal["smoke", "baseline", "longrun"]
PHASE_DEFAULT_SECONDS: dict[str, float] = {"smoke": 300.0, "baseline": 1200.0, "longrun": 3600.0}


class ConfigError(Exception):
    """A configuration problem, already phrased as the one line the operator sees."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunConfig(_Frozen):
    """How a run is driven: tick pacing, source, where evidence goes."""

    phase: Phase = "smoke"
    duration_sec: float | None = Field(default=None, gt=0)
    ticks: int | None = Field(default=None, gt=0)
    seed: int = Field(default=7, ge=0)
    tick_interval_sec: float = Field(default=0.5, gt=0, le=60)
    market: Literal["synthetic", "ccxt"] = "synthetic"
    exchange_url: str | None = None
    mode: Literal["paper", "live"] = "paper"
    evidence_root: Path = Path("logs/evidence")
    log_format: Literal["text", "json"] = "text"
    book_max_age_sec: float = Field(default=5.0, gt=0)
    debug_tick_delay_sec: float = Field(default=0.0, ge=0, le=60)

    def expected_seconds(self) -> float | None:
        """The wallclock the run is expected to take; None for a tick-bounded run."""
        if self.ticks is not None:
            return None
        return self.duration_sec if self.duration_sec is not None else PHASE_DEFAULT_SECONDS[self.phase]


class VenueFees(_Frozen):
    """Taker fees in percent of notional."""

    upbit: float = Field(default=0.05, ge=0, le=5)
    binance: float = Field(default=0.10, ge=0, le=5)


class VenueMinimums(_Frozen):
    """Venue minimum order sizes; a paper fill below them would be rejected live, so it is rejected here."""

    upbit_krw: float = Field(default=5000.0, ge=0)
    binance_usdt: float = Field(default=5.0, ge=0)


class StrategyConfig(_Frozen):
    """Entry and exit rules for the premium trade."""

    entry_threshold_pct: float = Field(default=3.0, gt=-50, lt=50)
    exit_threshold_pct: float = Field(default=2.0, gt=-50, lt=50)
    order_notional_usd: float = Field(default=200.0, gt=0, le=1_000_000)
    max_hold_sec: float = Field(default=120.0, gt=0)
    fees_pct: VenueFees = VenueFees()
    min_order: VenueMinimums = VenueMinimums()
    paper_leg_fail_rate: float = Field(default=0.0, ge=0, le=1)


class SymbolsConfig(_Frozen):
    """The TopN universe: KRW markets that also trade against USDT, ranked by KRW volume."""

    universe: Literal["top5", "top10", "top20"] = "top10"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def top_n(self) -> int:
        return int(self.universe.removeprefix("top"))


class HeartbeatConfig(_Frozen):
    """The RunWatcher's own timer, independent of the trading loop."""

    interval_sec: float = Field(default=60.0, gt=0, le=3600)
    redis_ttl_sec: int = Field(default=180, gt=0)


class ServicesConfig(_Frozen):
    """PostgreSQL and Redis. Unset DSN/URL means embedded real servers under `data_dir`."""

    postgres_dsn: SecretStr | None = None
    redis_url: SecretStr | None = None
    data_dir: Path = Path(".services")
    connect_timeout_sec: float = Field(default=5.0, gt=0, le=10)
    statement_timeout_ms: int = Field(default=5000, gt=0, le=10_000)
    redis_socket_timeout_sec: float = Field(default=2.0, gt=0, le=2)
    redis_key_prefix: str = "arb"


class AppConfig(_Frozen):
    """The whole engine configuration, as validated once at bootstrap."""

    run: RunConfig = RunConfig()
    strategy: StrategyConfig = StrategyConfig()
    symbols: SymbolsConfig = SymbolsConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    services: ServicesConfig = ServicesConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    guards: GuardsConfig = GuardsConfig()
    sysmon: SysMonConfig = SysMonConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    metrics: MetricsConfig = MetricsConfig()
    alerts: AlertsConfig = AlertsConfig()
    warn_policy: Literal["stop", "continue"] = "stop"

    def redacted(self) -> dict[str, Any]:
        """The config as JSON with every secret masked: what the manifest records."""
        dumped: dict[str, Any] = self.model_dump(mode="json")
        return dumped

    def config_hash(self) -> str:
        """sha256 of the redacted config in canonical JSON."""
        canonical = json.dumps(self.redacted(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config error: {path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"config error: {path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config error: {path}: broken YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"config error: {path}: file is empty, expected a YAML mapping of settings")
    if not isinstance(data, dict):
        raise ConfigError(f"config error: {path}: top level is {type(data).__name__}, expected a mapping")
    return data


def _set_path(tree: dict[str, Any], dotted: str, value: object) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def env_overrides(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Map dotted key paths to (value, origin) from POSTGRES_DSN, REDIS_URL and ARB_SECTION__KEY."""
    found: dict[str, tuple[str, str]] = {}
    if env.get("POSTGRES_DSN"):
        found["services.postgres_dsn"] = (env["POSTGRES_DSN"], "env POSTGRES_DSN")
    if env.get("REDIS_URL"):
        found["services.redis_url"] = (env["REDIS_URL"], "env REDIS_URL")
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in {"ARB_CONFIG"}:
            continue
        dotted = name.removeprefix(ENV_PREFIX).lower().replace(ENV_NESTING, ".")
        found[dotted] = (value, f"env {name}")
    return found


def _describe(error: Mapping[str, Any], origins: Mapping[str, str], default_origin: str) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    origin = origins.get(loc, default_origin)
    if error.get("type") == "extra_forbidden":
        return f"config error: unknown key {loc!r} ({origin}): not a setting of this engine"
    value = error.get("input")
    shown = "<redacted>" if loc.endswith(("postgres_dsn", "redis_url")) else repr(value)
    return f"config error: {loc} = {shown} ({origin}): {error.get('msg', 'invalid value')}"


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, object] | None = None,
) -> AppConfig:
    """Build the effective config: YAML file, then env, then CLI flags (later wins).

    With no explicit path, `ARB_CONFIG` or `config/v2/config.yml` is read when it exists;
    otherwise the built-in defaults apply. An explicit path that is missing is an error.
    """
    env = os.environ if env is None else env
    explicit = path if path is not None else (Path(env["ARB_CONFIG"]) if env.get("ARB_CONFIG") else None)
    source_path = explicit if explicit is not None else DEFAULT_CONFIG_PATH
    tree: dict[str, Any] = {}
    if explicit is not None or DEFAULT_CONFIG_PATH.exists():
        tree = _read_yaml(source_path)
    origins: dict[str, str] = {}
    for dotted, (value, origin) in env_overrides(env).items():
        _set_path(tree, dotted, value)
        origins[dotted] = origin
    for dotted, flag in (cli or {}).items():
        if flag is None:
            continue
        _set_path(tree, dotted, flag)
        origins[dotted] = f"CLI --{dotted.split('.')[-1].replace('_', '-')}"
    try:
        return AppConfig.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(_describe(first, origins, str(source_path))) from None
