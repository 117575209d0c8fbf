"""D77-4's KPIs in its four groups (trading, risk, performance, alerting), each defined once.

Each KPI has a name, a group, a one-line definition (the README's KPI table is checked against
these) and a function of RunFacts. `verify` writes the values into analysis_result.json; a value
the evidence cannot give is None, so a reader sees what is missing instead of a zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from evidence.criteria import alert_success_pct, guard_triggers_count
from evidence.residual_rule import total_abs_residual_usd
from evidence.rss_growth import rss_growth_report
from evidence.run_facts import RunFacts

Group = Literal["trading", "risk", "performance", "alerting"]
Value = float | int | str | None
Compute = Callable[[RunFacts], Value]
GROUPS: Final[tuple[Group, ...]] = ("trading", "risk", "performance", "alerting")


@dataclass(frozen=True)
class KpiDef:
    """One KPI: where it belongs, what it means, and how it is computed from a run's facts."""

    name: str
    group: Group
    definition: str
    compute: Compute


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _ratio(numerator: float | None, denominator: float | None, scale: float = 1.0) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(scale * numerator / denominator, 4)


def _per_hour(count: float | None, facts: RunFacts) -> float | None:
    return _ratio(count, facts.run_seconds, 3600.0)


def _beat_max(facts: RunFacts, attribute: str) -> float | None:
    values = [v for b in facts.beats if (v := getattr(b, attribute)) is not None]
    return max(values) if values else None


def _rss_growth_pct(facts: RunFacts) -> float | None:
    samples = [(b.epoch, b.rss_mb) for b in facts.beats if b.rss_mb is not None]
    warmup = facts.number("resources", "rss_growth", "warmup_sec")
    pct = rss_growth_report(samples, 60.0 if warmup is None else warmup, 10.0, 0.0)["pct_per_hour"]
    return None if pct is None else float(pct)


def _open_at_end(facts: RunFacts) -> int | None:
    listed = facts.kpi.get("open_positions")
    return len(listed) if isinstance(listed, list) else _int(facts.number("open_positions"))


def _notifier_available(facts: RunFacts) -> float | None:
    alerts = facts.kpi.get("alerts")
    available = alerts.get("notifier_available") if isinstance(alerts, dict) else None
    return None if not isinstance(available, bool) else float(available)


def _crash_count(facts: RunFacts) -> int | None:
    if facts.manifest_status is None and facts.traceback_count is None:
        return None
    return int(facts.crashed) + (facts.traceback_count or 0)


def _watchdog_max(facts: RunFacts) -> str | None:
    watchdog = facts.kpi.get("watchdog")
    level = watchdog.get("max_level") if isinstance(watchdog, dict) else None
    return level if isinstance(level, str) else None


def _count(*path: str) -> Compute:
    """A whole count read from kpi.json."""
    return lambda f: _int(f.number(*path))


def _reading(*path: str) -> Compute:
    """A measured number read from kpi.json as it stands."""
    return lambda f: f.number(*path)


def _alert_count(key: str) -> Compute:
    """A whole count read from kpi.json's alerts block."""
    return lambda f: _int(f.alerts(key))


def _peak(attribute: str) -> Compute:
    """The highest value a heartbeat reported for one attribute."""
    return lambda f: _beat_max(f, attribute)


def _section(group: Group, *rows: tuple[str, str, Compute]) -> tuple[KpiDef, ...]:
    return tuple(KpiDef(name, group, definition, compute) for name, definition, compute in rows)


_TRADING: Final = _section(
    "trading",
    ("round_trips", "Closed round trips (entry and exit leg both filled).", _count("closed_trades")),
    ("entry_legs", "Entry legs PostgreSQL acknowledged.", _count("ledger", "entry_legs_ok")),
    ("exit_legs", "Exit legs PostgreSQL acknowledged.", _count("ledger", "exit_legs_ok")),
    ("wins", "Round trips closed with a positive net PnL.", _count("wins")),
    ("losses", "Round trips closed with a zero or negative net PnL.", _count("losses")),
    (
        "win_rate_pct",
        "Wins over closed round trips, in %.",
        lambda f: _ratio(f.number("wins"), f.number("closed_trades"), 100.0),
    ),
    ("net_pnl_usd", "Net PnL after fees over the run, in USD.", _reading("net_pnl_usd")),
    ("net_pnl_krw", "Net PnL after fees over the run, in KRW.", _reading("net_pnl_krw")),
    (
        "avg_pnl_per_round_trip_usd",
        "Net PnL in USD divided by closed round trips.",
        lambda f: _ratio(f.number("net_pnl_usd"), f.number("closed_trades")),
    ),
    (
        "opportunities_generated",
        "Premium opportunities the strategy found.",
        _count("opportunities_generated"),
    ),
    (
        "round_trips_per_hour",
        "Closed round trips per hour of wall-clock run time.",
        lambda f: _per_hour(f.number("closed_trades"), f),
    ),
    ("open_positions_at_end", "Positions still open when the run ended (flatten left them).", _open_at_end),
)
_RISK: Final = _section(
    "risk",
    (
        "max_drawdown_pct",
        "Largest drawdown from peak PnL seen at any heartbeat, in %.",
        _peak("drawdown_pct"),
    ),
    ("peak_pnl_usd", "Highest cumulative PnL seen at any heartbeat, in USD.", _peak("peak_pnl")),
    (
        "max_consecutive_losses",
        "Longest run of losing round trips seen at any heartbeat.",
        lambda f: _int(_beat_max(f, "consecutive_losses")),
    ),
    (
        "guard_trips",
        "Risk guards that tripped and stopped the run (0 or 1).",
        lambda f: None if "guards" not in f.kpi else int(f.kpi["guards"] is not None),
    ),
    (
        "guard_triggers_per_hour",
        "Guard trips plus refused orders and books, per hour.",
        lambda f: _per_hour(guard_triggers_count(f), f),
    ),
    ("leg_unwinds", "Entries where one leg failed and the other was unwound.", _count("leg_unwinds")),
    (
        "exit_failures",
        "Exit attempts that failed and left the position open for a retry.",
        _count("exit_failures"),
    ),
    (
        "hedge_residual_usd",
        "Sum over trades of the absolute Upbit-minus-Binance quantity left by entries and exits, in USD.",
        total_abs_residual_usd,
    ),
    ("watchdog_max_level", "Worst watchdog level reached (OK, WARN, ERROR, CRITICAL).", _watchdog_max),
)
_PERFORMANCE: Final = _section(
    "performance",
    (
        "loop_latency_p50_ms",
        "Median engine processing time per loop iteration (venue wait excluded), in ms.",
        _reading("loop_latency_ms", "p50"),
    ),
    (
        "loop_latency_p95_ms",
        "95th percentile engine processing time per loop iteration (venue wait excluded), in ms.",
        _reading("loop_latency_ms", "p95"),
    ),
    (
        "loop_latency_p99_ms",
        "99th percentile engine processing time per loop iteration (venue wait excluded), in ms.",
        _reading("loop_latency_ms", "p99"),
    ),
    ("loop_iterations", "Trading-loop iterations completed.", _count("loop_count")),
    (
        "cpu_pct_peak",
        "Highest process CPU sampled by the resource monitor, in %.",
        _reading("resources", "peak", "cpu_pct"),
    ),
    (
        "rss_mb_peak",
        "Highest process resident memory sampled, in MB.",
        _reading("resources", "peak", "rss_mb"),
    ),
    (
        "rss_growth_pct_per_hour",
        "RSS growth per hour, least-squares over heartbeat samples after the warm-up, in %.",
        _rss_growth_pct,
    ),
    ("crash_count", "Unsealed manifest (1) plus Tracebacks in engine.log.", _crash_count),
)
_ALERTING: Final = _section(
    "alerting",
    ("alerts_sent", "Alerts the notifier delivered.", _alert_count("sent_count")),
    ("alerts_dlq", "Alerts that ended in the dead-letter queue.", _alert_count("dlq_count")),
    ("alerts_retried", "Delivery retries the notifier made.", _alert_count("retry_count")),
    (
        "alerts_disabled",
        "Alerts recorded DISABLED because no channel is configured.",
        _alert_count("disabled_count"),
    ),
    ("alerts_pending_at_end", "Alerts still queued when the notifier closed.", _alert_count("pending")),
    (
        "alert_record_failures",
        "Alert deliveries that could not be recorded in PostgreSQL.",
        _alert_count("record_failures"),
    ),
    (
        "alert_success_rate_pct",
        "Delivered over delivered plus dead-lettered alerts, in %.",
        alert_success_pct,
    ),
    ("notifier_available", "1.0 when an alert channel is configured, else 0.0.", _notifier_available),
)
CATALOG: Final[tuple[KpiDef, ...]] = (*_TRADING, *_RISK, *_PERFORMANCE, *_ALERTING)


def kpi_groups(facts: RunFacts) -> dict[str, dict[str, Value]]:
    """Every catalogued KPI's value, grouped as D77-4 groups them."""
    grouped: dict[str, dict[str, Value]] = {group: {} for group in GROUPS}
    for kpi in CATALOG:
        grouped[kpi.group][kpi.name] = kpi.compute(facts)
    return grouped
