"""The real entry point refuses bad input with one line: no traceback, no hang, nothing started.

A few cases of tests/unit/test_bad_input.py again, through `python -m arbitrage.cli` in a
subprocess, where an uncaught exception would print a real traceback and a blocking open of a
FIFO would hang the process (the timeout would then fail the test).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli_process import operator_env

pytestmark = pytest.mark.integration

REFUSED_PG = "postgresql://arb@127.0.0.1:1/none?connect_timeout=1"
REFUSED_REDIS = "redis://127.0.0.1:1/0"


def engine(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    refused = {"POSTGRES_DSN": REFUSED_PG, "REDIS_URL": REFUSED_REDIS}
    refused["ARB_SERVICES__DATA_DIR"] = str(tmp_path / "svc")
    return subprocess.run(
        [sys.executable, "-m", "arbitrage.cli", "run", *args],
        capture_output=True, text=True, env=operator_env(refused | env), cwd=tmp_path, timeout=30,
    )  # fmt: skip


def assert_refused(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == code, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("arbitrage:"), lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.timeout(60)
def test_fifo_config_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yml"
    os.mkfifo(fifo)
    done = engine(tmp_path, ["--config", str(fifo), "--evidence-root", str(tmp_path / "ev")], {})
    assert_refused(done, 1, str(fifo), "is a FIFO")
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize(
    ("config", "env", "args", "code", "needles"),
    [
        (b"run:\n  seed: 7\x00\xff\n", {}, [], 1, ["binary content"]),
        (b"run:\n  seed: 1\n  seed: 2\n", {}, [], 1, ["duplicate key 'seed'"]),
        (b"strategy:\n  max_hold_sec: .nan\n", {}, [], 1, ["strategy.max_hold_sec = nan"]),
        (b"run:\n  seed: 7\n", {"ARB_RUN": "1"}, [], 1, ["run = '1' (env ARB_RUN)"]),
        (None, {}, ["--heartbeat-interval", "inf"], 2, ["--heartbeat-interval", "'inf'"]),
        (None, {}, ["--duration", "nan"], 2, ["--duration", "'nan'"]),
        (None, {"ARB_RUN__SEED": "100000000000000000000000000"}, [], 1, ["run.seed", "env ARB_RUN__SEED"]),
    ],
    ids=["binary", "duplicate", "yaml_nan", "env_section", "cli_inf", "cli_nan", "seed_range"],
)
def test_bad_values_are_refused_by_the_real_entry_point(
    tmp_path: Path, config: bytes | None, env: dict[str, str], args: list[str], code: int, needles: list[str]
) -> None:
    full = [*args, "--evidence-root", str(tmp_path / "ev")]
    if config is not None:
        (tmp_path / "config.yml").write_bytes(config)
        full += ["--config", str(tmp_path / "config.yml")]
    done = engine(tmp_path, full, env)
    assert_refused(done, code, *needles)
    assert not (tmp_path / "ev").exists()
    assert not (tmp_path / "svc").exists()


@pytest.mark.parametrize("root", ["/proc/arbitrage-evidence", "{tmp}/plain/evidence"])
def test_unwritable_evidence_root_is_refused_before_services(tmp_path: Path, root: str) -> None:
    (tmp_path / "plain").write_text("a regular file\n")
    target = root.replace("{tmp}", str(tmp_path))
    done = engine(tmp_path, ["--ticks", "3", "--evidence-root", target], {})
    assert_refused(done, 1, "run.evidence_root", target, "CLI --evidence-root")
    assert not Path(target).exists()
    assert not (tmp_path / "svc").exists()


def test_read_only_evidence_root_is_refused(tmp_path: Path) -> None:
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        done = engine(tmp_path, ["--ticks", "3", "--evidence-root", str(mount_point / "evidence")], {})
        assert_refused(done, 1, "run.evidence_root", "Read-only file system", "CLI --evidence-root")
        assert not (mount_point / "evidence").exists()
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
