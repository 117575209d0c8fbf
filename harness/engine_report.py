"""What the harness reports about an engine run: the context for failure messages, the terminal
summary row, and the monitor's summary in the evidence directory."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Protocol

import pytest

from evidence.invariants import heartbeat_limit, max_heartbeat_gap
from evidence.judge import run_window
from evidence.names import MONITOR_SUMMARY
from evidence.reader import EvidenceBundle, load_evidence
from evidence.writer import atomic_write_json
from harness.engine_args import engine_phase, redact
from harness.monitor import RunMonitor
from harness.summary import USER_PROPERTY, SummaryRow

LINE_LIMIT = 400


class RunView(Protocol):
    """The parts of an engine process a report reads."""

    @property
    def pid(self) -> int | None: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def args(self) -> tuple[str, ...]: ...
    @property
    def logs(self) -> list[str]: ...
    @property
    def evidence_dir(self) -> Path | None: ...
    @property
    def abort_reason(self) -> str | None: ...


class ReportedRun(RunView, Protocol):
    """An engine process the ``engine`` fixture reports on at teardown."""

    def close(self) -> None: ...
    def summary_row(self) -> SummaryRow | None: ...
    def unreported_abort(self) -> str | None: ...


def describe(run: RunView, *, finished: bool, tail: int = 15) -> str:
    """Exit code, stop reason, the redacted arguments and the last stderr lines of ``run``."""
    stop = "-"
    if run.evidence_dir is not None and finished:
        stop = str((load_evidence(run.evidence_dir).chain_summary or {}).get("stop_reason", "-"))
    lines = "\n".join(f"    {line[:LINE_LIMIT]}" for line in run.logs[-tail:])
    return (
        f"engine pid {run.pid} exit={run.exit_code} stop_reason={stop} evidence={run.evidence_dir}\n"
        f"  args: {' '.join(redact(run.args))}\n  last stderr lines:\n{lines}"
    )


def summary_row(run: RunView) -> SummaryRow | None:
    """The terminal-summary row of ``run``; None if it never started."""
    if run.pid is None:
        return None
    bundle = None if run.evidence_dir is None else load_evidence(run.evidence_dir)
    return build_row(bundle, run.exit_code, run.abort_reason, engine_phase(run.args), run.pid)


def write_monitor_summary(monitor: RunMonitor, evidence_dir: Path | None, exit_code: int) -> None:
    """Write the monitor's document into the run's evidence directory, if the run made one."""
    if evidence_dir is not None and evidence_dir.is_dir():
        document = monitor.document(exit_code, evidence_dir.name)
        atomic_write_json(evidence_dir / MONITOR_SUMMARY, document)


def report_at_teardown(item: pytest.Item, runs: Sequence[ReportedRun]) -> None:
    """Stop every run, attach its summary row to ``item``, and fail with any abort not yet reported."""
    unreported: list[str] = []
    for run in runs:
        run.close()
        row = run.summary_row()
        if row is not None:
            item.user_properties.append((USER_PROPERTY, row.to_json()))
        reason = run.unreported_abort()
        if reason is not None:
            unreported.append(f"engine pid {run.pid}: {reason}")
    if unreported:
        pytest.fail("engine aborted by the monitor:\n" + "\n".join(unreported), pytrace=False)


def _verdict(exit_code: int | None, abort_reason: str | None, stop_reason: str | None) -> str:
    if abort_reason is not None:
        return f"ABORT: {abort_reason.split(':', 1)[0][:40]}"
    if exit_code is None:
        return "NOT EXITED"
    if exit_code < 0:
        return f"KILLED: {signal.Signals(-exit_code).name}"
    if exit_code == 0:
        return "PASS"
    return f"FAIL: {stop_reason or f'exit {exit_code}'}"


def build_row(
    bundle: EvidenceBundle | None, exit_code: int | None, abort_reason: str | None, phase: str, pid: int
) -> SummaryRow:
    """A row from whatever evidence the run left; missing parts show as ``-``."""
    summary = (bundle.chain_summary if bundle else None) or {}
    kpi = (bundle.kpi if bundle else None) or {}
    manifest = (bundle.manifest if bundle else None) or {}
    beats = bundle.beat_epochs if bundle else []
    gap: float | None = None
    started, ended = summary.get("run_started_epoch"), summary.get("run_ended_epoch")
    if isinstance(started, int | float) and isinstance(ended, int | float):
        gap = max_heartbeat_gap(beats, float(started), float(ended))
    elif len(beats) >= 2:
        gap = max(later - earlier for earlier, later in pairwise(sorted(beats)))
    window = run_window(bundle) if bundle else None
    interval = window.interval if window is not None else None
    db_counts = kpi.get("db_counts") or {}
    evidence = "-" if bundle is None else str(bundle.path)
    return SummaryRow(
        run_id=str(manifest.get("run_id") or (bundle.path.name if bundle else f"pid {pid}")),
        phase=str(manifest.get("phase") or phase),
        wallclock_seconds=summary.get("duration_seconds"),
        expected_seconds=summary.get("expected_duration_seconds"),
        trades=summary.get("closed_trades"),
        max_heartbeat_gap_seconds=None if gap is None else round(gap, 3),
        heartbeat_limit_seconds=None if interval is None else heartbeat_limit(float(interval)),
        db_ok=db_counts.get("db_inserts_ok"),
        db_failed=db_counts.get("db_inserts_failed"),
        verdict=_verdict(exit_code, abort_reason, summary.get("stop_reason")),
        evidence=evidence,
    )
