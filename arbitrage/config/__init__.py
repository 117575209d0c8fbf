"""The engine's configuration: one config-only module per section, the whole (`AppConfig`) and its loader.

Runtime modules import their section from here; nothing here imports a runtime module, a
database or cache client, an exchange client or a metrics library. The names below are the
public import path (`from arbitrage.config import AppConfig, load`).
"""

from __future__ import annotations

from arbitrage.config.alerts import AlertsConfig
from arbitrage.config.anomaly import AnomalyConfig, AnomalyRule
from arbitrage.config.app import AppConfig
from arbitrage.config.base import MAX_RUN_SECONDS, PG_INT_MAX, Frozen
from arbitrage.config.debug import DebugConfig
from arbitrage.config.guards import GuardsConfig
from arbitrage.config.load import (
    DEFAULT_CONFIG_PATH,
    ENV_NESTING,
    ENV_PREFIX,
    ConfigError,
    LoadedConfig,
    env_overrides,
    load,
    load_config,
    with_state_dirs,
)
from arbitrage.config.metrics import MetricsConfig
from arbitrage.config.rate_limit import RateLimitConfig
from arbitrage.config.residual import ResidualConfig
from arbitrage.config.run import PHASE_DEFAULT_SECONDS, Phase, ProfileName, RunConfig
from arbitrage.config.services import HeartbeatConfig, ServicesConfig
from arbitrage.config.strategy import StrategyConfig, VenueFees, VenueMinimums
from arbitrage.config.symbols import SymbolsConfig
from arbitrage.config.sysmon import SysMonConfig
from arbitrage.config.watchdog import WatchdogConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_NESTING",
    "ENV_PREFIX",
    "MAX_RUN_SECONDS",
    "PG_INT_MAX",
    "PHASE_DEFAULT_SECONDS",
    "AlertsConfig",
    "AnomalyConfig",
    "AnomalyRule",
    "AppConfig",
    "ConfigError",
    "DebugConfig",
    "Frozen",
    "GuardsConfig",
    "HeartbeatConfig",
    "LoadedConfig",
    "MetricsConfig",
    "Phase",
    "ProfileName",
    "RateLimitConfig",
    "ResidualConfig",
    "RunConfig",
    "ServicesConfig",
    "StrategyConfig",
    "SymbolsConfig",
    "SysMonConfig",
    "VenueFees",
    "VenueMinimums",
    "WatchdogConfig",
    "env_overrides",
    "load",
    "load_config",
    "with_state_dirs",
]
