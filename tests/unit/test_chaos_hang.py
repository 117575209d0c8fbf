"""A hang is judged from the moment the engine's run starts (its evidence line), not from launch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from gates.chaos.runner import exits_in_time


def launch(tmp_path: Path, program: str) -> tuple[subprocess.Popen[str], Path, float]:
    stdout = tmp_path / "stdout.txt"
    with stdout.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", program], stdout=out, text=True)
    return process, stdout, time.monotonic()


SLOW_START = "import time; time.sleep(2.5); print('evidence: x', flush=True); time.sleep(1.0)"
STUCK_AFTER_START = "import time; print('evidence: x', flush=True); time.sleep(60)"
NEVER_STARTS = "import time; time.sleep(60)"


def test_a_slow_start_then_a_run_of_its_duration_is_not_a_hang(tmp_path: Path) -> None:
    process, stdout, started = launch(tmp_path, SLOW_START)
    assert exits_in_time(process, stdout, started, duration_sec=1.0, grace_sec=1.0, startup_sec=10.0)
    assert process.returncode == 0


def test_a_run_that_outlives_its_duration_and_grace_is_a_hang(tmp_path: Path) -> None:
    process, stdout, started = launch(tmp_path, STUCK_AFTER_START)
    try:
        assert not exits_in_time(process, stdout, started, duration_sec=0.5, grace_sec=0.5, startup_sec=30.0)
        assert process.poll() is None, "judged a hang while still running, well before its start-up budget"
    finally:
        process.kill()
        process.wait()


def test_a_start_that_never_comes_is_a_hang_after_the_start_up_budget(tmp_path: Path) -> None:
    process, stdout, started = launch(tmp_path, NEVER_STARTS)
    try:
        assert not exits_in_time(process, stdout, started, duration_sec=0.5, grace_sec=0.5, startup_sec=1.0)
        assert time.monotonic() - started >= 2.0
    finally:
        process.kill()
        process.wait()
