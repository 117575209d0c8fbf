"""The terminal summary: one row per engine run of the session.

Rows travel on the test reports (``user_properties``), so under pytest-xdist the controller
prints the rows of every worker.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import pytest

from evidence.invariants import heartbeat_limit, max_heartbeat_gap
from evidence.judge import run_window
from evidence.reader import EvidenceBundle

USER_PROPERTY: Final = "arbitrage_engine_run"
COLUMNS: Final = (
    "run id",
    "phase",
    "wallclock",
    "trades",
    "max hb gap",
    "db ok/failed",
    "verdict",
    "evidence",
)


@dataclass(frozen=True)
class SummaryRow:
    """What an operator needs to judge one run at a glance, and where to look next."""

    run_id: str
    phase: str
    wallclock_seconds: float | None
    expected_seconds: float | None
    trades: int | None
    max_heartbeat_gap_seconds: float | None
    heartbeat_limit_seconds: float | None
    db_ok: int | None
    db_failed: int | None
    verdict: str
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SummaryRow:
        def number(name: str) -> float | None:
            value = data.get(name)
            return float(value) if isinstance(value, int | float) else None

        def count(name: str) -> int | None:
            value = data.get(name)
            return int(value) if isinstance(value, int) else None

        return cls(
            run_id=str(data.get("run_id", "?")),
            phase=str(data.get("phase", "?")),
            wallclock_seconds=number("wallclock_seconds"),
            expected_seconds=number("expected_seconds"),
            trades=count("trades"),
            max_heartbeat_gap_seconds=number("max_heartbeat_gap_seconds"),
            heartbeat_limit_seconds=number("heartbeat_limit_seconds"),
            db_ok=count("db_ok"),
            db_failed=count("db_failed"),
            verdict=str(data.get("verdict", "?")),
            evidence=str(data.get("evidence", "-")),
        )

    def cells(self) -> tuple[str, ...]:
        wallclock = "-" if self.wallclock_seconds is None else f"{self.wallclock_seconds:.1f}s"
        if self.wallclock_seconds is not None and self.expected_seconds is not None:
            wallclock += f"/{self.expected_seconds:.0f}s"
        gap = "-" if self.max_heartbeat_gap_seconds is None else f"{self.max_heartbeat_gap_seconds:.1f}s"
        if self.max_heartbeat_gap_seconds is not None and self.heartbeat_limit_seconds is not None:
            gap += f"/{self.heartbeat_limit_seconds:.0f}s"
        failed = "-" if self.db_failed is None else str(self.db_failed)
        db = "-" if self.db_ok is None else f"{self.db_ok}/{failed}"
        trades = "-" if self.trades is None else str(self.trades)
        return (self.run_id, self.phase, wallclock, trades, gap, db, self.verdict, _short_path(self.evidence))


def _short_path(text: str) -> str:
    try:
        return str(Path(text).relative_to(Path.cwd()))
    except ValueError:
        return text


def render(rows: list[SummaryRow]) -> list[str]:
    """Fixed-width table lines, header first."""
    table = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]])
        for line in table
    ]


class SummaryPlugin:
    """Collects engine-run rows from teardown reports and prints them at the end."""

    def __init__(self) -> None:
        self.rows: list[SummaryRow] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        for name, value in report.user_properties:
            if name == USER_PROPERTY and isinstance(value, Mapping):
                self.rows.append(SummaryRow.from_json(value))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        terminalreporter.write_sep("=", f"arbitrage engine runs ({len(self.rows)})")
        for line in render(self.rows):
            terminalreporter.write_line(line)


SUMMARY_KEY: Final = pytest.StashKey[SummaryPlugin]()


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
