"""Guards: each limit may be reached but not crossed; the defaults leave a normal paper run alone."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from arbitrage.config import AppConfig, ConfigError, GuardsConfig, load_config
from arbitrage.ops.guards import GuardInputs, Guards, PnlTally

CALM = GuardInputs(
    daily_pnl_usd=0.0,
    worst_trade_pnl_usd=None,
    open_positions=0,
    rss_mb=80.0,
    consecutive_errors=0,
    peak_pnl_usd=0.0,
    drawdown_pct=0.0,
    consecutive_losses=0,
)

# The worst values seen over 24 seeded 2000-tick paper runs (top10 and top20 universes).
PAPER_WORST = GuardInputs(
    daily_pnl_usd=-3.7,
    worst_trade_pnl_usd=-3.7,
    open_positions=20,
    rss_mb=65.0,
    consecutive_errors=0,
    peak_pnl_usd=33.0,
    drawdown_pct=16.7,
    consecutive_losses=6,
)

LIMIT = GuardsConfig(
    max_daily_loss_usd=50.0,
    max_single_trade_loss_usd=10.0,
    max_open_positions=3,
    max_memory_mb=300.0,
    max_consecutive_errors=4,
    max_drawdown_pct=25.0,
    drawdown_min_peak_usd=20.0,
    max_consecutive_losses=5,
)

# guard name -> (inputs exactly at the limit, inputs just beyond it)
EDGES: dict[str, tuple[dict[str, float | int], dict[str, float | int]]] = {
    "SINGLE_TRADE_LOSS": ({"worst_trade_pnl_usd": -10.0}, {"worst_trade_pnl_usd": -10.01}),
    "DAILY_LOSS": ({"daily_pnl_usd": -50.0}, {"daily_pnl_usd": -50.01}),
    "OPEN_POSITIONS": ({"open_positions": 3}, {"open_positions": 4}),
    "MEMORY": ({"rss_mb": 300.0}, {"rss_mb": 300.5}),
    "CONSECUTIVE_ERRORS": ({"consecutive_errors": 4}, {"consecutive_errors": 5}),
    "DRAWDOWN": ({"peak_pnl_usd": 40.0, "drawdown_pct": 25.0}, {"peak_pnl_usd": 40.0, "drawdown_pct": 25.1}),
    "CONSECUTIVE_LOSSES": ({"consecutive_losses": 5}, {"consecutive_losses": 6}),
}


def test_defaults_hold_for_calm_and_for_the_worst_paper_run_seen() -> None:
    guards = Guards(GuardsConfig())
    assert guards.check(CALM) is None
    assert guards.check_all(PAPER_WORST) == []


@pytest.mark.parametrize("name", list(EDGES))
def test_each_guard_allows_its_limit_and_trips_beyond_it(name: str) -> None:
    at_limit, beyond = EDGES[name]
    guards = Guards(LIMIT)
    assert guards.check(dataclasses.replace(CALM, **at_limit)) is None  # type: ignore[arg-type]
    trip = guards.check(dataclasses.replace(CALM, **beyond))  # type: ignore[arg-type]
    assert trip is not None
    assert trip.name == name
    assert trip.stop_reason == f"GUARD_{name}"
    assert trip.observed > trip.limit
    assert "limit" in trip.detail
    assert trip.to_event()["stop_reason"] == f"GUARD_{name}"


def test_single_trade_loss_reports_the_loss_as_a_positive_number() -> None:
    trip = Guards(LIMIT).check(dataclasses.replace(CALM, worst_trade_pnl_usd=-12.5))
    assert trip is not None
    assert (trip.observed, trip.limit) == (12.5, 10.0)
    assert trip.detail == "12.5 USD lost by a single trade, limit 10"


def test_drawdown_is_not_judged_below_the_minimum_peak() -> None:
    early = dataclasses.replace(CALM, peak_pnl_usd=2.0, drawdown_pct=150.0)
    assert Guards(LIMIT).check(early) is None


@pytest.mark.parametrize(
    ("field", "name"),
    [("daily_pnl_usd", "DAILY_LOSS"), ("worst_trade_pnl_usd", "SINGLE_TRADE_LOSS"), ("rss_mb", "MEMORY")],
)
def test_nan_counts_as_crossed(field: str, name: str) -> None:
    trip = Guards(GuardsConfig()).check(dataclasses.replace(CALM, **{field: float("nan")}))  # type: ignore[arg-type]
    assert trip is not None and trip.name == name


def test_money_guards_come_first_when_several_trip() -> None:
    bad = dataclasses.replace(
        CALM, rss_mb=9999.0, open_positions=99, worst_trade_pnl_usd=-99.0, daily_pnl_usd=-99.0
    )
    guards = Guards(LIMIT)
    assert [t.name for t in guards.check_all(bad)] == [
        "SINGLE_TRADE_LOSS",
        "DAILY_LOSS",
        "OPEN_POSITIONS",
        "MEMORY",
    ]
    trip = guards.check(bad)
    assert trip is not None and trip.name == "SINGLE_TRADE_LOSS"


def test_config_is_frozen_strict_and_overridable_from_env() -> None:
    with pytest.raises(ValidationError):
        GuardsConfig(max_single_trade_los_usd=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        GuardsConfig(max_open_positions=0)
    config = load_config(None, env={"ARB_GUARDS__MAX_SINGLE_TRADE_LOSS_USD": "0.01"})
    assert config.guards.max_single_trade_loss_usd == 0.01
    assert AppConfig().guards == GuardsConfig()
    with pytest.raises(ConfigError, match=r"guards\.max_drawdown_pct = '150'"):
        load_config(None, env={"ARB_GUARDS__MAX_DRAWDOWN_PCT": "150"})
    with pytest.raises(ConfigError, match=r"unknown key 'guards\.max_loss'"):
        load_config(None, env={"ARB_GUARDS__MAX_LOSS": "1"})


def test_pnl_tally_tracks_the_worst_trade_and_the_utc_day() -> None:
    tally = PnlTally()
    day = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    assert (tally.worst_trade_pnl_usd, tally.daily_pnl_usd(day)) == (None, 0.0)
    tally.observe(5.0, day)
    tally.observe(-2.0, day)
    tally.observe(-1.0, day)
    assert tally.worst_trade_pnl_usd == -2.0
    assert tally.daily_pnl_usd(day) == 2.0
    next_day = day + timedelta(minutes=2)
    assert tally.daily_pnl_usd(next_day) == 0.0
    tally.observe(-4.0, next_day)
    assert (tally.worst_trade_pnl_usd, tally.daily_pnl_usd(next_day)) == (-4.0, -4.0)
