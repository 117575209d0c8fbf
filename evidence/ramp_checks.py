"""D98 §2's ramp-up phase checks: what a `--profile` run must show before the next phase may start.

Phase 1 (§2.1's first-minutes checklist): an entry within the first minute and a position closed by
the strategy within the first two minutes, timed from the run's start (`chain_summary.json`) by the
trade events the run recorded (`kpi.json["trade_events"]`). A stop-time flatten does not count as
the exit: it proves only that the run ended. Phase 2 (§2.2's KPI goals): at least 5 round trips, a
win rate of at least 50 %, a net PnL of at least -$10 and a mean loop latency under 30 ms (the
engine's processing time per tick, `kpi.json["loop_latency_ms"]`: the wait on the venues is not the
engine's, and against a venue through ccxt's rate limiter it alone takes hundreds of ms). The
runbook names no goals of its own for phase 3; it is held to phase 2's, at production scale.

Every check is critical: a phase that misses one is NO-GO for the next. A run started without a
profile has no phase checks, and is judged as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from evidence.criteria import CRITICAL, Judged
from evidence.run_facts import RunFacts, number_at

STRATEGY_EXITS: Final[tuple[str, ...]] = ("threshold", "max_hold")
"""Exit reasons of trades the strategy closed; any other reason (flatten, guard, recovery) is a closeout."""

ENTRY_WITHIN_SEC: Final = 60.0
EXIT_WITHIN_SEC: Final = 120.0
MIN_ROUND_TRIPS: Final = 5
MIN_WIN_RATE_PCT: Final = 50.0
MIN_NET_PNL_USD: Final = -10.0
MAX_LOOP_LATENCY_MEAN_MS: Final = 30.0

_PROFILE: Final = re.compile(r"^(live|paper)-phase([123])$")


def profile_phase(profile: str | None) -> int | None:
    """The ramp-up phase (1-3) of a profile name such as `live-phase2` or `paper-phase2`; None otherwise."""
    match = _PROFILE.match(profile or "")
    return int(match.group(2)) if match else None


def split_exits(by_reason: object) -> dict[str, int | None]:
    """`strategy_exits` and `closeout_exits` from a chain summary's `closed_by_reason`; None when absent."""
    if not isinstance(by_reason, Mapping):
        return {"strategy_exits": None, "closeout_exits": None}
    counts = {str(k): v for k, v in by_reason.items() if isinstance(v, int) and not isinstance(v, bool)}
    strategy = sum(v for k, v in counts.items() if k in STRATEGY_EXITS)
    return {"strategy_exits": strategy, "closeout_exits": sum(counts.values()) - strategy}


def _events(facts: RunFacts) -> Sequence[Mapping[str, Any]] | None:
    events = facts.kpi.get("trade_events")
    if not isinstance(events, list):
        return None
    return [e for e in events if isinstance(e, Mapping)]


def _first_after_start(facts: RunFacts, wanted: Callable[[Mapping[str, Any]], bool]) -> float | None:
    """Seconds from the run's start to the first trade event `wanted` accepts; None when there is none."""
    start = facts.run_start
    epochs = [
        epoch
        for event in _events(facts) or []
        if wanted(event) and (epoch := number_at(event, "epoch")) is not None
    ]
    if start is None or not epochs:
        return None
    return min(epochs) - start


def _within(
    facts: RunFacts, name: str, what: str, limit: float, wanted: Callable[[Mapping[str, Any]], bool]
) -> Judged:
    if facts.run_start is None or _events(facts) is None:
        return Judged(
            name,
            CRITICAL,
            "fail",
            None,
            limit,
            "cannot check: run start or kpi.json trade_events unavailable",
        )
    after = _first_after_start(facts, wanted)
    if after is None:
        return Judged(name, CRITICAL, "fail", None, limit, f"no {what} in the run")
    detail = f"first {what} {after:.1f}s after the run started (limit {limit:g}s)"
    return Judged(name, CRITICAL, "pass" if after <= limit else "fail", round(after, 1), limit, detail)


def first_entry(facts: RunFacts, prefix: str) -> Judged:
    """D98 §2.1: an entry within the first minute."""
    return _within(
        facts, f"{prefix}_first_entry", "entry", ENTRY_WITHIN_SEC, lambda e: e.get("event") == "entry"
    )


def first_strategy_exit(facts: RunFacts, prefix: str) -> Judged:
    """D98 §2.1: a position closed by the strategy (not the stop-time flatten) within two minutes."""
    return _within(
        facts,
        f"{prefix}_first_exit",
        "strategy exit",
        EXIT_WITHIN_SEC,
        lambda e: e.get("event") == "exit" and e.get("reason") in STRATEGY_EXITS,
    )


def _goal(name: str, ok: bool, observed: float | None, limit: float, detail: str) -> Judged:
    return Judged(name, CRITICAL, "pass" if ok else "fail", observed, limit, detail)


def _missing(name: str, limit: float, what: str) -> Judged:
    return Judged(name, CRITICAL, "fail", None, limit, f"cannot check: {what} unavailable")


def kpi_goals(facts: RunFacts, prefix: str) -> list[Judged]:
    """D98 §2.2's KPI goals: round trips, win rate, net PnL and mean loop latency."""
    rows: list[Judged] = []
    closed, wins = facts.number("closed_trades"), facts.number("wins")
    name = f"{prefix}_round_trips"
    if closed is None:
        rows.append(_missing(name, MIN_ROUND_TRIPS, "kpi.json closed_trades"))
    else:
        rows.append(
            _goal(
                name,
                closed >= MIN_ROUND_TRIPS,
                int(closed),
                MIN_ROUND_TRIPS,
                f"{int(closed)} round trip(s) closed",
            )
        )
    name = f"{prefix}_win_rate"
    if closed is None or wins is None:
        rows.append(_missing(name, MIN_WIN_RATE_PCT, "kpi.json closed_trades/wins"))
    else:
        rate = 100.0 * wins / closed if closed else 0.0
        detail = f"{int(wins)} win(s) of {int(closed)} round trip(s) = {rate:.1f}%"
        rows.append(
            _goal(name, closed > 0 and rate >= MIN_WIN_RATE_PCT, round(rate, 1), MIN_WIN_RATE_PCT, detail)
        )
    name, pnl = f"{prefix}_net_pnl", facts.number("net_pnl_usd")
    if pnl is None:
        rows.append(_missing(name, MIN_NET_PNL_USD, "kpi.json net_pnl_usd"))
    else:
        rows.append(
            _goal(name, pnl >= MIN_NET_PNL_USD, round(pnl, 4), MIN_NET_PNL_USD, f"net PnL {pnl:+.2f} USD")
        )
    name, mean = f"{prefix}_loop_latency_mean", facts.number("loop_latency_ms", "mean")
    if mean is None:
        rows.append(_missing(name, MAX_LOOP_LATENCY_MEAN_MS, "kpi.json loop_latency_ms.mean"))
    else:
        limit = MAX_LOOP_LATENCY_MEAN_MS
        detail = f"mean loop latency {mean:.2f} ms of processing per tick (limit under {limit:g} ms)"
        rows.append(_goal(name, mean < MAX_LOOP_LATENCY_MEAN_MS, mean, MAX_LOOP_LATENCY_MEAN_MS, detail))
    return rows


def judge_phase(facts: RunFacts) -> list[Judged]:
    """The checks of the run's ramp-up phase, named `phaseN_...`; none for a run without a profile."""
    phase = profile_phase(facts.profile)
    if phase is None:
        return []
    prefix = f"phase{phase}"
    if phase == 1:
        return [first_entry(facts, prefix), first_strategy_exit(facts, prefix)]
    return kpi_goals(facts, prefix)
