"""The whole engine configuration: one field per section, each section in its own module here.

A new section is a module beside this one holding a `Frozen` model, and one field below.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from arbitrage.config.alerts import AlertsConfig
from arbitrage.config.anomaly import AnomalyConfig
from arbitrage.config.base import Frozen
from arbitrage.config.debug import DebugConfig
from arbitrage.config.guards import GuardsConfig
from arbitrage.config.live import LiveConfig
from arbitrage.config.metrics import MetricsConfig
from arbitrage.config.rate_limit import RateLimitConfig
from arbitrage.config.residual import ResidualConfig
from arbitrage.config.run import RunConfig
from arbitrage.config.services import HeartbeatConfig, ServicesConfig
from arbitrage.config.strategy import StrategyConfig
from arbitrage.config.symbols import SymbolsConfig
from arbitrage.config.sysmon import SysMonConfig
from arbitrage.config.watchdog import WatchdogConfig


class AppConfig(Frozen):
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
    residual: ResidualConfig = ResidualConfig()
    live: LiveConfig = LiveConfig()
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
