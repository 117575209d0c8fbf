"""The conditional evidence documents (OPS_PROTOCOL §5.2) as typed models, one definition each.

`stop_reason_snapshot.json` is left by a run that stopped for anything but its planned end,
`daily_report.json` by a longrun run or one that crossed a UTC midnight (D98 §7.2's daily
figures), `decision_trace.json` by a run started with `--trace`. The shipped JSON Schemas in
`evidence/schemas/` are generated from these models (`python -m evidence.schema_export`) and
tested equal to them.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from evidence.names import DAILY_REPORT, DECISION_TRACE, STOP_REASON_SNAPSHOT

CONDITIONAL_SCHEMA_VERSION: Final = 1

Direction = Literal["upbit_rich", "binance_rich"]


class _Document(BaseModel):
    """Base of the conditional documents. Most runs write none of them, so each model's validator
    is built when first used, not when the engine imports the module."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# -- stop_reason_snapshot.json --------------------------------------------------------------------
class LegState(_Document):
    """One filled leg of a position's entry."""

    venue: str
    side: Literal["buy", "sell"]
    qty: float = Field(ge=0)
    vwap: float = Field(ge=0)
    order_id: str | None


class PositionAtStop(_Document):
    """A position that was open when the loop stopped, and what the stop-time flatten made of it."""

    trade_id: str
    symbol: str
    direction: Direction
    qty: float = Field(ge=0)
    entry_tick: int = Field(ge=0)
    entry_premium_net_pct: float
    entry_legs: list[LegState]
    at_stop: Literal["flattened", "left_open"]
    left_open_reason: str | None


class BookTop(_Document):
    """The best level of one venue's book, with the venue's own timestamp."""

    venue: str
    bid: float | None
    ask: float | None
    timestamp_ms: int


class LastBooks(_Document):
    """The last books of one symbol that passed the screen: what a flatten prices its exit on."""

    symbol: str
    tick: int = Field(ge=0)
    age_ms: int
    usable_for_exit: bool
    fx: BookTop
    upbit: BookTop
    binance: BookTop


class GuardTripState(_Document):
    """The guard that tripped: its limit and what was observed."""

    guard: str
    stop_reason: str
    observed: float
    limit: float
    detail: str


class GuardsState(_Document):
    """The guards at stop: the trip (if any), the heartbeat guard inputs and every limit."""

    tripped: GuardTripState | None
    peak_pnl_usd: float
    drawdown_pct: float = Field(ge=0)
    consecutive_losses: int = Field(ge=0)
    limits: dict[str, float]


class WatchdogState(_Document):
    """The watchdog at stop: its level, the worst level reached and how it got there."""

    level: str
    max_level: str
    evaluations: int = Field(ge=0)
    transitions: list[dict[str, Any]]
    critical_reasons: list[str]


class StopReasonSnapshot(_Document):
    """The state of a run at an unplanned stop: why, the open positions, books, guards, watchdog."""

    schema_version: Literal[1] = CONDITIONAL_SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    stop_reason: str = Field(min_length=1)
    stopped_at: str
    stopped_epoch: float
    loop_count: int = Field(ge=0)
    last_loop_epoch: float | None
    open_positions: list[PositionAtStop]
    last_books: list[LastBooks]
    guards: GuardsState
    watchdog: WatchdogState
    warnings_count: int = Field(ge=0)
    first_warnings: list[str]


# -- daily_report.json ----------------------------------------------------------------------------
class DayFigures(_Document):
    """D98 §7.2's daily figures for one UTC day of the run."""

    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    runtime_hours: float = Field(ge=0, le=24)
    round_trips: int = Field(ge=0)
    wins: int = Field(ge=0)
    pnl_usd: float
    win_rate_pct: float | None = Field(ge=0, le=100)
    max_drawdown_usd: float = Field(ge=0)
    exchange_errors: int = Field(ge=0)
    rate_limit_hits: int = Field(ge=0)


class DailyReport(_Document):
    """One entry per UTC day the run touched, first day first."""

    schema_version: Literal[1] = CONDITIONAL_SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    phase: str
    required_because: list[str] = Field(min_length=1)
    run_started_epoch: float
    run_ended_epoch: float
    days: list[DayFigures] = Field(min_length=1)


# -- decision_trace.json --------------------------------------------------------------------------
class Premium(_Document):
    """A premium in percent: before fees (`gross`) and after both venues' taker fees (`net`)."""

    gross: float
    net: float


class Premiums(_Document):
    """Both directions' premiums; None where a side could not be priced (or, on an exit, the other side)."""

    upbit_rich: Premium | None
    binance_rich: Premium | None


class TraceEntry(_Document):
    """One decision: an opportunity taken (entry) or a position closed (exit), and what came of it."""

    seq: int = Field(ge=1)
    tick: int = Field(ge=0)
    symbol: str
    kind: Literal["entry", "exit"]
    direction: Direction
    premiums_pct: Premiums
    threshold_pct: float | None
    decision: Literal["enter", "exit"]
    reason: str
    outcome: Literal["opened", "rejected", "leg_unwound", "closed", "exit_failed"]
    trade_id: str | None


class DecisionTrace(_Document):
    """The decisions of a `--trace` run; past `max_entries` they are counted in `dropped`, not kept."""

    schema_version: Literal[1] = CONDITIONAL_SCHEMA_VERSION
    run_id: str = Field(min_length=1)
    max_entries: int = Field(ge=1)
    recorded: int = Field(ge=0)
    dropped: int = Field(ge=0)
    entries: list[TraceEntry]


MODELS: Final[dict[str, type[BaseModel]]] = {
    STOP_REASON_SNAPSHOT: StopReasonSnapshot,
    DAILY_REPORT: DailyReport,
    DECISION_TRACE: DecisionTrace,
}
"""Conditional evidence file name -> its model."""
