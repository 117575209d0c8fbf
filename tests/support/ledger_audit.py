"""An engine run under a fault, for the fault suite; the audit of what it left is the chaos
checker's (`gates.chaos.checker.LedgerAudit`), which reads PostgreSQL and the files only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

FINAL_STATUSES = ("ended", "failed", "crashed")
FAST_TRADING = {
    "ARB_STRATEGY__ENTRY_THRESHOLD_PCT": "2.2",
    "ARB_STRATEGY__EXIT_THRESHOLD_PCT": "2.1",
    "ARB_WARN_POLICY": "continue",
}
"""Thresholds that make the seeded synthetic market trade every few seconds, and a policy that
keeps the run going through the WARNINGs a fault causes (the exit code still says 1)."""


@dataclass
class EngineRun:
    """A real `arbitrage run` subprocess and what it printed."""

    process: subprocess.Popen[str]
    evidence_root: Path
    started: float = field(default_factory=time.monotonic)
    stdout: str = ""
    stderr: str = ""

    @classmethod
    def start(
        cls, evidence_root: Path, dsn: str, redis_url: str, *args: str, env: Mapping[str, str] | None = None
    ) -> EngineRun:
        command = [
            sys.executable, "-m", "arbitrage.cli", "run", "--seed", "7", "--heartbeat-interval", "2",
            "--evidence-root", str(evidence_root), "--postgres-dsn", dsn, "--redis-url", redis_url, *args,
        ]  # fmt: skip
        environment = {**os.environ, **FAST_TRADING, **(env or {})}
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
        )
        return cls(process, evidence_root)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait_until(self, seconds: float) -> None:
        """Block until `seconds` after launch (the moment a fault is scheduled to strike)."""
        while (left := seconds - self.elapsed()) > 0:
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited early ({self.process.returncode}) before t={seconds}s")
            time.sleep(min(left, 0.05))

    def finish(self, timeout: float = 120.0) -> int:
        self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode

    @property
    def run_dir(self) -> Path:
        match = re.search(r"^evidence: (.+)$", self.stdout, re.MULTILINE)
        assert match is not None, f"no evidence line; stderr:\n{self.stderr}"
        return Path(match.group(1).strip())

    @property
    def run_id(self) -> str:
        return self.run_dir.name


def next_command(evidence_root: Path, dsn: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """The next engine start on the same evidence root and database (a 3-tick run)."""
    run = EngineRun.start(evidence_root, dsn, redis_url, "--ticks", "3")
    run.finish()
    return subprocess.CompletedProcess(run.process.args, run.process.returncode, run.stdout, run.stderr)


def tracebacks(*outputs: str) -> list[str]:
    """Lines that show a Python traceback was printed."""
    marker = "Traceback (most recent call last)"
    return [line for text in outputs for line in text.splitlines() if marker in line]
