"""`arbitrage runs`: the runs under the evidence root, one row each, oldest first.

A row reads the run's own documents: the manifest (phase, start, status), chain_summary.json
(duration, closed trades, PnL) and, once `arbitrage verify` has judged it, analysis_result.json
(the verdict). A manifest still saying `running` whose engine pid is gone is shown as
`interrupted`. Unreadable documents leave `-` in their columns and are named in the status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbitrage.cli import OneLineParser

COLUMNS = ("run_id", "phase", "started_at", "duration_s", "trades", "pnl_usd", "verdict", "status")


@dataclass(frozen=True)
class RunRow:
    """What `arbitrage runs` shows for one evidence directory."""

    run_id: str
    phase: str | None
    started_at: str | None
    duration_s: float | None
    trades: int | None
    pnl_usd: float | None
    verdict: str | None
    status: str


def _document(path: Path, problems: list[str]) -> dict[str, Any] | None:
    from evidence.reader import CorruptEvidenceError, read_json

    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except (CorruptEvidenceError, OSError):
        problems.append(f"{path.name} unreadable")
        return None


def _status(manifest: dict[str, Any] | None) -> str:
    import psutil

    if manifest is None:
        return "no manifest"
    status = str(manifest.get("status", "?"))
    pid = manifest.get("pid")
    if status == "running" and isinstance(pid, int) and not psutil.pid_exists(pid):
        return "interrupted"
    return status


def read_run(run_dir: Path) -> RunRow:
    """One run's row; never raises for missing or corrupt documents."""
    from evidence.names import ANALYSIS_RESULT, CHAIN_SUMMARY, MANIFEST

    problems: list[str] = []
    manifest = _document(run_dir / MANIFEST, problems)
    summary = _document(run_dir / CHAIN_SUMMARY, problems) or {}
    analysis = _document(run_dir / ANALYSIS_RESULT, problems) or {}
    pnl = summary.get("net_pnl")
    duration = summary.get("duration_seconds")
    trades = summary.get("closed_trades")
    status = ", ".join([_status(manifest), *problems])
    return RunRow(
        run_id=str((manifest or {}).get("run_id") or run_dir.name),
        phase=(manifest or {}).get("phase"),
        started_at=(manifest or {}).get("started_at"),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        trades=trades if isinstance(trades, int) else None,
        pnl_usd=float(pnl["usd"])
        if isinstance(pnl, dict) and isinstance(pnl.get("usd"), int | float)
        else None,
        verdict=analysis.get("verdict") if isinstance(analysis.get("verdict"), str) else None,
        status=status,
    )


def list_runs(root: Path) -> list[RunRow]:
    """Every run directory under `root` (hidden ones skipped), oldest start first."""
    if not root.is_dir():
        return []
    rows = [read_run(child) for child in root.iterdir() if child.is_dir() and not child.name.startswith(".")]
    return sorted(rows, key=lambda row: (row.started_at or "", row.run_id))


def _cell(value: object, column: str) -> str:
    if value is None:
        return "-"
    if column == "duration_s" and isinstance(value, float):
        return f"{value:.1f}"
    if column == "pnl_usd" and isinstance(value, float):
        return f"{value:+.2f}"
    return str(value)


def render(rows: list[RunRow]) -> str:
    """An aligned table with a header row."""
    table = [list(COLUMNS), *([_cell(getattr(row, c), c) for c in COLUMNS] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table
    )


def register(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    """Add `arbitrage runs` to the CLI."""
    runs = sub.add_parser(
        "runs",
        help="list the runs under the evidence root with their trades, PnL, verdict and status",
        description="List runs under the evidence root (resolved as for `arbitrage run`). The verdict "
        "is shown once `arbitrage verify` has judged the run.",
    )
    runs.add_argument(
        "--evidence-root",
        type=Path,
        metavar="DIR",
        help="the evidence root to list (default: config run.evidence_root, as `arbitrage run` resolves it)",
    )
    runs.add_argument("--config", type=Path, metavar="PATH", help="YAML config, as for `arbitrage run`")
    runs.add_argument("--json", action="store_true", help="print a JSON list of runs instead of a table")
    runs.set_defaults(handler=_runs)


def _runs(args: argparse.Namespace) -> int:
    from arbitrage.config import ConfigError, load, with_state_dirs

    cli = {"run.evidence_root": args.evidence_root}
    try:
        loaded = with_state_dirs(load(args.config, os.environ, cli, {"run.evidence_root": "--evidence-root"}))
    except ConfigError as exc:
        print(f"arbitrage: {exc}", file=sys.stderr)
        return 1
    root = loaded.config.run.evidence_root
    if root.exists() and not root.is_dir():
        origin = loaded.origin("run.evidence_root")
        print(f"arbitrage: runs: evidence root {root} ({origin}) is not a directory", file=sys.stderr)
        return 1
    rows = list_runs(root)
    if args.json:
        print(json.dumps({"evidence_root": str(root), "runs": [asdict(row) for row in rows]}, indent=2))
    elif not rows:
        print(f"no runs under {root} ({loaded.origin('run.evidence_root')})")
    else:
        print(f"runs under {root}:")
        print(render(rows))
    return 0
