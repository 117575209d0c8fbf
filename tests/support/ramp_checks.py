"""D98 §2's phase 1 checks as the ramp-profile acceptance runs judge them: through `arbitrage verify`."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli_process import run_cli
from harness.engine import EngineProcess

PHASE1_ROWS = ("phase1_first_entry", "phase1_first_exit")


def verify(evidence_dir: Path, dsn: str) -> tuple[int, dict[str, dict[str, object]], str]:
    """`arbitrage verify` as an operator runs it: its exit code, its criteria by name, its output."""
    done = run_cli("verify", str(evidence_dir), "--postgres-dsn", dsn, timeout=120)
    result = json.loads((evidence_dir / "analysis_result.json").read_text())
    return done.returncode, {c["name"]: c for c in result["criteria"]}, done.stdout


def assert_phase1_passed(run: EngineProcess, dsn: str) -> dict[str, dict[str, object]]:
    """Both phase 1 rows pass and show in verify's output, and no criterion fails."""
    evidence_dir = run.evidence_dir
    assert evidence_dir is not None, run.describe()
    code, criteria, shown = verify(evidence_dir, dsn)
    for name in PHASE1_ROWS:
        assert criteria[name]["verdict"] == "pass", criteria[name]
        assert name in shown, shown
    failed = [name for name, row in criteria.items() if row["verdict"] == "fail"]
    assert code == 0 and not failed, (code, failed, shown[-2000:])
    return criteria
