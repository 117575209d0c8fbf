"""RunProgress: a live bar on a terminal, sparse plain log lines everywhere else."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import select
import struct
import termios
import time
from collections.abc import Iterator

import pytest

from arbitrage.progress import RunProgress

LOGGER = "arbitrage.progress"


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def feed(progress: RunProgress, until_s: float, step_s: float = 0.5, ticks: bool = False) -> None:
    elapsed, tick = 0.0, 0
    while elapsed <= until_s + 1e-9:
        progress.update(elapsed, trades=tick // 20, last_heartbeat_age_s=elapsed % 10, pnl_usd=0.01 * tick,
                        ticks=tick if ticks else None)  # fmt: skip
        elapsed += step_s
        tick += 1


def test_not_a_terminal_means_log_lines_every_tenth_of_a_short_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = RunProgress(total_seconds=90, stream=io.StringIO())
    assert progress.mode == "log"
    feed(progress, 90)
    progress.close()
    logged = lines(caplog)
    percents = [int(m.group(1)) for line in logged if (m := re.match(r"progress (\d+)%", line))]
    assert percents == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert logged[-1] == (
        "progress 100%: elapsed 00:01:30/00:01:30 trades 9 open 0 heartbeat 0s ago pnl +1.80 USD"
    )


def test_long_runs_log_every_30_seconds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = RunProgress(total_seconds=3600, stream=io.StringIO())
    feed(progress, 300, step_s=1.0)
    elapsed = [m.group(1) for line in lines(caplog) if (m := re.search(r"elapsed (\S+)/", line))]
    assert elapsed == [f"00:{m:02d}:{s:02d}" for m in range(6) for s in (0, 30)][:11]


def test_tick_runs_count_progress_in_ticks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = RunProgress(total_ticks=400, stream=io.StringIO())
    feed(progress, 200, ticks=True)
    progress.close()
    logged = lines(caplog)
    assert len(logged) == 11, logged
    assert "ticks 400/400" in logged[-1] and logged[-1].startswith("progress 100%")


def test_a_final_state_already_logged_is_not_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = RunProgress(total_ticks=1, stream=io.StringIO())
    progress.update(0.0, trades=0, last_heartbeat_age_s=0.0, pnl_usd=0.0, ticks=1)
    progress.update(0.0, trades=0, last_heartbeat_age_s=0.0, pnl_usd=0.0, ticks=1)
    progress.close()
    assert lines(caplog) == [
        "progress 100%: elapsed 00:00:00 ticks 1/1 trades 0 open 0 heartbeat 0s ago pnl +0.00 USD"
    ]


def test_unbounded_runs_log_on_time_alone_and_close_is_idempotent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = RunProgress(stream=io.StringIO(), log_every_s=10)
    feed(progress, 25)
    progress.close()
    progress.close()
    logged = lines(caplog)
    assert [line.split(" trades")[0] for line in logged] == [
        "progress: elapsed 00:00:00",
        "progress: elapsed 00:00:10",
        "progress: elapsed 00:00:20",
        "progress: elapsed 00:00:25",
    ]
    assert progress.lines_logged == 4


@pytest.fixture
def terminal() -> Iterator[tuple[int, io.TextIOWrapper]]:
    """A real pseudo-terminal, 160 columns wide: the reading end and a text stream on the other."""
    reader, writer = os.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    stream = io.TextIOWrapper(os.fdopen(writer, "wb", buffering=0), encoding="utf-8", write_through=True)
    yield reader, stream
    stream.close()
    os.close(reader)


def read_until(fd: int, needle: str, timeout_s: float = 10.0) -> str:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} never appeared on the terminal; saw {seen[-400:]!r}"
        if select.select([fd], [], [], remaining)[0]:
            seen += os.read(fd, 65536)
    return seen.decode("utf-8", "replace")


def test_a_terminal_gets_a_live_bar_and_no_log_lines(
    terminal: tuple[int, io.TextIOWrapper], caplog: pytest.LogCaptureFixture
) -> None:
    reader, stream = terminal
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = RunProgress(total_seconds=300, stream=stream)
    assert progress.mode == "rich"
    progress.update(150.0, trades=4, last_heartbeat_age_s=3.0, pnl_usd=-1.25)
    progress.close()
    shown = read_until(reader, "pnl -1.25 USD")
    assert "50%" in shown and "00:02:30/00:05:00" in shown and "trades 4 · open 0" in shown
    assert "hb 3s" in shown
    assert lines(caplog) == []


def test_open_positions_show_beside_closed_trades(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = RunProgress(total_seconds=60, stream=io.StringIO())
    progress.update(30.0, trades=3, last_heartbeat_age_s=None, pnl_usd=0.5, open_positions=2)
    progress.close()
    assert lines(caplog) == [
        "progress 50%: elapsed 00:00:30/00:01:00 trades 3 open 2 heartbeat none yet pnl +0.50 USD"
    ]


def test_log_lines_on_the_terminal_print_above_the_bar_not_through_it(
    terminal: tuple[int, io.TextIOWrapper], caplog: pytest.LogCaptureFixture
) -> None:
    reader, stream = terminal
    caplog.set_level(logging.INFO, logger="arbitrage.test")
    console = logging.StreamHandler(stream)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(console)
    try:
        progress = RunProgress(total_seconds=300, stream=stream)
        assert console not in root.handlers, "the plain handler still writes straight across the bar"
        progress.update(20.0, trades=1, last_heartbeat_age_s=1.0, pnl_usd=0.5)
        logging.getLogger("arbitrage.test").info("a line for the operator")
        progress.update(150.0, trades=4, last_heartbeat_age_s=3.0, pnl_usd=-1.25)
        progress.close()
        assert console in root.handlers, "close did not give the plain handler back"
    finally:
        root.removeHandler(console)
    shown = read_until(reader, "pnl -1.25 USD")
    before, line, after = shown.partition("INFO a line for the operator")
    assert line, shown
    assert before.endswith("\r\x1b[2K"), f"the bar was not cleared before the log line: {before[-80:]!r}"
    assert after.startswith("\r\n") and "trades 1 · open 0" in after.split("\r\x1b[2K")[0], (
        f"the bar was not drawn again below the log line: {after[:200]!r}"
    )
