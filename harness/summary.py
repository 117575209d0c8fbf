"""The terminal summary: one row per engine run of the session.

Rows travel on the test reports (``user_properties``), so under pytest-xdist the controller
prints the rows of every worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import pytest

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
