"""Progress of a long run for whoever is watching it.

On a terminal a rich progress bar shows elapsed/total, closed trades, open positions, the last
heartbeat's age and PnL; log lines written to the same terminal go through the bar's console, so
they print above the bar instead of through it. Anywhere else (CI, `docker logs`, a file)
animated output is noise, so a plain INFO line is logged instead, every `log_every_s` seconds of
run time or every 10 % of the run, whichever comes first.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Final, Literal, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

log = logging.getLogger("arbitrage.progress")

Mode = Literal["auto", "rich", "log"]

DEFAULT_LOG_EVERY_SECONDS: Final = 30.0
LOG_EVERY_FRACTION: Final = 0.10
REFRESH_EVERY_SECONDS: Final = 0.2


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--:--"
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class _AboveTheBar(logging.Handler):
    """Writes records through the live display's console, which prints them above the bar."""

    def __init__(self, console: Console, replaced: logging.Handler) -> None:
        super().__init__(level=replaced.level)
        self.setFormatter(replaced.formatter)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(
                self.format(record), markup=False, highlight=False, emoji=False, soft_wrap=True
            )
        except Exception:
            self.handleError(record)


def _stream_handlers(stream: TextIO) -> list[logging.StreamHandler[TextIO]]:
    """The root logger's handlers that write to `stream` (files and other streams excluded)."""
    return [
        h
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler and getattr(h, "stream", None) is stream
    ]


class RunProgress:
    """Shows a run's progress; the orchestrator calls `update` after each tick and `close` at the end.

    Bound by `total_seconds` (duration runs) or `total_ticks` (tick runs); with neither, the bar
    is indeterminate and the log cadence is time-only.
    """

    def __init__(
        self,
        total_seconds: float | None = None,
        total_ticks: int | None = None,
        *,
        stream: TextIO | None = None,
        mode: Mode = "auto",
        log_every_s: float = DEFAULT_LOG_EVERY_SECONDS,
    ) -> None:
        self.total_seconds = total_seconds
        self.total_ticks = total_ticks
        self.log_every_s = log_every_s
        stream = sys.stderr if stream is None else stream
        if mode == "auto":
            mode = "rich" if stream.isatty() else "log"
        self.mode: Literal["rich", "log"] = mode
        self.lines_logged = 0
        self._last_logged: tuple[float, float] | None = None
        self._pending = ""
        self._last_line = ""
        self._last_refresh = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []
        if mode == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._progress = Progress(
                TextColumn("[bold]run[/]"),
                BarColumn(bar_width=16),
                TaskProgressColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(file=stream),
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task("run", total=total_ticks or total_seconds, status="starting")
            self._progress.start()
            self._route_logs_above(stream)

    def _route_logs_above(self, stream: TextIO) -> None:
        """Swap the root's handlers on the bar's stream for ones printing through its console."""
        assert self._progress is not None
        root = logging.getLogger()
        for handler in _stream_handlers(stream):
            above = _AboveTheBar(self._progress.console, handler)
            root.addHandler(above)
            root.removeHandler(handler)
            self._swapped.append((handler, above))

    def _restore_logs(self) -> None:
        root = logging.getLogger()
        for handler, above in self._swapped:
            root.addHandler(handler)
            root.removeHandler(above)
        self._swapped = []

    def _fraction(self, elapsed_s: float, ticks: int | None) -> float | None:
        if self.total_ticks and ticks is not None:
            return min(1.0, ticks / self.total_ticks)
        if self.total_seconds:
            return min(1.0, elapsed_s / self.total_seconds)
        return None

    def _status(
        self, elapsed_s: float, trades: int, heartbeat_age_s: float | None, pnl_usd: float, ticks: int | None,
        open_positions: int,
    ) -> str:  # fmt: skip
        """The words of a log line, or a shorter form that fits a bar on an 80-column terminal."""
        bound = f"/{_clock(self.total_seconds)}" if self.total_seconds else ""
        ticks_total = f"/{self.total_ticks}" if self.total_ticks else ""
        if self.mode == "rich":
            heartbeat = "-" if heartbeat_age_s is None else f"{heartbeat_age_s:.0f}s"
            tick_part = f" · ticks {ticks}{ticks_total}" if ticks is not None else ""
            return (
                f"{_clock(elapsed_s)}{bound}{tick_part} · trades {trades} · open {open_positions}"
                f" · hb {heartbeat} · pnl {pnl_usd:+.2f} USD"
            )
        tick_part = f"ticks {ticks}{ticks_total} " if ticks is not None else ""
        heartbeat = "none yet" if heartbeat_age_s is None else f"{heartbeat_age_s:.0f}s ago"
        return (
            f"elapsed {_clock(elapsed_s)}{bound} {tick_part}trades {trades} open {open_positions} "
            f"heartbeat {heartbeat} pnl {pnl_usd:+.2f} USD"
        )

    def update(
        self,
        elapsed_s: float,
        trades: int,
        last_heartbeat_age_s: float | None,
        pnl_usd: float,
        ticks: int | None = None,
        open_positions: int = 0,
    ) -> None:
        """Record the run's state; draws or logs only when it is due, so calling it every tick is cheap.

        `trades` counts closed trades, whoever closed them (the strategy or the stop-time flatten).
        """
        status = self._status(elapsed_s, trades, last_heartbeat_age_s, pnl_usd, ticks, open_positions)
        fraction = self._fraction(elapsed_s, ticks)
        if self._progress is not None and self._task is not None:
            completed = ticks if self.total_ticks and ticks is not None else elapsed_s
            self._progress.update(self._task, completed=completed, status=status)
            now = time.monotonic()
            if now - self._last_refresh >= REFRESH_EVERY_SECONDS:
                self._last_refresh = now
                self._progress.refresh()
            return
        self._pending = self._line(status, fraction)
        if self._due(elapsed_s, fraction):
            self._emit(elapsed_s, fraction)

    def _line(self, status: str, fraction: float | None) -> str:
        return f"progress {int(fraction * 100)}%: {status}" if fraction is not None else f"progress: {status}"

    def _due(self, elapsed_s: float, fraction: float | None) -> bool:
        if self._last_logged is None:
            return True
        last_elapsed, last_fraction = self._last_logged
        if elapsed_s - last_elapsed >= self.log_every_s:
            return True
        return fraction is not None and fraction - last_fraction >= LOG_EVERY_FRACTION - 1e-9

    def _emit(self, elapsed_s: float, fraction: float | None) -> None:
        log.info("%s", self._pending)
        self.lines_logged += 1
        self._last_logged = (elapsed_s, fraction or 0.0)
        self._last_line, self._pending = self._pending, ""

    def close(self) -> None:
        """Draw the final state, or log it unless the last line logged said the same; calling it
        again is a no-op."""
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()
            self._progress = None
            self._restore_logs()
        elif self._pending and self._pending != self._last_line:
            log.info("%s", self._pending)
            self.lines_logged += 1
            self._pending = ""
