"""`arbitrage healthcheck` and `gates/healthcheck.sh` agree on fresh, stale, missing and stuck runs.

The script is run by a real `/bin/sh` (dash on Debian, as in the container), once with jq and once
with only python3 on PATH, against evidence directories crafted on disk.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arbitrage.cli import main
from evidence import names
from harness import cli_process
from tests.evidence_factory import iso, make_evidence_dir, make_heartbeats

SCRIPT = Path(__file__).resolve().parents[2] / "gates" / "healthcheck.sh"
INTERVAL = 10.0
STARTUP_SLACK_S = 10
"""Seconds a loaded machine may take to start the checker after the heartbeat was written."""
SHELL_TOOLS = ("ls", "head", "tail", "wc", "tr", "sed", "cut", "date", "grep")

Runner = Callable[[Path, dict[str, str]], subprocess.CompletedProcess[str]]


def beats_ending(age_s: float, loop_counts: list[int] | None = None) -> list[dict[str, Any]]:
    """Heartbeat lines one interval apart whose last line is `age_s` old."""
    lines = make_heartbeats(beats=4, interval_seconds=INTERVAL)[:-1]
    last = time.time() - age_s
    for index, line in enumerate(lines):
        epoch = last - (len(lines) - 1 - index) * INTERVAL
        line.update(
            epoch_time=int(epoch), epoch_time_precise=epoch, timestamp=iso(epoch), last_loop_ts=epoch - 0.2
        )
        if loop_counts is not None:
            line["loop_count"] = loop_counts[index]
    return lines


def age_in(output: str) -> int:
    match = re.search(r"\(age=(\d+)s", output)
    assert match is not None, output
    return int(match.group(1))


def run_dir(
    root: Path, name: str = "longrun_20250101T000000Z_a1b2c3", status: str = "running", **kwargs: Any
) -> Path:
    """A run directory whose manifest says `status` (a live run by default: not sealed yet)."""
    ended_at = None if status == "running" else iso(time.time())
    return make_evidence_dir(root / name, manifest={"status": status, "ended_at": ended_at}, **kwargs)


def tool_dir(tmp_path: Path, *extra: str) -> Path:
    """A PATH holding only the tools the script needs, so jq's absence can be tested."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in (*SHELL_TOOLS, *extra):
        found = str(Path(sys.executable).resolve()) if tool == "python3" else shutil.which(tool)
        assert found is not None, f"{tool} is needed by healthcheck.sh"
        (bin_dir / tool).symlink_to(found)
    return bin_dir


def run_cli(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`arbitrage healthcheck PATH` through the real CLI entry point, in process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["healthcheck", str(path)])
    return subprocess.CompletedProcess(["arbitrage", "healthcheck", str(path)], code, out.getvalue(), "")


def script_runner(*parsers: str) -> Runner:
    def run(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        bin_dir = tool_dir(path.parent if path.is_dir() else path, *parsers)
        return subprocess.run(
            ["/bin/sh", str(SCRIPT), str(path)],
            capture_output=True, text=True, timeout=60, env={"PATH": str(bin_dir), **env},
        )  # fmt: skip

    return run


RUNNERS = {
    "cli": run_cli,
    "sh+python3": script_runner("python3"),
    "sh+jq": script_runner("jq"),
}


@pytest.fixture(params=sorted(RUNNERS))
def check(request: pytest.FixtureRequest) -> Runner:
    if request.param == "sh+jq" and shutil.which("jq") is None:
        pytest.skip("jq is not installed here; the python3 fallback path is still tested")
    return RUNNERS[request.param]


def test_fresh_heartbeat_with_progress_passes(tmp_path: Path, check: Runner) -> None:
    done = check(run_dir(tmp_path, heartbeats=beats_ending(3.0)), {})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("PASS: heartbeat fresh (age=")
    assert 3 <= age_in(done.stdout) <= 3 + STARTUP_SLACK_S


def test_stale_heartbeat_fails(tmp_path: Path, check: Runner) -> None:
    done = check(run_dir(tmp_path, heartbeats=beats_ending(100.0)), {})
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL: heartbeat stale (age=") and done.stdout.strip().endswith("s > 65s)")
    assert 100 <= age_in(done.stdout) <= 100 + STARTUP_SLACK_S


@pytest.mark.parametrize(("status", "code", "verdict"), [("ended", 0, "PASS"), ("failed", 1, "FAIL")])
def test_a_sealed_run_says_run_ended_however_old_its_heartbeat(
    tmp_path: Path, check: Runner, status: str, code: int, verdict: str
) -> None:
    for age in (1.0, 500.0):
        done = check(run_dir(tmp_path / f"age{age:.0f}", status=status, heartbeats=beats_ending(age)), {})
        assert done.returncode == code, done.stdout + done.stderr
        assert done.stdout.startswith(f"{verdict}: run ended (sealed {status} at 20"), done.stdout


def test_missing_heartbeat_fails(tmp_path: Path, check: Runner) -> None:
    path = run_dir(tmp_path, heartbeats=beats_ending(1.0))
    (path / names.HEARTBEAT).unlink()
    done = check(path, {})
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL: heartbeat.jsonl not found")


def test_fresh_heartbeat_over_a_stuck_loop_fails(tmp_path: Path, check: Runner) -> None:
    done = check(run_dir(tmp_path, heartbeats=beats_ending(2.0, [0, 40, 40, 40, 40])), {})
    assert done.returncode == 1
    assert (
        done.stdout.strip() == "FAIL: loop made no progress (loop_count 40 unchanged over the last 3 beats)"
    )


def test_empty_heartbeat_fails(tmp_path: Path, check: Runner) -> None:
    path = run_dir(tmp_path, heartbeats=beats_ending(1.0))
    (path / names.HEARTBEAT).write_bytes(b"")
    done = check(path, {})
    assert done.returncode == 1
    assert done.stdout.strip() == "FAIL: heartbeat.jsonl has no complete lines"


def test_torn_final_line_is_ignored(tmp_path: Path, check: Runner) -> None:
    path = run_dir(tmp_path, heartbeats=beats_ending(4.0))
    with (path / names.HEARTBEAT).open("ab") as handle:
        handle.write(b'{"epoch_time": 1, "loop_co')
    done = check(path, {})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("PASS: heartbeat fresh (age=")
    assert 4 <= age_in(done.stdout) <= 4 + STARTUP_SLACK_S


def test_evidence_root_uses_the_newest_run(tmp_path: Path, check: Runner) -> None:
    root = tmp_path / "evidence"
    old = run_dir(root, "longrun_20250101T000000Z_000001", heartbeats=beats_ending(500.0))
    new = run_dir(root, "longrun_20250101T010000Z_000002", heartbeats=beats_ending(2.0))
    os.utime(old, (time.time() - 600, time.time() - 600))
    os.utime(new, (time.time(), time.time()))
    done = check(root, {})
    assert done.returncode == 0, done.stdout + done.stderr


def test_script_finds_the_run_from_env_like_the_container(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    run_dir(root, "smoke_20250101T000000Z_abcdef", heartbeats=beats_ending(1.0))
    bin_dir = tool_dir(tmp_path, "python3")
    env = {"PATH": str(bin_dir), "EVIDENCE_ROOT": str(root), "RUN_ID": "smoke_20250101T000000Z_abcdef"}
    done = subprocess.run(["/bin/sh", str(SCRIPT)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    stale = subprocess.run(
        ["/bin/sh", str(SCRIPT)], capture_output=True, text=True, timeout=60, env={**env, "MAX_AGE": "0"}
    )
    assert stale.returncode == 1 and stale.stdout.startswith("FAIL: heartbeat stale")


def test_script_without_any_json_parser_fails_loudly(tmp_path: Path) -> None:
    path = run_dir(tmp_path, heartbeats=beats_ending(1.0))
    done = script_runner()(path, {})
    assert done.returncode == 1
    assert done.stdout.strip() == "FAIL: neither jq nor python3 is available to read heartbeat.jsonl"


def test_cli_rejects_a_bad_max_age_as_usage(tmp_path: Path) -> None:
    done = cli_process.run_cli("healthcheck", str(tmp_path), "--max-age", "-1", timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
