"""`arbitrage run` puts its state under the project root or the user data directory, and says where.

Real runs with embedded PostgreSQL and Redis: the current directory must stay empty in both cases.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli_process import run_cli

pytestmark = pytest.mark.integration

SHIPPED_CONFIG = Path(__file__).parents[2] / "config" / "v2" / "config.yml"


def run(cwd: Path, xdg: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "--ticks", "3", env={"XDG_DATA_HOME": str(xdg)}, cwd=cwd, timeout=180)


def _lines(done: subprocess.CompletedProcess[str], prefix: str) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith(prefix)]


def test_inside_a_project_state_goes_under_its_root(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "config" / "v2").mkdir(parents=True)
    shutil.copy(SHIPPED_CONFIG, root / "config" / "v2" / "config.yml")
    below = root / "src" / "deep"
    below.mkdir(parents=True)
    done = run(below, tmp_path / "xdg")
    assert done.returncode == 0, done.stderr[-2000:]
    top = root.resolve()
    file = top / "config" / "v2" / "config.yml"
    assert _lines(done, "state: ") == [
        f"state: run.evidence_root = {top / 'logs' / 'evidence'} ({file}, relative to {top})",
        f"state: services.data_dir = {top / '.services'} ({file}, relative to {top})",
    ]
    (evidence,) = _lines(done, "evidence: ")
    assert Path(evidence.split(" ", 1)[1]).parent == root.resolve() / "logs" / "evidence"
    assert list(below.iterdir()) == []
    assert not (tmp_path / "xdg").exists()


def test_outside_a_project_state_goes_under_the_user_data_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "anywhere"
    cwd.mkdir()
    xdg = tmp_path / "xdg"
    done = run(cwd, xdg)
    assert done.returncode == 0, done.stderr[-2000:]
    base = xdg / "arbitrage"
    assert _lines(done, "state: ") == [
        f"state: run.evidence_root = {base / 'logs' / 'evidence'} (built-in default, under the user data "
        f"directory {base})",
        f"state: services.data_dir = {base / '.services'} (built-in default, under the user data "
        f"directory {base})",
    ]
    assert list(cwd.iterdir()) == []
    assert len(list((base / "logs" / "evidence").glob("smoke_*"))) == 1
