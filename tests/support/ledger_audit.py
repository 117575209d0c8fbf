"""An engine run under a fault, and the audit of what it left: read from PostgreSQL and the files.

The audit trusts nothing the engine says about itself: it counts the run's rows in PostgreSQL,
pairs every entry leg with its exit leg, compares kpi.json with those counts, checks that the
`runs` row is final, that no traceback was printed and that the evidence is sealed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from evidence import names
from evidence.invariants import check_completeness
from evidence.writer import file_digest

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


@dataclass(frozen=True)
class LedgerAudit:
    """What PostgreSQL and the files say about one run."""

    entries: int
    exits: int
    unpartnered: list[str]
    run_row: tuple[Any, ...] | None
    kpi: dict[str, Any]
    manifest_status: str
    completeness: str | None

    @classmethod
    def of(cls, dsn: str, run_dir: Path) -> LedgerAudit:
        run_id = run_dir.name
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            legs = dict(
                conn.execute(
                    "SELECT leg, count(*) FROM trade_legs WHERE run_id = %s GROUP BY leg", (run_id,)
                ).fetchall()
            )
            unpartnered = [
                row[0]
                for row in conn.execute(
                    "SELECT e.trade_id FROM trade_legs e WHERE e.run_id = %s AND e.leg = 'entry'"
                    " AND NOT EXISTS (SELECT 1 FROM trade_legs x WHERE x.run_id = e.run_id"
                    " AND x.trade_id = e.trade_id AND x.leg = 'exit') ORDER BY e.trade_id",
                    (run_id,),
                ).fetchall()
            ]
            run_row = conn.execute(
                "SELECT status, exit_code, stop_reason FROM runs WHERE run_id = %s", (run_id,)
            ).fetchone()
        completeness = check_completeness(run_dir)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        sealed = manifest["files"].get(names.LEDGER_JOURNAL)
        journal_digest = file_digest(run_dir / names.LEDGER_JOURNAL).to_json()
        journal_problem = None if sealed == journal_digest else f"journal {journal_digest} sealed as {sealed}"
        return cls(
            entries=int(legs.get("entry", 0)),
            exits=int(legs.get("exit", 0)),
            unpartnered=unpartnered,
            run_row=run_row,
            kpi=json.loads((run_dir / "kpi.json").read_text()),
            manifest_status=manifest["status"],
            completeness=completeness.detail if completeness.failed else journal_problem,
        )

    def problems(self) -> list[str]:
        """Everything that says a leg was lost or the run was not closed out; empty when sound."""
        found = []
        open_reported = self.kpi["open_positions"]
        open_count = len(open_reported) if isinstance(open_reported, list) else int(open_reported)
        if len(self.unpartnered) != open_count:
            found.append(f"entry legs without exit {self.unpartnered} but kpi reports {open_count} open")
        acknowledged = self.kpi["db_counts"]["db_inserts_ok"]
        journaled = self.kpi["ledger"]["legs_pending"]
        if acknowledged + journaled != self.entries + self.exits:
            found.append(
                f"kpi says {acknowledged} legs acknowledged + {journaled} left in the journal, but "
                f"PostgreSQL holds {self.entries} entry + {self.exits} exit legs"
            )
        if self.kpi["closed_trades"] != self.exits:
            found.append(f"kpi closed_trades {self.kpi['closed_trades']} but {self.exits} exit legs")
        if self.run_row is None or self.run_row[0] not in FINAL_STATUSES:
            found.append(f"runs row not final: {self.run_row}")
        if self.manifest_status == "running":
            found.append("manifest still says running")
        if self.completeness is not None:
            found.append(f"evidence not sealed: {self.completeness}")
        return found


def tracebacks(*outputs: str) -> list[str]:
    """Lines that show a Python traceback was printed."""
    marker = "Traceback (most recent call last)"
    return [line for text in outputs for line in text.splitlines() if marker in line]
