"""`chaos_report.json`: a campaign's schedule, every run's outcome, and the totals that judge it.

The report is plain JSON so that shard reports from a CI matrix can be merged into one
(`merge_reports`), and `chaos.html` (`gates.chaos.page`) is drawn from it alone. The summary
line, `chaos: N runs, F faults, lost L, unexplained U`, counts faults actually struck (measured
events), not planned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from evidence.writer import atomic_write_json
from gates.chaos.model import CLASSIFICATIONS, FAULT_KINDS, RunOutcome, Schedule

REPORT_NAME: Final = "chaos_report.json"
FAILING: Final = ("LOST", "UNEXPLAINED")
"""Classifications that make a campaign fail (exit 1)."""


class ReportError(Exception):
    """A report cannot be read or merged; the message is one operator line."""


def _struck(outcome: Mapping[str, Any]) -> list[str]:
    return [event["kind"] for event in outcome["events"] if event["action"] == "strike"]


def totals(outcomes: Sequence[Mapping[str, Any]], fault_kinds: Sequence[str]) -> dict[str, Any]:
    """Counts per classification and per fault kind, faults struck, and the checker's share of
    the runs' wallclock, from outcomes in their `RunOutcome.to_json()` form."""
    by_class = dict.fromkeys(CLASSIFICATIONS, 0)
    by_kind: dict[str, dict[str, int]] = {
        kind: {"planned": 0, "struck": 0, **dict.fromkeys(CLASSIFICATIONS, 0)} for kind in fault_kinds
    }
    struck_total = 0
    for outcome in outcomes:
        by_class[outcome["classification"]] += 1
        for fault in outcome["faults"]:
            row = by_kind.setdefault(
                fault["kind"], {"planned": 0, "struck": 0, **dict.fromkeys(CLASSIFICATIONS, 0)}
            )
            row["planned"] += 1
            row[outcome["classification"]] += 1
        for kind in _struck(outcome):
            struck_total += 1
            by_kind.setdefault(kind, {"planned": 0, "struck": 0, **dict.fromkeys(CLASSIFICATIONS, 0)})
            by_kind[kind]["struck"] += 1
    wallclock = sum(float(o["wallclock_sec"]) for o in outcomes)
    checker = sum(float(o["checker_sec"]) for o in outcomes)
    per_run = [
        100.0 * float(o["checker_sec"]) / float(o["wallclock_sec"]) for o in outcomes if o["wallclock_sec"]
    ]
    venue_orders: dict[str, int] = {}
    for outcome in outcomes:
        for fate, count in (outcome.get("venue_orders") or {}).items():
            venue_orders[fate] = venue_orders.get(fate, 0) + count
    return {
        "runs": len(outcomes),
        "faults_struck": struck_total,
        "venue_orders": venue_orders,
        "by_classification": by_class,
        "by_fault_kind": by_kind,
        "run_wallclock_sec": round(wallclock, 3),
        "checker_sec": round(checker, 3),
        "checker_overhead_pct": round(100.0 * checker / wallclock, 2) if wallclock else 0.0,
        "checker_overhead_max_pct": round(max(per_run), 2) if per_run else 0.0,
    }


def build_report(
    campaign_id: str,
    schedule: Schedule,
    total_runs: int,
    options: Mapping[str, Any],
    outcomes: Sequence[RunOutcome],
    campaign_wallclock_sec: float,
) -> dict[str, Any]:
    """The whole report of one campaign (or shard): `total_runs` is the full schedule's `--runs`."""
    rows = [outcome.to_json() for outcome in sorted(outcomes, key=lambda o: o.plan.index)]
    hours = campaign_wallclock_sec / 3600.0
    return {
        "campaign_id": campaign_id,
        "seed": schedule.seed,
        "runs": total_runs,
        "duration_sec": schedule.duration_sec,
        "fault_kinds": list(schedule.fault_kinds),
        "options": dict(options),
        "schedule": [plan.line() for plan in schedule.runs],
        "outcomes": rows,
        "totals": totals(rows, schedule.fault_kinds),
        "campaign_wallclock_sec": round(campaign_wallclock_sec, 3),
        "runs_per_hour": round(len(rows) / hours, 1) if hours > 0 else 0.0,
        "shards": [campaign_id],
    }


def write_report(report: Mapping[str, Any], directory: Path) -> Path:
    """Write `chaos_report.json` into `directory` atomically."""
    path = directory / REPORT_NAME
    atomic_write_json(path, report)
    return path


def read_report(path: Path) -> dict[str, Any]:
    """A report read back; ReportError (one line) when missing or not a chaos report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"cannot read chaos report {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ReportError(f"chaos report {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} is not a chaos report: expected a JSON object")
    missing = [key for key in ("seed", "runs", "duration_sec", "outcomes", "schedule") if key not in data]
    if missing:
        raise ReportError(f"{path} is not a chaos report: missing {', '.join(missing)}")
    return data


def merge_reports(campaign_id: str, reports: Sequence[tuple[Path, Mapping[str, Any]]]) -> dict[str, Any]:
    """Shard reports summed into one. They must share seed, runs, duration and fault kinds, and
    no run may appear twice. Runs per hour add up (shards run side by side on their own machines)."""
    if not reports:
        raise ReportError("no chaos reports to merge")
    first_path, first = reports[0]
    keys = ("seed", "runs", "duration_sec", "fault_kinds")
    seen: dict[int, Path] = {}
    for path, report in reports:
        for key in keys:
            if report.get(key) != first.get(key):
                raise ReportError(
                    f"cannot merge {path} ({key} {report.get(key)!r}) with {first_path} "
                    f"({key} {first.get(key)!r}): shard reports must share seed, runs, duration and faults"
                )
        for outcome in report["outcomes"]:
            index = int(outcome["index"])
            if index in seen:
                raise ReportError(
                    f"run {index} is in both {seen[index]} and {path}: a shard was merged twice"
                )
            seen[index] = path
    outcomes = sorted((o for _, r in reports for o in r["outcomes"]), key=lambda o: int(o["index"]))
    lines = {line for _, r in reports for line in r["schedule"]}
    kinds = list(first.get("fault_kinds") or FAULT_KINDS)
    return {
        "campaign_id": campaign_id,
        "seed": first["seed"],
        "runs": first["runs"],
        "duration_sec": first["duration_sec"],
        "fault_kinds": kinds,
        "options": {"merged_from": [str(path) for path, _ in reports]},
        "schedule": sorted(lines),
        "outcomes": outcomes,
        "totals": totals(outcomes, kinds),
        "campaign_wallclock_sec": max(float(r.get("campaign_wallclock_sec", 0.0)) for _, r in reports),
        "runs_per_hour": round(sum(float(r.get("runs_per_hour", 0.0)) for _, r in reports), 1),
        "shards": [shard for _, r in reports for shard in r.get("shards", [r.get("campaign_id")])],
    }


def failing_runs(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The LOST and UNEXPLAINED outcomes, in run order."""
    return [o for o in report["outcomes"] if o["classification"] in FAILING]


def summary_line(report: Mapping[str, Any]) -> str:
    """`chaos: N runs, F faults, lost L, unexplained U`: the campaign's last stdout line."""
    t = report["totals"]
    by_class = t["by_classification"]
    return (
        f"chaos: {t['runs']} runs, {t['faults_struck']} faults, lost {by_class['LOST']}, "
        f"unexplained {by_class['UNEXPLAINED']}"
    )


def exit_code(report: Mapping[str, Any]) -> int:
    """0 only when nothing was lost and nothing is unexplained."""
    by_class = report["totals"]["by_classification"]
    return 0 if by_class["LOST"] == 0 and by_class["UNEXPLAINED"] == 0 else 1
