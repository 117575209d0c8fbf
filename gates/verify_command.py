"""`arbitrage verify` and `arbitrage healthcheck`: judging a run without trusting the engine.

`verify` decides GO (exit 0), CONDITIONAL GO (exit 3: only high or medium criteria failed) or
NO-GO (exit 1) on a finished run's evidence and leaves
`analysis_result.json` and `report.html` behind; `healthcheck` decides whether a running engine is
alive. Expected failures are one line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gates.health_defaults import DEFAULT_MAX_AGE_SECONDS, DEFAULT_STALL_BEATS


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number > 0")
    return value


def _at_least_two(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer >= 2")
    return value


def _window(text: str) -> tuple[str, float]:
    name, sep, seconds = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid window {text!r}: expected NAME=SECONDS")
    return name.strip(), _positive_float(seconds)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the `verify` and `healthcheck` subcommands."""
    verify = sub.add_parser(
        "verify",
        help="GO (0), CONDITIONAL GO (3) or NO-GO (1) on a run's evidence;"
        " writes analysis_result.json, report.html",
    )
    verify.add_argument("evidence_dir", type=Path, help="the run's evidence directory")
    verify.add_argument(
        "--postgres-dsn",
        metavar="DSN",
        help="recount ledger rows here (default: the run's embedded PostgreSQL, restarted read-only"
        " when its manifest names one, else POSTGRES_DSN, else not checked)",
    )
    verify.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="where to write the results (default: evidence_dir)"
    )
    verify.add_argument(
        "--window",
        type=_window,
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="shorten or lengthen one D77-4 window (e.g. win_rate=60) for rehearsals; repeatable",
    )
    verify.set_defaults(handler=verify_handler)

    health = sub.add_parser(
        "healthcheck", help="exit 1 when the heartbeat is missing, stale, or the loop is stuck"
    )
    health.add_argument(
        "evidence_dir", type=Path, help="a run directory, or an evidence root (newest run is used)"
    )
    health.add_argument(
        "--max-age",
        type=_positive_float,
        default=DEFAULT_MAX_AGE_SECONDS,
        metavar="SECONDS",
        help=f"oldest acceptable heartbeat (default {DEFAULT_MAX_AGE_SECONDS:g})",
    )
    health.add_argument(
        "--stall-beats",
        type=_at_least_two,
        default=DEFAULT_STALL_BEATS,
        metavar="N",
        help=f"fail when loop_count is unchanged over the last N beats (default {DEFAULT_STALL_BEATS})",
    )
    health.set_defaults(handler=healthcheck_handler)


def verify_handler(args: argparse.Namespace) -> int:
    """Analyze, write both artifacts, print the criteria table; 0 GO, 3 CONDITIONAL GO, 1 NO-GO."""
    evidence_dir: Path = args.evidence_dir
    if not evidence_dir.is_dir():
        print(f"arbitrage verify: evidence directory not found: {evidence_dir}", file=sys.stderr)
        return 1
    from evidence.criteria import Windows
    from gates.analyzer import FAIL, analyze, write_result
    from gates.report import write_report

    try:
        windows = Windows().overridden(dict(args.window))
    except ValueError as exc:
        print(f"arbitrage verify: --window: {exc}", file=sys.stderr)
        return 2
    dsn = args.postgres_dsn or os.environ.get("POSTGRES_DSN") or None
    analysis = analyze(
        evidence_dir, dsn, dsn_explicit=args.postgres_dsn is not None, embedded_ledger=True, windows=windows
    )
    out_dir: Path = args.output_dir or evidence_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        result_path = write_result(analysis, out_dir)
        report_path = write_report(analysis, out_dir)
    except OSError as exc:
        print(f"arbitrage verify: cannot write results to {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    width = max(len(c.name) for c in analysis.criteria)
    for c in analysis.criteria:
        mark = "FAIL" if c.verdict == FAIL else c.verdict
        print(f"{mark:<14} {c.priority:<8} {c.name:<{width}}  {c.detail}")
    failed = f": failed {', '.join(analysis.failed)}" if analysis.failed else ""
    print(f"verdict: {analysis.verdict}{failed}")
    print(f"analysis: {result_path}")
    print(f"report: {report_path}")
    return analysis.exit_code


def healthcheck_handler(args: argparse.Namespace) -> int:
    """Print one PASS/FAIL line; 0 healthy, 1 not."""
    from gates.healthcheck import check_health

    health = check_health(args.evidence_dir, args.max_age, args.stall_beats)
    print(health.message)
    return 0 if health.healthy else 1
