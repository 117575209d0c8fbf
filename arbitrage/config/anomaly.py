"""The `anomaly` section: the D98 §3.2 table's rows, each a threshold, a sustain time, a window and an action.

`kill` stops the run with `ANOMALY_<RULE>` and activates the kill switch; `investigate` sends an
alert and logs a WARNING. The defaults are the runbook's numbers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from arbitrage.config.base import Frozen
from arbitrage.config.memory import MEMORY_OPERATING_MB

Action = Literal["kill", "investigate"]
KILL: Action = "kill"
INVESTIGATE: Action = "investigate"


class AnomalyRule(Frozen):
    """One row of the table; the unit of `threshold` is the row's (see `AnomalyConfig`)."""

    enabled: bool = True
    threshold: float = Field(ge=0)
    sustain_sec: float = Field(default=0.0, ge=0, le=86_400)
    window_sec: float = Field(default=60.0, gt=0, le=86_400)
    action: Action = KILL


class AnomalyConfig(Frozen):
    """The D98 §3.2 rows; each is overridable on its own, e.g. `ARB_ANOMALY__CPU__SUSTAIN_SEC=10`."""

    loop_latency: AnomalyRule = AnomalyRule(threshold=100.0, sustain_sec=60.0)
    """The engine's processing time per loop iteration in ms (or of the iteration in progress), the
    waits on the venues (market data, live orders) left out (`arbitrage.market.fetcher`), held for
    `sustain_sec`."""
    cpu: AnomalyRule = AnomalyRule(threshold=80.0, sustain_sec=120.0)
    """Percent of one core used by the engine process, held for `sustain_sec`."""
    memory: AnomalyRule = AnomalyRule(threshold=MEMORY_OPERATING_MB)
    """Resident memory of the engine process in MB: the operating limit of `arbitrage.config.memory`."""
    pnl_drop: AnomalyRule = AnomalyRule(threshold=50.0, window_sec=1800.0)
    """USD fallen from the highest realized net PnL within the trailing window (run start = 0)."""
    exchange_errors: AnomalyRule = AnomalyRule(threshold=10.0, window_sec=60.0)
    """Exchange errors (market-data failures) within the trailing window."""
    rate_limit_hits: AnomalyRule = AnomalyRule(threshold=5.0, window_sec=600.0)
    """429/418 answers from the venues within the trailing window."""
    no_entry: AnomalyRule = AnomalyRule(threshold=300.0, action=INVESTIGATE)
    """Seconds since the last entry (or the start of judging)."""
    no_exit: AnomalyRule = AnomalyRule(threshold=600.0, action=INVESTIGATE)
    """Seconds since the last exit (or the start of judging)."""
    paper: bool = False
    """Judge paper runs too. The table is the live runbook's: by default only live runs are judged,
    so paper soaks and fault drills keep their own stop rules (the watchdog and the guards)."""

    @model_validator(mode="before")
    @classmethod
    def _over_the_defaults(cls, data: Any) -> Any:
        """A row given in part keeps the runbook's numbers for the settings it leaves out."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, given in data.items():
            field = cls.model_fields.get(name)
            if field is not None and isinstance(given, dict) and isinstance(field.default, AnomalyRule):
                merged[name] = field.default.model_dump() | given
        return merged


RULES: tuple[str, ...] = tuple(
    name for name, field in AnomalyConfig.model_fields.items() if isinstance(field.default, AnomalyRule)
)
