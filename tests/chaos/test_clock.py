"""A campaign on the `run` clock counts strike times from the engine's evidence line, not its launch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from gates.chaos.runner import run_start

SLOW_START = "import time; time.sleep(1.5); print('evidence: x', flush=True); time.sleep(30)"
EXITS_FIRST = "import sys; print('state: refused', flush=True); sys.exit(1)"
NEVER_STARTS = "import time; time.sleep(30)"


def launch(tmp_path: Path, program: str) -> tuple[subprocess.Popen[str], Path, float]:
    stdout = tmp_path / "stdout.txt"
    with stdout.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", program], stdout=out, text=True)
    return process, stdout, time.monotonic()


def test_the_origin_is_the_moment_the_evidence_line_appears(tmp_path: Path) -> None:
    process, stdout, started = launch(tmp_path, SLOW_START)
    try:
        origin = run_start(process, stdout, started, startup_sec=30.0)
        assert origin is not None and origin - started >= 1.5
        assert "evidence: x" in stdout.read_text()
        assert process.poll() is None, "the origin was taken only once the engine had ended"
    finally:
        process.kill()
        process.wait()


def test_an_engine_that_exits_before_its_run_starts_has_no_origin(tmp_path: Path) -> None:
    process, stdout, started = launch(tmp_path, EXITS_FIRST)
    assert run_start(process, stdout, started, startup_sec=30.0) is None
    assert process.returncode == 1


def test_a_start_that_outlasts_the_start_up_budget_has_no_origin(tmp_path: Path) -> None:
    process, stdout, started = launch(tmp_path, NEVER_STARTS)
    try:
        assert run_start(process, stdout, started, startup_sec=1.0) is None
        assert process.poll() is None and time.monotonic() - started >= 1.0
    finally:
        process.kill()
        process.wait()
