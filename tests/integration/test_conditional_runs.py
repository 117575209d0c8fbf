"""The conditional evidence of real runs: a `--trace` run, a longrun-phase run and a SIGTERM'd run.

Each leaves its conditional file sealed in the manifest with a matching sha256 and valid against
its schema, and `verify` judges it by the rule the engine wrote it by; a required file that is
gone fails that criterion. The engine runs in a subprocess on a real PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from arbitrage.services import ServiceEndpoints
from evidence.names import DAILY_REPORT, DECISION_TRACE, HEARTBEAT, MANIFEST, STOP_REASON_SNAPSHOT
from evidence.schema import validation_errors
from evidence.writer import file_digest
from gates.analyzer import analyze
from harness.cli_process import run_cli, start_cli
from tests.support.engine_process import wait_for

pytestmark = pytest.mark.integration


def _run_args(tmp_path: Path, server: ServiceEndpoints, *args: str) -> list[str]:
    return [
        "run", "--evidence-root", str(tmp_path / "evidence"),
        "--postgres-dsn", server.postgres_dsn, "--redis-url", server.redis_url,
        "--heartbeat-interval", "1", *args,
    ]  # fmt: skip


def _evidence_dir(stdout: str) -> Path:
    lines = [line for line in stdout.splitlines() if line.startswith("evidence: ")]
    assert len(lines) == 1, stdout
    return Path(lines[0].removeprefix("evidence: "))


def _run(tmp_path: Path, server: ServiceEndpoints, *args: str) -> Path:
    done = run_cli(*_run_args(tmp_path, server, *args), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-2000:]}"
    return _evidence_dir(done.stdout)


def _assert_sealed_and_valid(run_dir: Path, name: str) -> dict[str, object]:
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert name in manifest["files"], f"{name} not sealed: manifest lists {sorted(manifest['files'])}"
    assert manifest["files"][name] == file_digest(run_dir / name).to_json(), f"{name}: sha256 mismatch"
    document: dict[str, object] = json.loads((run_dir / name).read_text())
    assert validation_errors(name, document) == []
    return document


def _verify(run_dir: Path, server: ServiceEndpoints) -> subprocess.CompletedProcess[str]:
    return run_cli("verify", str(run_dir), "--postgres-dsn", server.postgres_dsn, timeout=60)


def _criterion(run_dir: Path, name: str, server: ServiceEndpoints) -> tuple[str, str]:
    found = analyze(run_dir, server.postgres_dsn, dsn_explicit=True).criterion(name)
    return found.verdict, found.detail


def test_trace_run_seals_its_decision_trace(tmp_path: Path, server: ServiceEndpoints) -> None:
    run_dir = _run(tmp_path, server, "--phase", "smoke", "--duration", "4s", "--trace")
    trace = _assert_sealed_and_valid(run_dir, DECISION_TRACE)
    entries = trace["entries"]
    assert isinstance(entries, list) and entries, "a 4 s synthetic run takes at least one opportunity"
    assert {e["kind"] for e in entries} == {"entry", "exit"}, "entries and their exits are both traced"
    assert all(e["premiums_pct"]["upbit_rich"] or e["premiums_pct"]["binance_rich"] for e in entries)
    assert not (run_dir / STOP_REASON_SNAPSHOT).exists() and not (run_dir / DAILY_REPORT).exists()
    verified = _verify(run_dir, server)
    assert verified.returncode == 0, verified.stdout
    assert _criterion(run_dir, "decision_trace", server)[0] == "pass"


def test_longrun_phase_run_seals_its_daily_report(tmp_path: Path, server: ServiceEndpoints) -> None:
    run_dir = _run(tmp_path, server, "--phase", "longrun", "--duration", "3s")
    report = _assert_sealed_and_valid(run_dir, DAILY_REPORT)
    summary = json.loads((run_dir / "chain_summary.json").read_text())
    days = report["days"]
    assert isinstance(days, list) and len(days) in (1, 2)
    assert sum(day["round_trips"] for day in days) == summary["closed_trades"]
    assert report["required_because"][0] == "longrun phase"  # type: ignore[index]
    verified = _verify(run_dir, server)
    assert verified.returncode == 0, verified.stdout
    assert _criterion(run_dir, "daily_report", server)[0] == "pass"


def _beats_dir(tmp_path: Path, beats: int) -> Path | None:
    """The evidence directory under `tmp_path` once its heartbeat file holds `beats` lines."""
    found = list((tmp_path / "evidence").glob(f"*/{HEARTBEAT}"))
    return found[0].parent if found and len(found[0].read_text().splitlines()) >= beats else None


def _wait_for_beats(run_dir_of: subprocess.Popen[str], tmp_path: Path, beats: int, timeout: float) -> Path:
    def written() -> Path | None:
        assert run_dir_of.poll() is None, "the engine ended before it was signalled"
        return _beats_dir(tmp_path, beats)

    return wait_for(written, timeout, f"{beats} heartbeat lines")


def _sigterm_after_beats(
    tmp_path: Path, server: ServiceEndpoints, beats: int, before: Callable[[Path], object], *args: str
) -> tuple[Path, int, str]:
    """A run signalled with SIGTERM once it has written `beats` heartbeats (after `before(run_dir)`);
    its evidence directory, exit code and stderr."""
    command = _run_args(tmp_path, server, "--phase", "smoke", "--duration", "60s", *args)
    engine: subprocess.Popen[str] = start_cli(
        *command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        run_dir = _wait_for_beats(engine, tmp_path, beats, timeout=60)
        before(run_dir)
        engine.send_signal(signal.SIGTERM)
        _, stderr = engine.communicate(timeout=30)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    return run_dir, engine.returncode, stderr


def test_sigterm_run_seals_its_stop_snapshot_and_verify_requires_it(
    tmp_path: Path, server: ServiceEndpoints
) -> None:
    run_dir, code, stderr = _sigterm_after_beats(tmp_path, server, 3, lambda run_dir: None)
    assert code == 1, stderr[-2000:]
    snapshot = _assert_sealed_and_valid(run_dir, STOP_REASON_SNAPSHOT)
    assert snapshot["stop_reason"] == "SIGTERM"
    assert isinstance(snapshot["last_books"], list) and snapshot["last_books"], "the books of the last tick"
    assert _criterion(run_dir, "stop_reason_snapshot", server)[0] == "pass"
    verified = _verify(run_dir, server)
    row = re.search(r"^pass\s+(critical\s+)?stop_reason_snapshot\s", verified.stdout, re.MULTILINE)
    assert row is not None, verified.stdout

    removed = tmp_path / "removed"
    shutil.copytree(run_dir, removed)
    (removed / STOP_REASON_SNAPSHOT).unlink()
    verdict, detail = _criterion(removed, "stop_reason_snapshot", server)
    assert (verdict, "required but missing" in detail) == ("fail", True), detail

    never_written = tmp_path / "never_written"
    shutil.copytree(removed, never_written)
    manifest = json.loads((never_written / MANIFEST).read_text())
    del manifest["files"][STOP_REASON_SNAPSHOT]
    (never_written / MANIFEST).write_text(json.dumps(manifest))
    analysis = analyze(never_written, server.postgres_dsn, dsn_explicit=True)
    assert analysis.criterion("sha256_match").verdict == "pass", "only the conditional criterion sees it"
    assert analysis.criterion("stop_reason_snapshot").verdict == "fail"
    assert "stop_reason_snapshot" in analysis.failed


def test_a_conditional_file_that_cannot_be_written_is_one_line_and_loses_nothing_else(
    tmp_path: Path, server: ServiceEndpoints
) -> None:
    def block_the_snapshot(run_dir: Path) -> None:
        (run_dir / STOP_REASON_SNAPSHOT).mkdir()

    run_dir, code, stderr = _sigterm_after_beats(tmp_path, server, 2, block_the_snapshot, "--trace")
    assert code == 1, stderr[-2000:]
    failures = [line for line in stderr.splitlines() if line.startswith("arbitrage: evidence write failed")]
    assert len(failures) == 1 and STOP_REASON_SNAPSHOT in failures[0], stderr[-2000:]
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert manifest["status"] == "failed"
    for name in ("chain_summary.json", "kpi.json", HEARTBEAT, DECISION_TRACE):
        assert manifest["files"].get(name) == file_digest(run_dir / name).to_json(), f"{name} lost"
    analysis = analyze(run_dir, server.postgres_dsn, dsn_explicit=True)
    assert analysis.criterion("completeness").verdict == "pass"
    assert analysis.criterion("decision_trace").verdict == "pass"
    assert analysis.criterion("stop_reason_snapshot").verdict == "fail"
