"""Engine configuration: frozen pydantic models, loaded from YAML, then env, then CLI flags.

Every model forbids unknown keys, so a misspelled key is an error instead of a silently
ignored setting. A bad value becomes one `ConfigError` line naming the key path, the value,
what was expected, and where the value came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from arbitrage.config_file import ConfigFileError, read_config_file
from arbitrage.config_strict import clipped, env_key_problem, leaf_problem, shown
from arbitrage.market.backoff import RateLimitConfig
from arbitrage.ops.alerts_config import AlertsConfig
from arbitrage.ops.anomaly import AnomalyConfig
from arbitrage.ops.debug_load import DebugConfig
from arbitrage.ops.guards import GuardsConfig
from arbitrage.ops.metrics import MetricsConfig
from arbitrage.ops.sysmon import SysMonConfig
from arbitrage.ops.watchdog import WatchdogConfig
from arbitrage.state_dirs import (
    BUILT_IN,
    STATE_KEYS,
    StateBase,
    StatePath,
    find_project_root,
    resolve_state_path,
)

DEFAULT_CONFIG_PATH = Path("config/v2/config.yml")
ENV_PREFIX = "ARB_"
ENV_NESTING = "__"

Phase = Literal["smoke", "baseline", "longrun"]
PHASE_DEFAULT_SECONDS: dict[str, float] = {"smoke": 300.0, "baseline": 1200.0, "longrun": 3600.0}
PG_INT_MAX = 2_147_483_647
MAX_RUN_SECONDS = 30 * 86_400.0


class ConfigError(Exception):
    """A configuration problem, already phrased as the one line the operator sees."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunConfig(_Frozen):
    """How a run is driven: tick pacing, source, where evidence goes."""

    phase: Phase = "smoke"
    duration_sec: float | None = Field(default=None, gt=0, le=MAX_RUN_SECONDS)
    ticks: int | None = Field(default=None, gt=0, le=PG_INT_MAX)
    seed: int = Field(default=7, ge=0, le=PG_INT_MAX)
    tick_interval_sec: float = Field(default=0.5, gt=0, le=60)
    market: Literal["synthetic", "ccxt"] = "synthetic"
    exchange_url: str | None = None
    mode: Literal["paper", "live"] = "paper"
    evidence_root: Path = Path("logs/evidence")
    log_format: Literal["text", "json"] = "text"
    book_max_age_sec: float = Field(default=5.0, gt=0, le=3600)
    debug_tick_delay_sec: float = Field(default=0.0, ge=0, le=60)
    trace: bool = False
    """Write `decision_trace.json`: every entry and exit decision with its premiums and reason."""

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
    max_hold_sec: float = Field(default=120.0, gt=0, le=MAX_RUN_SECONDS)
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
    redis_ttl_sec: int = Field(default=180, gt=0, le=86_400)


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
    anomaly: AnomalyConfig = AnomalyConfig()
    metrics: MetricsConfig = MetricsConfig()
    alerts: AlertsConfig = AlertsConfig()
    debug: DebugConfig = DebugConfig()
    warn_policy: Literal["stop", "continue"] = "stop"

    def redacted(self) -> dict[str, Any]:
        """The config as JSON with every secret masked: what the manifest records."""
        dumped: dict[str, Any] = self.model_dump(mode="json")
        return dumped

    def config_hash(self) -> str:
        """sha256 of the redacted config in canonical JSON."""
        canonical = json.dumps(self.redacted(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _set_path(tree: dict[str, Any], dotted: str, value: object, origin: str, below: str) -> None:
    parts = dotted.split(".")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"config error: {where} = {clipped(child)} ({below}): expected a mapping of settings,"
                f" so {origin} cannot set {dotted}"
            )
        node = child
    node[parts[-1]] = value


def _dotted_leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _dotted_leaves(value, f"{dotted}.")
        else:
            yield dotted


def env_overrides(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Map dotted key paths to (value, origin) from POSTGRES_DSN, REDIS_URL and ARB_SECTION__KEY."""
    found: dict[str, tuple[str, str]] = {}
    if env.get("POSTGRES_DSN"):
        found["services.postgres_dsn"] = (env["POSTGRES_DSN"], "env POSTGRES_DSN")
    if env.get("REDIS_URL"):
        found["services.redis_url"] = (env["REDIS_URL"], "env REDIS_URL")
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in {"ARB_CONFIG"}:
            continue
        dotted = name.removeprefix(ENV_PREFIX).lower().replace(ENV_NESTING, ".")
        found[dotted] = (value, f"env {name}")
    return found


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where each setting came from, for error lines raised after loading."""

    config: AppConfig
    file: Path | None
    origins: Mapping[str, str] = field(default_factory=dict)
    file_keys: frozenset[str] = frozenset()
    state: tuple[StatePath, ...] = ()
    """The state directories made absolute by :func:`with_state_dirs`; empty until then."""

    def origin(self, dotted: str) -> str:
        """The real source of `dotted`: the env variable, the CLI flag, the file, or the defaults.

        A key of a section set from several places names each of them.
        """
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in self.origins:
                return self.origins[prefix]
            if prefix in self.file_keys:
                return str(self.file)
        under = f"{dotted}."
        found = sorted({origin for key, origin in self.origins.items() if key.startswith(under)})
        if any(key.startswith(under) for key in self.file_keys):
            found.append(str(self.file))
        if found:
            return " and ".join(found)
        return BUILT_IN


def _describe(error: Mapping[str, Any], loaded: LoadedConfig) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    origin = loaded.origin(loc)
    value = error.get("input")
    if error.get("type") == "extra_forbidden":
        return (
            f"config error: unknown key {loc!r} = {clipped(value)} ({origin}): not a setting of this engine"
        )
    expected = error.get("msg", "invalid value")
    return f"config error: {loc} = {shown(AppConfig, loc, value)} ({origin}): {expected}"


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_config_file(path)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None


def load(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, object] | None = None,
    flags: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Build the effective config (YAML file, then env, then CLI flags; later wins) with its origins.

    With no explicit path, `ARB_CONFIG` or the project's `config/v2/config.yml` (searched upward
    from the current directory) is read when it exists; otherwise the built-in defaults apply.
    An explicit path that is missing is an error.
    `flags` names the real command-line flag of each CLI key, for error lines.
    """
    env = os.environ if env is None else env
    explicit = path if path is not None else (Path(env["ARB_CONFIG"]) if env.get("ARB_CONFIG") else None)
    file = explicit
    root = find_project_root(Path.cwd()) if file is None else None
    if root is not None:
        file = root / DEFAULT_CONFIG_PATH
    tree: dict[str, Any] = _read(file) if file is not None else {}
    below = str(file) if file is not None else "built-in default"
    file_keys = frozenset(_dotted_leaves(tree))
    origins: dict[str, str] = {}
    for dotted, (value, origin) in env_overrides(env).items():
        problem = env_key_problem(AppConfig, dotted, value, origin)
        if problem is not None:
            raise ConfigError(problem)
        _set_path(tree, dotted, value, origin, below)
        origins[dotted] = origin
    for dotted, flag in (cli or {}).items():
        if flag is None:
            continue
        origin = f"CLI {(flags or {})[dotted]}" if dotted in (flags or {}) else "command line"
        _set_path(tree, dotted, flag, origin, below)
        origins[dotted] = origin
    draft = LoadedConfig(AppConfig(), file, origins, file_keys)
    problem = leaf_problem(AppConfig, tree, draft.origin)
    if problem is not None:
        raise ConfigError(problem)
    try:
        config = AppConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], draft)) from None
    return LoadedConfig(config, file, origins, file_keys)


def with_state_dirs(loaded: LoadedConfig, cwd: Path | None = None) -> LoadedConfig:
    """The same config with `run.evidence_root` and `services.data_dir` made absolute.

    Built-in defaults go under the project root around `cwd`, else the user data directory;
    explicit settings resolve as :func:`arbitrage.state_dirs.resolve_state_path` says.
    """
    cwd = Path.cwd() if cwd is None else cwd
    base = StateBase.discover(cwd)
    config = loaded.config
    current = {"run.evidence_root": config.run.evidence_root, "services.data_dir": config.services.data_dir}
    state = tuple(
        resolve_state_path(key, current[key], loaded.origin(key), base=base, file=loaded.file, cwd=cwd)
        for key in STATE_KEYS
    )
    paths = {entry.key: entry.path for entry in state}
    config = config.model_copy(
        update={
            "run": config.run.model_copy(update={"evidence_root": paths["run.evidence_root"]}),
            "services": config.services.model_copy(update={"data_dir": paths["services.data_dir"]}),
        }
    )
    return replace(loaded, config=config, state=state)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, object] | None = None,
    flags: Mapping[str, str] | None = None,
) -> AppConfig:
    """The effective config alone; see `load`."""
    return load(path, env, cli, flags).config
