"""D77-4's acceptance criteria with priorities, and the verdict they add up to.

Each criterion is a pure function of RunFacts returning a Judged row. Priorities follow D77-4
§3.4: its first group (crash, DLQ, notifier down, loop latency, CPU, memory growth) is critical
and stops a run; its second group (win rate, round-trip stagnation, guard triggers, alert
success) is high and is the ground for a CONDITIONAL GO; the dashboard's yellow bands (§3.3) are
medium. A criterion that holds only "for N minutes" applies only to a run at least that long and
says "not applicable" otherwise. The rule from priorities to verdict and exit code is here too,
so `verify` and any other judge reach the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Final, Literal

from evidence.rss_growth import rss_growth_report
from evidence.run_facts import RunFacts

Priority = Literal["critical", "high", "medium"]
Outcome = Literal["pass", "fail", "not applicable", "not checked"]
Measure = float | int | str | None

CRITICAL: Final = "critical"
HIGH: Final = "high"
MEDIUM: Final = "medium"
PRIORITIES: Final[tuple[Priority, ...]] = ("critical", "high", "medium")

GO: Final = "GO"
CONDITIONAL_GO: Final = "CONDITIONAL GO"
NO_GO: Final = "NO-GO"
EXIT_CODES: Final[Mapping[str, int]] = {GO: 0, NO_GO: 1, CONDITIONAL_GO: 3}
"""verify's exit code per verdict: 3 still fails a gate, but tells a person only high/medium missed."""

LOOP_LATENCY_P99_LIMIT_MS: Final = 100.0
LOOP_LATENCY_P99_WARN_MS: Final = 50.0
CPU_LIMIT_PCT: Final = 80.0
CPU_WARN_PCT: Final = 50.0
MEMORY_GROWTH_LIMIT_PCT_PER_HOUR: Final = 10.0
RSS_WARMUP_SEC: Final = 60.0
RSS_FLOOR_MB: Final = 16.0
WIN_RATE_LIMIT_PCT: Final = 50.0
GUARD_TRIGGERS_LIMIT_PER_HOUR: Final = 50.0
GUARD_TRIGGERS_WARN_PER_HOUR: Final = 10.0
ALERT_SUCCESS_LIMIT_PCT: Final = 90.0
ALERT_SUCCESS_WARN_PCT: Final = 95.0


@dataclass(frozen=True)
class Windows:
    """How long each condition must hold (seconds) before it counts; D77-4's values by default.

    A run shorter than a criterion's window is "not applicable" for it. Tests and rehearsals may
    shorten a window (`arbitrage verify --window NAME=SECONDS`); the result records the windows used.
    """

    loop_latency: float = 300.0
    cpu: float = 600.0
    win_rate: float = 1800.0
    round_trip_stagnation: float = 1800.0
    guard_triggers: float = 3600.0
    alert_success: float = 1800.0

    def overridden(self, overrides: Mapping[str, float]) -> Windows:
        """A copy with some windows replaced; an unknown name or a value <= 0 raises ValueError."""
        known = {f.name for f in fields(self)}
        for name, seconds in overrides.items():
            if name not in known:
                raise ValueError(f"unknown window {name!r}: expected one of {', '.join(sorted(known))}")
            if not seconds > 0:
                raise ValueError(f"window {name}={seconds}: expected seconds > 0")
        return replace(self, **overrides)

    def to_json(self) -> dict[str, float]:
        """The windows as recorded in analysis_result.json."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Judged:
    """One D77-4 criterion's outcome, with its priority and the numbers behind it."""

    name: str
    priority: Priority
    outcome: Outcome
    observed: Measure
    limit: Measure
    detail: str


def overall_verdict(failed: Iterable[Priority]) -> str:
    """NO-GO when a critical criterion failed, CONDITIONAL GO when only high/medium ones did, else GO."""
    priorities = set(failed)
    if CRITICAL in priorities:
        return NO_GO
    return CONDITIONAL_GO if priorities else GO


def _judged(
    name: str, priority: Priority, ok: bool, observed: Measure, limit: Measure, detail: str
) -> Judged:
    return Judged(name, priority, "pass" if ok else "fail", observed, limit, detail)


def _too_short(
    name: str, priority: Priority, facts: RunFacts, window: float, limit: Measure
) -> Judged | None:
    """The "not applicable" row for a run shorter than the window, else None."""
    seconds = facts.run_seconds
    if seconds is not None and seconds >= window:
        return None
    ran = "unknown" if seconds is None else f"{seconds:.0f}s"
    return Judged(
        name, priority, "not applicable", None, limit, f"run {ran} shorter than the {window:g}s window"
    )


def _missing(name: str, priority: Priority, limit: Measure, what: str) -> Judged:
    return Judged(name, priority, "fail", None, limit, f"cannot check: {what} unavailable")


def longest_span(samples: Sequence[tuple[float, bool]]) -> float:
    """Longest time between the first and last of consecutive samples that all hold, in seconds."""
    longest, began, last = 0.0, None, None
    for epoch, holds in samples:
        if holds:
            began = epoch if began is None else began
            last = epoch
            longest = max(longest, last - began)
        else:
            began = None
    return longest


# -- D77-4 §3.4, first group: critical ---------------------------------------------------------------
def crash(facts: RunFacts) -> Judged:
    """No Python crash: engine.log holds no Traceback (an unsealed manifest is `manifest_status`'s)."""
    tracebacks = facts.traceback_count
    if tracebacks is None:
        return Judged("crash", CRITICAL, "not checked", None, 0, "no engine.log (outside the minimum set)")
    detail = f"{tracebacks} Traceback(s) in engine.log"
    return _judged("crash", CRITICAL, tracebacks == 0, tracebacks, 0, detail)


def dlq(facts: RunFacts) -> Judged:
    """No alert ended in the dead-letter queue."""
    count = facts.alerts("dlq_count")
    if count is None:
        return _missing("dlq", CRITICAL, 0, "kpi.json alerts.dlq_count")
    return _judged("dlq", CRITICAL, count == 0, int(count), 0, f"{int(count)} alert(s) dead-lettered")


def notifier_down(facts: RunFacts) -> Judged:
    """A configured notifier delivered something when it had something to deliver."""
    alerts = facts.kpi.get("alerts")
    available = alerts.get("notifier_available") if isinstance(alerts, Mapping) else None
    sent, dead = facts.alerts("sent_count"), facts.alerts("dlq_count")
    if not isinstance(available, bool) or sent is None or dead is None:
        return _missing("notifier_down", CRITICAL, "available", "kpi.json alerts")
    if not available:
        disabled = int(facts.alerts("disabled_count") or 0)
        detail = f"no alert channel configured ({disabled} alert(s) recorded DISABLED)"
        return Judged("notifier_down", CRITICAL, "not applicable", 0.0, 1.0, detail)
    down = sent == 0 and dead > 0
    detail = f"sent {int(sent)}, dead-lettered {int(dead)}"
    return _judged("notifier_down", CRITICAL, not down, 0.0 if down else 1.0, 1.0, detail)


def _latency(name: str, priority: Priority, facts: RunFacts, windows: Windows, limit: float) -> Judged:
    short = _too_short(name, priority, facts, windows.loop_latency, limit)
    if short is not None:
        return short
    p99 = facts.number("loop_latency_ms", "p99")
    if p99 is None:
        return _missing(name, priority, limit, "kpi.json loop_latency_ms.p99")
    detail = (
        f"loop latency p99 {p99:.1f} ms over the whole run (>= {windows.loop_latency:g}s); limit {limit:g} ms"
    )
    return _judged(name, priority, p99 <= limit, p99, limit, detail)


def loop_latency(facts: RunFacts, windows: Windows) -> Judged:
    """Loop latency p99 at most 100 ms, judged on a run of at least the latency window."""
    return _latency("loop_latency_p99", CRITICAL, facts, windows, LOOP_LATENCY_P99_LIMIT_MS)


def _cpu(name: str, priority: Priority, facts: RunFacts, windows: Windows, limit: float) -> Judged:
    short = _too_short(name, priority, facts, windows.cpu, limit)
    if short is not None:
        return short
    samples = [(b.epoch, b.cpu_pct > limit) for b in facts.beats if b.cpu_pct is not None]
    if not samples:
        return _missing(name, priority, limit, "heartbeat sys.cpu_pct samples")
    span = longest_span(samples)
    ok = span < windows.cpu
    detail = f"CPU above {limit:g}% for at most {span:.0f}s straight (limit {windows.cpu:g}s)"
    return _judged(name, priority, ok, round(span, 1), limit, detail)


def cpu(facts: RunFacts, windows: Windows) -> Judged:
    """CPU not above 80 % for the whole CPU window, from the heartbeat's resource samples."""
    return _cpu("cpu", CRITICAL, facts, windows, CPU_LIMIT_PCT)


def memory_growth(facts: RunFacts) -> Judged:
    """RSS growth at most 10 %/h, fitted over the heartbeat's RSS samples after the warm-up."""
    limit = MEMORY_GROWTH_LIMIT_PCT_PER_HOUR
    samples = [(b.epoch, b.rss_mb) for b in facts.beats if b.rss_mb is not None]
    warmup = facts.number("resources", "rss_growth", "warmup_sec")
    floor = facts.number("resources", "rss_growth", "floor_mb")
    report = rss_growth_report(
        samples, RSS_WARMUP_SEC if warmup is None else warmup, limit, RSS_FLOOR_MB if floor is None else floor
    )
    pct = report["pct_per_hour"]
    if report["exceeded"] is None or pct is None:
        detail = f"fewer than 2 heartbeat RSS samples after the {report['warmup_sec']:g}s warm-up"
        return Judged("memory_growth", CRITICAL, "not applicable", None, limit, detail)
    detail = (
        f"RSS {report['baseline_mb']:.1f} MB, {pct:+.2f} %/h over {report['span_sec']:.0f}s"
        f" ({report['samples']} samples; counts past {report['floor_mb']:g} MB of fitted growth)"
    )
    return _judged("memory_growth", CRITICAL, not report["exceeded"], pct, limit, detail)


# -- D77-4 §3.4, second group: high ----------------------------------------------------------------
def win_rate(facts: RunFacts, windows: Windows) -> Judged:
    """The win rate (wins / closed round trips, at each beat) not below 50 % for the win-rate window."""
    limit = WIN_RATE_LIMIT_PCT
    short = _too_short("win_rate", HIGH, facts, windows.win_rate, limit)
    if short is not None:
        return short
    rates = [
        (b.epoch, 100.0 * b.wins / b.closed_trades)
        for b in facts.beats
        if b.wins is not None and b.closed_trades
    ]
    if not rates:
        return Judged("win_rate", HIGH, "not applicable", None, limit, "no closed round trip at any beat")
    span = longest_span([(epoch, rate < limit) for epoch, rate in rates])
    final = rates[-1][1]
    detail = (
        f"win rate below {limit:g}% for {span:.0f}s straight (window {windows.win_rate:g}s);"
        f" last {final:.1f}%"
    )
    return _judged("win_rate", HIGH, span < windows.win_rate, round(final, 1), limit, detail)


def round_trip_stagnation(facts: RunFacts, windows: Windows) -> Judged:
    """Closed round trips must change within every stagnation window (from run start to run end)."""
    window = windows.round_trip_stagnation
    short = _too_short("round_trip_stagnation", HIGH, facts, window, window)
    if short is not None:
        return short
    counts = [(b.epoch, b.closed_trades) for b in facts.beats if b.closed_trades is not None]
    if not counts or facts.run_start is None or facts.run_end is None:
        return _missing("round_trip_stagnation", HIGH, window, "heartbeat kpi.closed_trades")
    still, since, value = 0.0, facts.run_start, counts[0][1]
    for epoch, closed in counts:
        if closed != value:
            still, since, value = max(still, epoch - since), epoch, closed
    still = max(still, facts.run_end - since)
    detail = f"longest stretch without a new round trip {still:.0f}s (window {window:g}s)"
    return _judged("round_trip_stagnation", HIGH, still < window, round(still, 1), window, detail)


def guard_triggers_count(facts: RunFacts) -> int | None:
    """Guard trips plus orders and books a protective check refused; None without kpi.json's counters."""
    orders, books = facts.tally("rejected_orders"), facts.tally("rejected_books")
    if orders is None or books is None:
        return None
    return (0 if facts.kpi.get("guards") is None else 1) + orders + books


def _guards(name: str, priority: Priority, facts: RunFacts, windows: Windows, limit: float) -> Judged:
    short = _too_short(name, priority, facts, windows.guard_triggers, limit)
    if short is not None:
        return short
    count = guard_triggers_count(facts)
    if count is None or not facts.run_seconds:
        return _missing(name, priority, limit, "kpi.json rejected_orders/rejected_books")
    rate = count * 3600.0 / facts.run_seconds
    detail = f"{count} guard trigger(s) in {facts.run_seconds:.0f}s = {rate:.1f}/h (limit {limit:g}/h)"
    return _judged(name, priority, rate <= limit, round(rate, 2), limit, detail)


def guard_triggers(facts: RunFacts, windows: Windows) -> Judged:
    """Guard triggers at most 50 per hour, averaged over a run of at least an hour."""
    return _guards("guard_triggers", HIGH, facts, windows, GUARD_TRIGGERS_LIMIT_PER_HOUR)


def alert_success_pct(facts: RunFacts) -> float | None:
    """Alerts delivered over alerts attempted (delivered + dead-lettered), in %; None if none attempted."""
    sent, dead = facts.alerts("sent_count"), facts.alerts("dlq_count")
    if sent is None or dead is None or sent + dead == 0:
        return None
    return 100.0 * sent / (sent + dead)


def _alerts(name: str, priority: Priority, facts: RunFacts, windows: Windows, limit: float) -> Judged:
    short = _too_short(name, priority, facts, windows.alert_success, limit)
    if short is not None:
        return short
    rate = alert_success_pct(facts)
    if rate is None:
        return Judged(name, priority, "not applicable", None, limit, "no alert delivered or dead-lettered")
    detail = f"{rate:.1f}% of attempted alerts delivered over the run (limit {limit:g}%)"
    return _judged(name, priority, rate >= limit, round(rate, 1), limit, detail)


def alert_success(facts: RunFacts, windows: Windows) -> Judged:
    """At least 90 % of attempted alerts delivered, over a run of at least the alert window."""
    return _alerts("alert_success", HIGH, facts, windows, ALERT_SUCCESS_LIMIT_PCT)


def round_trips(facts: RunFacts) -> Judged:
    """At least one closed round trip (D77-4 §2.4: a run that never closed a trade proved nothing)."""
    closed = facts.number("closed_trades")
    if closed is None:
        return _missing("round_trips", HIGH, 1, "kpi.json closed_trades")
    return _judged("round_trips", HIGH, closed >= 1, int(closed), 1, f"{int(closed)} round trip(s) closed")


def smoke_opportunities(facts: RunFacts) -> Judged:
    """A smoke run generated at least one opportunity (OPS §4.3)."""
    if facts.phase != "smoke":
        return Judged("smoke_opportunities", HIGH, "not applicable", None, 1, f"phase {facts.phase!r}")
    seen = facts.number("opportunities_generated")
    if seen is None:
        return _missing("smoke_opportunities", HIGH, 1, "kpi.json opportunities_generated")
    return _judged("smoke_opportunities", HIGH, seen >= 1, int(seen), 1, f"{int(seen)} opportunity(ies)")


# -- D77-4 §3.3, yellow bands: medium --------------------------------------------------------------
def loop_latency_warn(facts: RunFacts, windows: Windows) -> Judged:
    """Loop latency p99 at most 50 ms (the dashboard's green band)."""
    return _latency("loop_latency_p99_warn", MEDIUM, facts, windows, LOOP_LATENCY_P99_WARN_MS)


def cpu_warn(facts: RunFacts, windows: Windows) -> Judged:
    """CPU not above 50 % for the whole CPU window (the dashboard's green band)."""
    return _cpu("cpu_warn", MEDIUM, facts, windows, CPU_WARN_PCT)


def guard_triggers_warn(facts: RunFacts, windows: Windows) -> Judged:
    """Guard triggers under 10 per hour (the dashboard's green band)."""
    return _guards("guard_triggers_warn", MEDIUM, facts, windows, GUARD_TRIGGERS_WARN_PER_HOUR)


def alert_success_warn(facts: RunFacts, windows: Windows) -> Judged:
    """At least 95 % of attempted alerts delivered (the dashboard's green band)."""
    return _alerts("alert_success_warn", MEDIUM, facts, windows, ALERT_SUCCESS_WARN_PCT)


PLAIN: Final[tuple[Callable[[RunFacts], Judged], ...]] = (
    crash, dlq, notifier_down, memory_growth, round_trips, smoke_opportunities,
)  # fmt: skip
WINDOWED: Final[tuple[Callable[[RunFacts, Windows], Judged], ...]] = (
    loop_latency, cpu, win_rate, round_trip_stagnation, guard_triggers, alert_success,
    loop_latency_warn, cpu_warn, guard_triggers_warn, alert_success_warn,
)  # fmt: skip


def judge_d77(facts: RunFacts, windows: Windows | None = None) -> list[Judged]:
    """Every D77-4 criterion on one run, critical first, then high, then medium."""
    used = windows or Windows()
    rows = [rule(facts) for rule in PLAIN] + [rule(facts, used) for rule in WINDOWED]
    return sorted(rows, key=lambda row: PRIORITIES.index(row.priority))
