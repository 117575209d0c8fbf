"""The close-out cannot crash: rejected books at stop, evidence write failures, early signals.

Each case is a real engine subprocess on real PostgreSQL and Redis, stopped by a real signal
or a real filesystem fault; outcomes are read from the evidence files and from PostgreSQL,
never from the engine's own summary line.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbitrage.services import ServiceEndpoints
from harness.exchange_sim.client import SimProcess, start_exchange_sim
from tests.support.engine_process import (
    EngineProcess,
    arbitrage_lines,
    catches_sigterm,
    manifests_running,
    sealed_manifest,
    wait_for,
)

pytestmark = pytest.mark.integration

BOOK_MAX_AGE_SEC = 3.0
STALE_WAIT_SEC = 4.0
"""How long the first symbol's books stay rejected before stop: longer than BOOK_MAX_AGE_SEC."""
BOOK_FETCHES_AFTER_FAULT = 2
"""Upbit book requests after a fault change: the last one is a whole tick fetched under it."""

HOLD_ENV = {
    "ARB_WARN_POLICY": "continue",
    "ARB_RUN__BOOK_MAX_AGE_SEC": str(BOOK_MAX_AGE_SEC),
    "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "-40",
    "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "-45",
    "ARB_WATCHDOG__CRITICAL_AFTER_ERRORS": "100",
}
"""Enter every symbol at once and never exit before stop, so the flatten has positions to close."""


def _fetched_under_fault(sim: SimProcess, engine: EngineProcess, since: float, seconds: float) -> None:
    """Wait until `seconds` passed and the engine fetched whole ticks under the current faults."""
    enough = sim.book_requests() + BOOK_FETCHES_AFTER_FAULT
    wait_for(
        lambda: time.monotonic() - since >= seconds and sim.book_requests() >= enough,
        seconds + 15, "ticks fetched under the fault",
    )  # fmt: skip
    assert engine.alive(), engine.stderr


@pytest.mark.parametrize("kind", ["empty", "crossed", "nan", "negative", "halted"])
def test_rejected_book_at_stop_closes_on_the_last_usable_book_or_reports_the_position_open(
    kind: str, server: ServiceEndpoints, tmp_path: Path
) -> None:
    sim = start_exchange_sim("--seed", "5")
    try:
        engine = EngineProcess(
            tmp_path, server, "--market", "ccxt", "--exchange-url", sim.url, "--duration", "90s",
            "--seed", "5", "--heartbeat-interval", "1", env=HOLD_ENV,
        )  # fmt: skip
        engine.wait_for_evidence()
        wait_for(
            lambda: len(set(engine.open_trades().values())) >= 2 or not engine.alive(), 60, "2 open positions"
        )
        assert engine.alive(), engine.stderr
        held = sorted(set(engine.open_trades().values()))
        old, recent = held[0], held[1]
        sim.configure({"faults": [kind], "markets": [old]})
        _fetched_under_fault(sim, engine, time.monotonic(), STALE_WAIT_SEC)
        sim.configure({"faults": [kind], "markets": [old, recent]})
        _fetched_under_fault(sim, engine, time.monotonic(), 0.0)
        assert sim.stats()["faulted"].get(kind, 0) > 0
        engine.process.terminate()
        code = engine.wait(30)
    finally:
        sim.stop()

    assert code == 1, engine.stderr
    assert "Traceback" not in engine.stderr, engine.stderr
    evidence = engine.evidence_dir()
    assert evidence is not None
    assert sealed_manifest(evidence)["status"] == "failed"
    kpi = json.loads((evidence / "kpi.json").read_text())
    summary = json.loads((evidence / "chain_summary.json").read_text())
    assert kpi["open_positions"] == summary["open_positions"]
    reported = {p["trade_id"]: p for p in kpi["open_positions"]}

    legs = engine.legs()
    entries = {t: s for t, leg, s, _ in legs if leg == "entry"}
    exits = {t: r for t, leg, _, r in legs if leg == "exit"}
    unaccounted = {t: s for t, s in entries.items() if (t in exits) == (t in reported)}
    assert not unaccounted, f"entries neither closed nor reported open (or both): {unaccounted}, {reported}"
    assert all(reason == "flatten" for reason in exits.values()), exits
    old_trade = next(t for t, s in entries.items() if s == old)
    assert old_trade in reported and "book_max_age_sec" in reported[old_trade]["reason"], reported
    recent_trade = next(t for t, s in entries.items() if s == recent)
    assert exits.get(recent_trade) == "flatten", (recent, reported.get(recent_trade))
    exit_ticks = dict(
        engine.query(
            "SELECT trade_id, tick FROM trade_legs WHERE run_id = %s AND leg = 'exit'", engine.run_id()
        )
    )
    assert exit_ticks[recent_trade] < max(exit_ticks.values()), (
        f"{recent} was not rejected at stop: {exit_ticks}"
    )

    events = engine.query(
        "SELECT payload->>'trade_id', payload->>'symbol' FROM event_log"
        " WHERE run_id = %s AND event_type = 'POSITION_LEFT_OPEN'",
        engine.run_id(),
    )
    assert sorted(events) == sorted((t, p["symbol"]) for t, p in reported.items())
    status, _, exit_code, ended_at = engine.runs_row()
    assert (status, exit_code) == ("failed", 1) and ended_at is not None


def test_removed_evidence_directory_stops_the_run_with_one_line(
    server: ServiceEndpoints, tmp_path: Path
) -> None:
    engine = EngineProcess(tmp_path, server, "--duration", "60s", "--heartbeat-interval", "30")
    evidence = engine.wait_for_evidence()
    wait_for(lambda: (evidence / "heartbeat.jsonl").exists(), 10, "the first heartbeat")
    shutil.rmtree(evidence)
    removed = time.monotonic()
    code = engine.wait(30)
    stopped_after = time.monotonic() - removed

    assert code == 1, engine.stderr
    assert "Traceback" not in engine.stderr, engine.stderr
    lines = arbitrage_lines(engine.stderr)
    assert len(lines) == 1 and str(evidence) in lines[0], lines
    assert stopped_after < 5, f"the removal was noticed only after {stopped_after:.1f}s (beats every 30 s)"
    status, stop_reason, exit_code, ended_at = engine.runs_row()
    assert (status, stop_reason, exit_code) == ("failed", "EVIDENCE_WRITE_FAILED", 1) and ended_at is not None
    state = engine.redis_status()
    assert (state.get("status"), state.get("exit_code")) == ("failed", "1"), state


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 120 MB tmpfs (just above the engine's 100 MB start-up floor), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=120m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path) -> None:
    """Take every free byte of `disk`: preallocate all but the last MiB (the engine writes on
    meanwhile, so asking for the exact free space can fail), then write until ENOSPC."""
    free = os.statvfs(disk)
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(0, free.f_bavail * free.f_frsize - 2**20))
        os.lseek(fd, 0, os.SEEK_END)
        for chunk in (bytes(2**16), bytes(512)):
            try:
                while os.write(fd, chunk):
                    pass
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    left = os.statvfs(disk)
    assert left.f_bavail * left.f_frsize < 2**16, f"{disk} still has {left.f_bavail} free blocks"


def test_full_disk_stops_the_run_and_the_reserve_still_seals_it(
    server: ServiceEndpoints, small_disk: Path, tmp_path: Path
) -> None:
    engine = EngineProcess(
        tmp_path / "engine", server, "--duration", "60s", "--heartbeat-interval", "1",
        evidence_root=small_disk,
    )  # fmt: skip
    evidence = engine.wait_for_evidence()
    assert evidence.parent == small_disk
    wait_for(lambda: (evidence / "heartbeat.jsonl").exists(), 10, "the first heartbeat")
    _fill(small_disk)
    code = engine.wait(30)

    assert code == 1, engine.stderr
    assert "Traceback" not in engine.stderr, engine.stderr
    lines = arbitrage_lines(engine.stderr)
    assert len(lines) == 1 and str(evidence) in lines[0] and "No space left on device" in lines[0], lines
    manifest = sealed_manifest(evidence)
    assert manifest["status"] == "failed"
    assert {"kpi.json", "chain_summary.json", "heartbeat.jsonl"} <= set(manifest["files"]), manifest["files"]
    summary = json.loads((evidence / "chain_summary.json").read_text())
    assert summary["stop_reason"] == "EVIDENCE_WRITE_FAILED", engine.stderr
    assert not (evidence / ".closeout-reserve").exists()
    status, stop_reason, exit_code, ended_at = engine.runs_row()
    assert (status, stop_reason, exit_code) == ("failed", "EVIDENCE_WRITE_FAILED", 1) and ended_at is not None
    state = engine.redis_status()
    assert (state.get("status"), state.get("exit_code")) == ("failed", "1"), state


@pytest.mark.parametrize("delay", [0.1, 0.3, 1.0])
def test_sigterm_during_start_up_exits_1_and_leaves_no_running_manifest(
    delay: float, server: ServiceEndpoints, tmp_path: Path
) -> None:
    engine = EngineProcess(tmp_path, server, "--duration", "30s")
    # Before the interpreter reaches the engine's first line, SIGTERM can only kill it (its default
    # action); on a loaded machine that window can outlast the delay, so the delay counts from launch
    # but the signal never comes before the handler is installed.
    wait_for(lambda: catches_sigterm(engine.process.pid), 30, "the engine's SIGTERM handler")
    time.sleep(max(0.0, engine.started + delay - time.monotonic()))
    engine.process.terminate()
    code = engine.wait(30)

    assert code == 1, (code, engine.stderr)
    assert "Traceback" not in engine.stderr, engine.stderr
    assert len(arbitrage_lines(engine.stderr)) <= 1, engine.stderr
    running = manifests_running(engine.evidence_root)
    assert not running, f"manifests left running: {running}"
    for manifest in engine.evidence_root.glob("*/manifest.json"):
        assert sealed_manifest(manifest.parent)["status"] == "failed"
