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
GROUPS: Final[tuple[Group, ...]] = ("trading", "risk", "performance", "alerting")


@dataclass(frozen=True)
class KpiDef:
    """One KPI: where it belongs, what it means, and how it is computed from a run's facts."""

    name: str
    group: Group
    definition: str
    compute: Callable[[RunFacts], Value]


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


CATALOG: Final[tuple[KpiDef, ...]] = (
    # trading
    KpiDef(
        "round_trips",
        "trading",
        "Closed round trips (entry and exit leg both filled).",
        lambda f: _int(f.number("closed_trades")),
    ),
    KpiDef(
        "entry_legs",
        "trading",
        "Entry legs PostgreSQL acknowledged.",
        lambda f: _int(f.number("ledger", "entry_legs_ok")),
    ),
    KpiDef(
        "exit_legs",
        "trading",
        "Exit legs PostgreSQL acknowledged.",
        lambda f: _int(f.number("ledger", "exit_legs_ok")),
    ),
    KpiDef(
        "wins", "trading", "Round trips closed with a positive net PnL.", lambda f: _int(f.number("wins"))
    ),
    KpiDef(
        "losses",
        "trading",
        "Round trips closed with a zero or negative net PnL.",
        lambda f: _int(f.number("losses")),
    ),
    KpiDef(
        "win_rate_pct",
        "trading",
        "Wins over closed round trips, in %.",
        lambda f: _ratio(f.number("wins"), f.number("closed_trades"), 100.0),
    ),
    KpiDef(
        "net_pnl_usd",
        "trading",
        "Net PnL after fees over the run, in USD.",
        lambda f: f.number("net_pnl_usd"),
    ),
    KpiDef(
        "net_pnl_krw",
        "trading",
        "Net PnL after fees over the run, in KRW.",
        lambda f: f.number("net_pnl_krw"),
    ),
    KpiDef(
        "avg_pnl_per_round_trip_usd",
        "trading",
        "Net PnL in USD divided by closed round trips.",
        lambda f: _ratio(f.number("net_pnl_usd"), f.number("closed_trades")),
    ),
    KpiDef(
        "opportunities_generated",
        "trading",
        "Premium opportunities the strategy found.",
        lambda f: _int(f.number("opportunities_generated")),
    ),
    KpiDef(
        "round_trips_per_hour",
        "trading",
        "Closed round trips per hour of wall-clock run time.",
        lambda f: _per_hour(f.number("closed_trades"), f),
    ),
    KpiDef(
        "open_positions_at_end",
        "trading",
        "Positions still open when the run ended (flatten left them).",
        _open_at_end,
    ),
    # risk
    KpiDef(
        "max_drawdown_pct",
        "risk",
        "Largest drawdown from peak PnL seen at any heartbeat, in %.",
        lambda f: _beat_max(f, "drawdown_pct"),
    ),
    KpiDef(
        "peak_pnl_usd",
        "risk",
        "Highest cumulative PnL seen at any heartbeat, in USD.",
        lambda f: _beat_max(f, "peak_pnl"),
    ),
    KpiDef(
        "max_consecutive_losses",
        "risk",
        "Longest run of losing round trips seen at any heartbeat.",
        lambda f: _int(_beat_max(f, "consecutive_losses")),
    ),
    KpiDef(
        "guard_trips",
        "risk",
        "Risk guards that tripped and stopped the run (0 or 1).",
        lambda f: None if "guards" not in f.kpi else int(f.kpi["guards"] is not None),
    ),
    KpiDef(
        "guard_triggers_per_hour",
        "risk",
        "Guard trips plus refused orders and books, per hour.",
        lambda f: _per_hour(guard_triggers_count(f), f),
    ),
    KpiDef(
        "leg_unwinds",
        "risk",
        "Entries where one leg failed and the other was unwound.",
        lambda f: _int(f.number("leg_unwinds")),
    ),
    KpiDef(
        "exit_failures",
        "risk",
        "Exit attempts that failed and left the position open for a retry.",
        lambda f: _int(f.number("exit_failures")),
    ),
    KpiDef(
        "hedge_residual_usd",
        "risk",
        "Sum over trades of the absolute Upbit-minus-Binance quantity left by entries and exits, in USD.",
        total_abs_residual_usd,
    ),
    KpiDef(
        "watchdog_max_level",
        "risk",
        "Worst watchdog level reached (OK, WARN, ERROR, CRITICAL).",
        _watchdog_max,
    ),
    # performance
    KpiDef(
        "loop_latency_p50_ms",
        "performance",
        "Median engine processing time per loop iteration (venue wait excluded), in ms.",
        lambda f: f.number("loop_latency_ms", "p50"),
    ),
    KpiDef(
        "loop_latency_p95_ms",
        "performance",
        "95th percentile engine processing time per loop iteration (venue wait excluded), in ms.",
        lambda f: f.number("loop_latency_ms", "p95"),
    ),
    KpiDef(
        "loop_latency_p99_ms",
        "performance",
        "99th percentile engine processing time per loop iteration (venue wait excluded), in ms.",
        lambda f: f.number("loop_latency_ms", "p99"),
    ),
    KpiDef(
        "loop_iterations",
        "performance",
        "Trading-loop iterations completed.",
        lambda f: _int(f.number("loop_count")),
    ),
    KpiDef(
        "cpu_pct_peak",
        "performance",
        "Highest process CPU sampled by the resource monitor, in %.",
        lambda f: f.number("resources", "peak", "cpu_pct"),
    ),
    KpiDef(
        "rss_mb_peak",
        "performance",
        "Highest process resident memory sampled, in MB.",
        lambda f: f.number("resources", "peak", "rss_mb"),
    ),
    KpiDef(
        "rss_growth_pct_per_hour",
        "performance",
        "RSS growth per hour, least-squares over heartbeat samples after the warm-up, in %.",
        _rss_growth_pct,
    ),
    KpiDef(
        "crash_count", "performance", "Unsealed manifest (1) plus Tracebacks in engine.log.", _crash_count
    ),
    # alerting
    KpiDef(
        "alerts_sent", "alerting", "Alerts the notifier delivered.", lambda f: _int(f.alerts("sent_count"))
    ),
    KpiDef(
        "alerts_dlq",
        "alerting",
        "Alerts that ended in the dead-letter queue.",
        lambda f: _int(f.alerts("dlq_count")),
    ),
    KpiDef(
        "alerts_retried",
        "alerting",
        "Delivery retries the notifier made.",
        lambda f: _int(f.alerts("retry_count")),
    ),
    KpiDef(
        "alerts_disabled",
        "alerting",
        "Alerts recorded DISABLED because no channel is configured.",
        lambda f: _int(f.alerts("disabled_count")),
    ),
    KpiDef(
        "alerts_pending_at_end",
        "alerting",
        "Alerts still queued when the notifier closed.",
        lambda f: _int(f.alerts("pending")),
    ),
    KpiDef(
        "alert_record_failures",
        "alerting",
        "Alert deliveries that could not be recorded in PostgreSQL.",
        lambda f: _int(f.alerts("record_failures")),
    ),
    KpiDef(
        "alert_success_rate_pct",
        "alerting",
        "Delivered over delivered plus dead-lettered alerts, in %.",
        alert_success_pct,
    ),
    KpiDef(
        "notifier_available",
        "alerting",
        "1.0 when an alert channel is configured, else 0.0.",
        _notifier_available,
    ),
)


def kpi_groups(facts: RunFacts) -> dict[str, dict[str, Value]]:
    """Every catalogued KPI's value, grouped as D77-4 groups them."""
    grouped: dict[str, dict[str, Value]] = {group: {} for group in GROUPS}
    for kpi in CATALOG:
        grouped[kpi.group][kpi.name] = kpi.compute(facts)
    return grouped
