"""The four operational invariants every run is judged by: their result type, wallclock and
heartbeat density (the ledger rule is :mod:`evidence.ledger_rule`, completeness
:mod:`evidence.completeness`).

Pure functions shared by the engine (which records verdicts in ``chain_summary.json``) and the
checkers (which recompute them from the raw evidence), so both sides apply identical rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

WALLCLOCK: Final = "wallclock"
HEARTBEAT_DENSITY: Final = "heartbeat_density"
DB: Final = "db"
COMPLETENESS: Final = "completeness"
INVARIANT_NAMES: Final[tuple[str, ...]] = (WALLCLOCK, HEARTBEAT_DENSITY, DB, COMPLETENESS)
"""Keys of ``chain_summary.json["invariants"]``, in reporting order."""

HEARTBEAT_SLACK_SECONDS: Final = 5.0
"""How much longer than one heartbeat interval a run may stay silent before it counts as a gap."""

_GAP_EPSILON_SECONDS: Final = 1e-6
_RELATIVE_EPSILON: Final = 1e-9


WALLCLOCK_TOLERANCE: Final = 0.05
"""How far a duration-bounded run may be off its configured duration, as a fraction."""


def heartbeat_limit(interval_seconds: float) -> float:
    """The longest silence allowed between heartbeats: one interval plus the slack."""
    return interval_seconds + HEARTBEAT_SLACK_SECONDS


Measure = float | str | None


@dataclass(frozen=True)
class InvariantResult:
    """Verdict of one invariant with the numbers behind it, serialised into ``chain_summary.json``."""

    name: str
    applicable: bool
    passed: bool | None
    observed: Measure
    limit: Measure
    detail: str

    def __post_init__(self) -> None:
        if self.applicable and self.passed is None:
            raise ValueError(f"invariant {self.name}: an applicable invariant needs passed=True/False")
        if not self.applicable and self.passed is not None:
            raise ValueError(f"invariant {self.name}: a non-applicable invariant must have passed=None")

    @property
    def failed(self) -> bool:
        """True only for an applicable invariant that did not pass."""
        return self.applicable and self.passed is False

    def to_json(self) -> dict[str, object]:
        """Render in the shape required by ``chain_summary.schema.json``."""
        return {
            "name": self.name,
            "applicable": self.applicable,
            "passed": self.passed,
            "observed": self.observed,
            "limit": self.limit,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InvariantResult:
        """Rebuild a result read back from ``chain_summary.json``."""
        return cls(
            name=str(data["name"]),
            applicable=bool(data["applicable"]),
            passed=data["passed"],
            observed=data["observed"],
            limit=data["limit"],
            detail=str(data["detail"]),
        )


def _measure(value: float) -> float | str:
    """Keep non-finite numbers out of evidence JSON, which must stay strict."""
    return value if math.isfinite(value) else repr(float(value))


def _verdict(passed: bool) -> str:
    return "<=" if passed else ">"


def check_wallclock(
    actual_seconds: float, expected_seconds: float | None, tolerance: float = WALLCLOCK_TOLERANCE
) -> InvariantResult:
    """A duration-bounded run must last its configured duration within ``tolerance`` (a fraction).

    Passes when ``abs(actual - expected) <= expected * tolerance``; not applicable when the run
    was bounded by ticks instead (``expected_seconds is None``).
    """
    if expected_seconds is None:
        return InvariantResult(WALLCLOCK, False, None, None, None, "not applicable: run was tick-bounded")
    if expected_seconds <= 0 or tolerance < 0:
        raise ValueError(
            f"expected_seconds must be > 0 and tolerance >= 0, got {expected_seconds}, {tolerance}"
        )
    allowed = expected_seconds * tolerance
    deviation = abs(actual_seconds - expected_seconds)
    passed = deviation <= allowed + expected_seconds * _RELATIVE_EPSILON
    detail = (
        f"ran {actual_seconds:.1f}s vs expected {expected_seconds:.1f}s: off by {deviation:.1f}s "
        f"{_verdict(passed)} limit {allowed:.1f}s ({tolerance:.0%})"
    )
    return InvariantResult(WALLCLOCK, True, passed, _measure(deviation), allowed, detail)


def max_heartbeat_gap(
    beat_epochs: Sequence[float], run_started_epoch: float, run_ended_epoch: float
) -> float:
    """Longest silence in the run, counting run start -> first beat and last beat -> run end.

    With no beats at all the whole run was silent, so the gap is the run's length.
    """
    points = [run_started_epoch, *sorted(beat_epochs), run_ended_epoch]
    return max(later - earlier for earlier, later in pairwise(points))


def check_heartbeat_density(
    beat_epochs: Sequence[float],
    run_started_epoch: float,
    run_ended_epoch: float,
    interval_seconds: float,
    slack_seconds: float = HEARTBEAT_SLACK_SECONDS,
) -> InvariantResult:
    """The engine must never go silent for longer than one heartbeat interval plus ``slack_seconds``.

    ``beat_epochs`` are the precise times of all heartbeat lines (start, beat and stop), see
    :func:`evidence.documents.beat_epoch`.
    """
    if interval_seconds <= 0 or slack_seconds < 0:
        raise ValueError(f"interval must be > 0 and slack >= 0, got {interval_seconds}, {slack_seconds}")
    gap = max_heartbeat_gap(beat_epochs, run_started_epoch, run_ended_epoch)
    limit = interval_seconds + slack_seconds
    passed = gap <= limit + _GAP_EPSILON_SECONDS
    detail = (
        f"max heartbeat gap {gap:.1f}s {_verdict(passed)} limit {limit:.1f}s "
        f"(interval {interval_seconds:g}s + {slack_seconds:g}s)"
    )
    return InvariantResult(HEARTBEAT_DENSITY, True, passed, _measure(gap), limit, detail)
