"""The anomaly table (D98 §3.2): configured rules judged from the engine's own measurements.

Each row is an `AnomalyRule`: a threshold, how long the condition must hold (`sustain_sec`),
the trailing window a count or a fall is taken over (`window_sec`), and what a trip does:
`kill` stops the run with `ANOMALY_<RULE>` and activates the kill switch, `investigate` sends
an alert and logs a WARNING. The defaults are the runbook's numbers.

The table sits beside the watchdog and the guards rather than replacing them: the watchdog's
2 s / 5 s on the whole tick catches a stalled loop within seconds (a hang, a fetch that does not
come back), the table's 100 ms for a minute on the engine's processing time (the tick less its
waits on the venues, as the runbook means it) catches an engine that is merely too slow to trade;
the 500 MB memory guard is the runbook's §4.2 code-level limit, the table's 300 MB its §3.2
operating limit, which trips first.

`AnomalyTable.evaluate` is pure apart from its own history: it takes one `Measurements`
reading (from the supervisor's watchdog thread, off the trading loop) and returns the rules
that fired on it. A kill rule fires once; an investigate rule fires once per episode and
re-arms when its condition clears.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from arbitrage.config.anomaly import INVESTIGATE, KILL, RULES, Action, AnomalyConfig, AnomalyRule
from arbitrage.ops.trips import Trip


@dataclass(frozen=True, slots=True)
class Measurements:
    """One reading of what the table judges; None means not measured yet and never trips.

    `mono` is monotonic seconds; the totals are running counts since the run started.
    """

    mono: float
    loop_latency_ms: float | None = None
    cpu_pct: float | None = None
    rss_mb: float | None = None
    pnl_usd: float = 0.0
    exchange_errors_total: int = 0
    rate_limit_hits_total: int = 0
    entries_total: int = 0
    exits_total: int = 0


@dataclass(frozen=True, slots=True)
class AnomalyTrip(Trip):
    """A rule (`name`) that fired: its observed value against its threshold (`limit`), held for `held_sec`."""

    kind: ClassVar[str] = "anomaly"
    event_type: ClassVar[str] = "ANOMALY"

    action: Action
    held_sec: float

    @property
    def stops_run(self) -> bool:
        return self.action == KILL

    def to_event(self) -> dict[str, Any]:
        """The event_log payload and the kpi.json entry of the trip."""
        return {
            "rule": self.name,
            "action": self.action,
            "stop_reason": self.stop_reason if self.stops_run else None,
            "observed": round(self.observed, 4),
            "threshold": self.limit,
            "held_sec": round(self.held_sec, 3),
            "detail": self.detail,
        }


class _Trailing:
    """(time, value) points within a trailing window; the oldest point at or before its start is kept."""

    def __init__(self, window_sec: float, start: float, value: float) -> None:
        self.window_sec = window_sec
        self.points: deque[tuple[float, float]] = deque([(start, value)])

    def add(self, now: float, value: float) -> None:
        points = self.points
        points.append((now, value))
        horizon = now - self.window_sec
        while len(points) >= 2 and points[1][0] <= horizon:
            points.popleft()

    def increase(self) -> float:
        """How much a running total grew within the window (over- rather than under-counted)."""
        return max(0.0, self.points[-1][1] - self.points[0][1])

    def fall_from_peak(self) -> float:
        """How far the latest value lies below the highest one within the window."""
        return max(0.0, max(value for _, value in self.points) - self.points[-1][1])


_UNITS = {
    "loop_latency": "ms loop latency",
    "cpu": "% CPU",
    "memory": "MB resident memory",
    "pnl_drop": "USD fallen from the window's peak PnL",
    "exchange_errors": "exchange errors",
    "rate_limit_hits": "rate-limit hits",
    "no_entry": "s without an entry",
    "no_exit": "s without an exit",
}


class AnomalyTable:
    """Judges readings against every enabled row and reports the rows that fire."""

    def __init__(self, config: AnomalyConfig, start: float) -> None:
        self.config = config
        self.start = start
        self.rules: dict[str, AnomalyRule] = {
            name: rule for name in RULES if (rule := getattr(config, name)).enabled
        }
        self._since: dict[str, float | None] = dict.fromkeys(self.rules)
        self._fired: set[str] = set()
        self._windows = {
            name: _Trailing(self.rules[name].window_sec, start, 0.0)
            for name in ("pnl_drop", "exchange_errors", "rate_limit_hits")
            if name in self.rules
        }
        self._last_entry = (0, start)
        self._last_exit = (0, start)
        self.evaluations = 0
        self.trips: list[AnomalyTrip] = []
        self.peaks: dict[str, float] = dict.fromkeys(self.rules, 0.0)

    def _observed(self, m: Measurements) -> dict[str, float | None]:
        if m.entries_total != self._last_entry[0]:
            self._last_entry = (m.entries_total, m.mono)
        if m.exits_total != self._last_exit[0]:
            self._last_exit = (m.exits_total, m.mono)
        totals = {
            "pnl_drop": m.pnl_usd,
            "exchange_errors": float(m.exchange_errors_total),
            "rate_limit_hits": float(m.rate_limit_hits_total),
        }
        for name, window in self._windows.items():
            window.add(m.mono, totals[name])
        judged: dict[str, Callable[[], float | None]] = {
            "loop_latency": lambda: m.loop_latency_ms,
            "cpu": lambda: m.cpu_pct,
            "memory": lambda: m.rss_mb,
            "pnl_drop": lambda: self._windows["pnl_drop"].fall_from_peak(),
            "exchange_errors": lambda: self._windows["exchange_errors"].increase(),
            "rate_limit_hits": lambda: self._windows["rate_limit_hits"].increase(),
            "no_entry": lambda: m.mono - self._last_entry[1],
            "no_exit": lambda: m.mono - self._last_exit[1],
        }
        return {name: judged[name]() for name in self.rules}

    def evaluate(self, m: Measurements) -> list[AnomalyTrip]:
        """The rows that fire on this reading, kill rows first."""
        self.evaluations += 1
        fired: list[AnomalyTrip] = []
        for name, value in self._observed(m).items():
            rule = self.rules[name]
            if value is not None:
                self.peaks[name] = max(self.peaks[name], value)
            if value is None or not value > rule.threshold:
                self._since[name] = None
                if rule.action == INVESTIGATE:
                    self._fired.discard(name)
                continue
            since = self._since[name]
            if since is None:
                since = self._since[name] = m.mono
            held = m.mono - since
            if held < rule.sustain_sec or name in self._fired:
                continue
            self._fired.add(name)
            held_text = f" for {held:.0f}s" if rule.sustain_sec > 0 else ""
            window = f" within {rule.window_sec:g}s" if name in self._windows else ""
            detail = f"{value:.4g} {_UNITS[name]}{window}{held_text}, threshold {rule.threshold:g}"
            fired.append(AnomalyTrip(name, value, rule.threshold, detail, rule.action, held))
        fired.sort(key=lambda trip: trip.action != KILL)
        self.trips.extend(fired)
        return fired

    def summary(self) -> dict[str, Any]:
        """The table's part of kpi.json: the rows as configured, the peaks seen and every trip."""
        return {
            "evaluations": self.evaluations,
            "rules": {name: rule.model_dump(mode="json") for name, rule in self.rules.items()},
            "peaks": {name: round(value, 4) for name, value in self.peaks.items()},
            "trips": [trip.to_event() for trip in self.trips],
        }
