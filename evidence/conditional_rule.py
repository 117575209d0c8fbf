"""Which conditional evidence files a run requires, and whether the ones it left hold up.

Written once here and called by both sides: the engine writes exactly the files
`requirements` says the run requires, and `verify` fails a run that lacks one of them, or whose
conditional file is not schema-valid, not sealed in the manifest, or disagrees with the summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from evidence.names import DAILY_REPORT, DECISION_TRACE, STOP_REASON_SNAPSHOT
from evidence.reader import CorruptEvidenceError, read_json
from evidence.schema import validation_errors
from evidence.writer import file_digest

PLANNED_STOPS: Final = frozenset({"DURATION_REACHED", "TICKS_COMPLETED"})
"""Stop reasons that are a run's planned end; every other reason is an unplanned stop."""
LONGRUN_PHASE: Final = "longrun"
CONDITIONAL_FILES: Final = (STOP_REASON_SNAPSHOT, DAILY_REPORT, DECISION_TRACE)
SCHEMA_PROBLEMS_SHOWN: Final = 3
"""Schema violations named per file; more add nothing an operator can act on."""

Verdict = Literal["pass", "fail", "not applicable"]


def utc_date(epoch: float) -> str:
    """The UTC calendar day of an epoch, as `YYYY-MM-DD`."""
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


@dataclass(frozen=True)
class RunConditions:
    """The facts the rule reads; None where the evidence could not tell."""

    phase: str | None
    stop_reason: str | None
    trace: bool | None
    started_epoch: float | None
    ended_epoch: float | None

    @classmethod
    def from_documents(
        cls, manifest: Mapping[str, Any] | None, chain_summary: Mapping[str, Any] | None
    ) -> RunConditions:
        """Read the conditions back from the manifest (phase, `config.run.trace`) and the summary."""
        trace = None if manifest is None else _trace_flag(manifest)
        manifest, summary = manifest or {}, chain_summary or {}
        phase, reason = manifest.get("phase"), summary.get("stop_reason")
        return cls(
            phase=phase if isinstance(phase, str) else None,
            stop_reason=reason if isinstance(reason, str) else None,
            trace=trace,
            started_epoch=_epoch(summary.get("run_started_epoch")),
            ended_epoch=_epoch(summary.get("run_ended_epoch")),
        )


def _trace_flag(manifest: Mapping[str, Any]) -> bool:
    """`config.run.trace` is True only when the manifest says so; a config without it was not traced."""
    config = manifest.get("config")
    run = config.get("run") if isinstance(config, dict) else None
    return isinstance(run, dict) and run.get("trace") is True


def _epoch(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Requirement:
    """Whether one conditional file is required (None: the evidence cannot tell) and why."""

    file: str
    required: bool | None
    why: str


def daily_report_reasons(conditions: RunConditions) -> list[str]:
    """Why the run needs a daily report: the longrun phase, a crossed UTC midnight, or both."""
    reasons = []
    if conditions.phase == LONGRUN_PHASE:
        reasons.append("longrun phase")
    start, end = conditions.started_epoch, conditions.ended_epoch
    if start is not None and end is not None and utc_date(start) != utc_date(end):
        reasons.append(f"crossed UTC midnight ({utc_date(start)} to {utc_date(end)})")
    return reasons


def requirements(conditions: RunConditions) -> list[Requirement]:
    """The rule, one `Requirement` per conditional file, in `CONDITIONAL_FILES` order."""
    reason = conditions.stop_reason
    if reason is None:
        snapshot = Requirement(STOP_REASON_SNAPSHOT, None, "stop reason unknown")
    elif reason in PLANNED_STOPS:
        snapshot = Requirement(STOP_REASON_SNAPSHOT, False, f"planned stop {reason}")
    else:
        snapshot = Requirement(STOP_REASON_SNAPSHOT, True, f"unplanned stop {reason}")
    daily = daily_report_reasons(conditions)
    if daily:
        report = Requirement(DAILY_REPORT, True, "; ".join(daily))
    elif conditions.phase is None or conditions.started_epoch is None or conditions.ended_epoch is None:
        report = Requirement(DAILY_REPORT, None, "phase or run window unknown")
    else:
        report = Requirement(DAILY_REPORT, False, f"{conditions.phase} phase within one UTC day")
    if conditions.trace is None:
        trace = Requirement(DECISION_TRACE, None, "config.run.trace unknown")
    else:
        trace = Requirement(DECISION_TRACE, conditions.trace, f"run.trace is {conditions.trace}")
    return [snapshot, report, trace]


def required_files(conditions: RunConditions) -> list[str]:
    """The conditional files the run must leave: what the engine writes."""
    return [r.file for r in requirements(conditions) if r.required]


@dataclass(frozen=True)
class ConditionalCheck:
    """The judgement of one conditional file: required or not, and what is wrong with it."""

    requirement: Requirement
    present: bool
    problems: list[str]

    @property
    def verdict(self) -> Verdict:
        if self.problems:
            return "fail"
        return "pass" if self.present else "not applicable"

    @property
    def observed(self) -> str:
        return "present" if self.present else "absent"

    @property
    def limit(self) -> str:
        required = self.requirement.required
        return {True: "required", False: "not required", None: "unknown"}[required]

    @property
    def detail(self) -> str:
        why = self.requirement.why
        if self.problems:
            more = f" (+{len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
            return f"{'; '.join(self.problems[:3])}{more} [{why}]"
        if self.present:
            return f"present, schema-valid, sealed [{why}]"
        return f"not required [{why}]"


def _sealed_problems(evidence_dir: Path, name: str, manifest: Mapping[str, Any] | None) -> list[str]:
    files = (manifest or {}).get("files")
    entry = files.get(name) if isinstance(files, dict) else None
    if not isinstance(entry, dict):
        return [f"{name}: not listed in the manifest"]
    actual = file_digest(evidence_dir / name).to_json()
    if actual != {key: entry.get(key) for key in actual}:
        return [f"{name}: sha256 mismatch (changed after the manifest was sealed)"]
    return []


def _agreement_problems(
    name: str, document: dict[str, Any], conditions: RunConditions, summary: Mapping[str, Any]
) -> list[str]:
    """What a schema cannot see: the document must agree with the summary it sits beside."""
    reason = conditions.stop_reason
    if name == STOP_REASON_SNAPSHOT and reason is not None and document.get("stop_reason") != reason:
        return [
            f"{name}: stop_reason {document.get('stop_reason')!r} but the summary says"
            f" {conditions.stop_reason!r}"
        ]
    if name == DAILY_REPORT:
        problems = []
        closed = summary.get("closed_trades")
        trips = sum(day.get("round_trips", 0) for day in document.get("days", []))
        if isinstance(closed, int) and trips != closed:
            problems.append(f"{name}: round trips add up to {trips}, the summary closed {closed}")
        start, end = conditions.started_epoch, conditions.ended_epoch
        if start is not None and end is not None:
            dates = [day.get("date") for day in document.get("days", [])]
            if dates[:1] != [utc_date(start)] or dates[-1:] != [utc_date(end)]:
                problems.append(
                    f"{name}: days {dates[:1]}..{dates[-1:]} do not span the run's"
                    f" {utc_date(start)}..{utc_date(end)}"
                )
        return problems
    if name == DECISION_TRACE and document.get("recorded") != len(document.get("entries", [])):
        return [f"{name}: recorded {document.get('recorded')} but {len(document['entries'])} entries"]
    return []


def _check_one(
    evidence_dir: Path,
    requirement: Requirement,
    conditions: RunConditions,
    manifest: Mapping[str, Any] | None,
    summary: Mapping[str, Any],
) -> ConditionalCheck:
    name = requirement.file
    path = evidence_dir / name
    if not path.is_file():
        if requirement.required:
            return ConditionalCheck(requirement, False, [f"{name}: required but missing"])
        if requirement.required is None:
            return ConditionalCheck(requirement, False, [f"{name}: cannot tell whether it is required"])
        return ConditionalCheck(requirement, False, [])
    try:
        document = read_json(path)
    except CorruptEvidenceError as exc:
        return ConditionalCheck(requirement, True, [exc.describe(name)])
    problems = validation_errors(name, document)[:SCHEMA_PROBLEMS_SHOWN]
    problems += _sealed_problems(evidence_dir, name, manifest)
    if not problems:
        problems += _agreement_problems(name, document, conditions, summary)
    return ConditionalCheck(requirement, True, problems)


def check_conditional(
    evidence_dir: Path, manifest: Mapping[str, Any] | None, chain_summary: Mapping[str, Any] | None
) -> list[ConditionalCheck]:
    """Judge every conditional file: a required one must be present, schema-valid and sealed with a
    matching sha256; one present without being required must still be valid and sealed."""
    conditions = RunConditions.from_documents(manifest, chain_summary)
    return [
        _check_one(Path(evidence_dir), requirement, conditions, manifest, chain_summary or {})
        for requirement in requirements(conditions)
    ]
