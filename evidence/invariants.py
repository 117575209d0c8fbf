"""The four operational invariants every run is judged by.

Pure functions shared by the engine (which records verdicts in ``chain_summary.json``) and the
checkers (which recompute them from the raw evidence), so both sides apply identical rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

from evidence.names import HEARTBEAT, MANIFEST, MINIMUM_SET
from evidence.reader import CorruptEvidenceError, read_json, read_jsonl
from evidence.schema import validation_errors
from evidence.writer import file_digest

WALLCLOCK: Final = "wallclock"
HEARTBEAT_DENSITY: Final = "heartbeat_density"
DB: Final = "db"
COMPLETENESS: Final = "completeness"
INVARIANT_NAMES: Final[tuple[str, ...]] = (WALLCLOCK, HEARTBEAT_DENSITY, DB, COMPLETENESS)
"""Keys of ``chain_summary.json["invariants"]``, in reporting order."""

DB_ROWS_PER_CLOSED_TRADE: Final = 2
"""The design persists two rows per closed trade, so successful inserts should be twice the trades."""

_GAP_EPSILON_SECONDS: Final = 1e-6
_RELATIVE_EPSILON: Final = 1e-9
_DETAIL_PROBLEMS: Final = 3

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
    actual_seconds: float, expected_seconds: float | None, tolerance: float = 0.05
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
    slack_seconds: float = 5.0,
) -> InvariantResult:
    """The engine must never go silent for longer than one heartbeat interval plus ``slack_seconds``.

    ``beat_epochs`` are the ``epoch_time`` values of all heartbeat lines (start, beat and stop).
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


def check_db(
    db_inserts_ok: int,
    closed_trades: int,
    tolerance: int = 2,
    *,
    legs: LedgerLegs | None = None,
) -> InvariantResult:
    """Successful DB inserts must match two rows per closed trade, within ``tolerance`` rows.

    The tolerance absorbs trades closing while the final counters are sampled. With ``legs``
    (the acknowledged legs and the positions reported open) a reported open position's entry row
    is expected too, and the check is exact as well: every acknowledged entry leg has its exit leg
    or is reported open, and nothing is left unacknowledged, so that a lost leg can never hide
    inside the tolerance.
    """
    reported_open = 0 if legs is None else legs.open_positions
    expected = closed_trades * DB_ROWS_PER_CLOSED_TRADE + reported_open
    difference = abs(db_inserts_ok - expected)
    problems = [] if legs is None else legs.problems(closed_trades)
    passed = difference <= tolerance and not problems
    opened = f" + {reported_open} entry legs of positions reported open" if reported_open else ""
    detail = (
        f"db_inserts_ok {db_inserts_ok} vs expected {expected} "
        f"({DB_ROWS_PER_CLOSED_TRADE} x {closed_trades} closed trades{opened}): "
        f"off by {difference} {_verdict(difference <= tolerance)} tolerance {tolerance}"
    )
    if problems:
        detail += "; " + "; ".join(problems)
    return InvariantResult(DB, True, passed, difference, tolerance, detail)


@dataclass(frozen=True)
class LedgerLegs:
    """The engine's own account of its ledger: acknowledged legs, positions it reports open, and
    records still only in the journal."""

    entry_legs: int
    exit_legs: int
    open_positions: int
    pending_records: int

    def problems(self, closed_trades: int) -> list[str]:
        """What breaks 'every entry has its exit or is reported open, and nothing is pending'."""
        found = []
        if self.exit_legs != closed_trades:
            found.append(f"{self.exit_legs} exit legs for {closed_trades} closed trades")
        if self.entry_legs != closed_trades + self.open_positions:
            found.append(
                f"{self.entry_legs} entry legs for {closed_trades} closed trades"
                f" + {self.open_positions} reported open"
            )
        if self.pending_records:
            found.append(f"{self.pending_records} ledger records not acknowledged (kept in the journal)")
        return found


def _parse_and_validate(path: Path, name: str) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        if name == HEARTBEAT:
            records = read_jsonl(path).records
            if not records:
                return None, [f"{name}: no complete records"]
            errors: list[str] = []
            for number, record in enumerate(records, start=1):
                errors += validation_errors(name, record, location=f"{name} line {number}")
            return None, errors
        document = read_json(path)
    except CorruptEvidenceError as exc:
        return None, [exc.describe(name)]
    except OSError as exc:
        return None, [f"{name}: unreadable: {exc.strerror or exc}"]
    return document, validation_errors(name, document)


def _hash_problems(path: Path, name: str, manifest: Mapping[str, Any] | None) -> list[str]:
    if manifest is None:
        return [f"{name}: cannot verify sha256: manifest unreadable"]
    files = manifest.get("files")
    entry = files.get(name) if isinstance(files, dict) else None
    if not isinstance(entry, dict):
        return [f"{name}: not listed in manifest files"]
    try:
        actual = file_digest(path)
    except OSError as exc:
        return [f"{name}: cannot hash: {exc.strerror or exc}"]
    if actual.sha256 == entry.get("sha256") and actual.bytes == entry.get("bytes"):
        return []
    return [
        f"{name}: sha256 mismatch with manifest (manifest {str(entry.get('sha256'))[:12]}... "
        f"{entry.get('bytes')} bytes, actual {actual.sha256[:12]}... {actual.bytes} bytes)"
    ]


def _file_problems(
    evidence_dir: Path, name: str, manifest: Mapping[str, Any] | None, verify_hashes: bool
) -> tuple[dict[str, Any] | None, list[str]]:
    path = evidence_dir / name
    if not path.is_file():
        return None, [f"{name}: missing"]
    if path.stat().st_size == 0:
        return None, [f"{name}: empty"]
    document, problems = _parse_and_validate(path, name)
    if verify_hashes and name != MANIFEST:
        problems += _hash_problems(path, name, manifest)
    return document, problems


def check_completeness(evidence_dir: Path, *, verify_hashes: bool = True) -> InvariantResult:
    """Every minimum-set file must exist, be non-empty, parse, match its schema and its manifest digest.

    Heartbeat lines are read with the tolerant reader (a torn final append is allowed) and each
    record is schema-checked. ``verify_hashes=False`` skips the digest comparison, e.g. before the
    final manifest has been written.
    """
    evidence_dir = Path(evidence_dir)
    manifest: dict[str, Any] | None = None
    problems: list[str] = []
    ok = 0
    for name in sorted(MINIMUM_SET, key=lambda n: n != MANIFEST):
        document, file_problems = _file_problems(evidence_dir, name, manifest, verify_hashes)
        if name == MANIFEST:
            manifest = document
        ok += not file_problems
        problems += file_problems
    total = len(MINIMUM_SET)
    passed = not problems
    if passed:
        checks = "match manifest sha256" if verify_hashes else "were not hash-verified"
        detail = f"{ok}/{total} files present, parseable, schema-valid and {checks}"
    else:
        shown = "; ".join(problems[:_DETAIL_PROBLEMS])
        more = f" (+{len(problems) - _DETAIL_PROBLEMS} more)" if len(problems) > _DETAIL_PROBLEMS else ""
        detail = f"{ok}/{total} files ok: {shown}{more}"
    return InvariantResult(COMPLETENESS, True, passed, f"{ok}/{total} files ok", f"{total}/{total}", detail)
