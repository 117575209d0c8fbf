"""The live view of a campaign: one row per run as it is judged.

On a terminal, a rich table of the latest runs with running totals in its caption, redrawn in
place; elsewhere (CI logs, pipes), one plain line per run, so a log shows progress as it happens.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from types import TracebackType
from typing import TYPE_CHECKING, Final, TextIO

from gates.chaos.model import CLASSIFICATIONS, RunOutcome

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

VISIBLE_ROWS: Final = 20
COLUMNS: Final = ("run", "faults", "classification", "exit", "wallclock", "checker")
STYLES: Final = {
    "clean": "green",
    "failed-closed": "yellow",
    "LOST": "bold red",
    "UNEXPLAINED": "bold magenta",
}


def plain_line(outcome: RunOutcome) -> str:
    """One run as one line: index, faults, classification, exit code, wallclock, checker seconds."""
    faults = "+".join(outcome.plan.kinds()) or "no fault"
    return (
        f"run {outcome.plan.index:04d}  {faults:<34} {outcome.classification:<13} "
        f"exit={outcome.exit_code if outcome.exit_code is not None else '-':<4} "
        f"wall={outcome.wallclock_sec:6.1f}s  check={outcome.checker_sec:5.2f}s"
    )


class LiveTable:
    """Shows outcomes as they arrive; use as a context manager around the campaign."""

    def __init__(self, planned: int, stream: TextIO | None = None, console: Console | None = None) -> None:
        self._planned = planned
        self._stream = stream or sys.stdout
        self._counts: Counter[str] = Counter()
        self._rows: list[RunOutcome] = []
        self._console = console
        if console is None and self._stream.isatty():
            from rich.console import Console

            self._console = Console(file=self._stream)
        self._live: Live | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> LiveTable:
        if self._console is not None:
            from rich.live import Live

            self._live = Live(self._table(), console=self._console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, exc, tb)
            self._live = None

    def on_outcome(self, outcome: RunOutcome) -> None:
        """Record one judged run and show it (safe to call from several worker threads)."""
        with self._lock:
            self._counts[outcome.classification] += 1
            self._rows.append(outcome)
            if self._live is not None:
                self._live.update(self._table())
            else:
                print(plain_line(outcome), file=self._stream, flush=True)

    def _table(self) -> Table:
        from rich.table import Table

        done = sum(self._counts.values())
        caption = f"{done}/{self._planned} runs: " + ", ".join(
            f"{c} {self._counts[c]}" for c in CLASSIFICATIONS
        )
        table = Table(title="chaos", caption=caption, expand=False)
        for name in COLUMNS:
            table.add_column(name, justify="left" if name in ("faults", "classification") else "right")
        for o in self._rows[-VISIBLE_ROWS:]:
            table.add_row(
                f"{o.plan.index:04d}",
                " + ".join(o.plan.kinds()) or "no fault",
                f"[{STYLES.get(o.classification, '')}]{o.classification}[/]",
                "-" if o.exit_code is None else str(o.exit_code),
                f"{o.wallclock_sec:.1f}s",
                f"{o.checker_sec:.2f}s",
            )
        return table
