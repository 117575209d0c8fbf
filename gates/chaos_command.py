"""`arbitrage chaos`: seeded fault campaigns over real engine runs, judged by an independent checker.

`arbitrage chaos [--runs N] [--seed S] [--duration D] [--mode paper|live] [--faults LIST]
[--only K | --shard i/n] [--dry-run] [--workers W] [--postgres-dsn DSN] [--keep] [--output-root DIR]`
plans a schedule from the seed, runs it (`--mode live`: armed live runs against the simulator, with
its order faults), and leaves `chaos_report.json` and `chaos.html` under
`<output-root>/<campaign id>/`; `arbitrage chaos --merge REPORT.json... [--output-root DIR]` sums
shard reports into one. Exit 0 only when no run lost anything and none is unexplained; 1 otherwise
or on an expected failure (one line); 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from arbitrage.cli import duration_seconds

if TYPE_CHECKING:
    from gates.chaos.model import ChaosOptions, Clock, RunOutcome, Schedule

    Runner = Callable[[Schedule, ChaosOptions, Callable[[RunOutcome], None]], list[RunOutcome]]

PROG: Final = "arbitrage chaos"
DEFAULT_RUNS: Final = 20
DEFAULT_SEED: Final = 1
DEFAULT_DURATION_SEC: Final = 10.0
DEFAULT_OUTPUT_ROOT: Final = Path("logs/chaos")
DSN_CHECK_TIMEOUT_SEC: Final = 3.0


def _count(what: str, floor: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        problem = f"invalid {what} {text!r}: expected an integer >= {floor}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(problem) from None
        if value < floor:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def _usage_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def checked(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def _shard(text: str) -> tuple[int, int]:
    """`--shard`, parsed by the schedule, which loads only when the flag is given."""
    from gates.chaos.schedule import parse_shard

    return parse_shard(text)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the `chaos` subcommand."""
    chaos = sub.add_parser("chaos", help="seeded fault runs judged by an independent checker")
    chaos.add_argument("--runs", type=_count("run count", 1), metavar="N", help=f"default {DEFAULT_RUNS}")
    chaos.add_argument("--seed", type=_count("seed", 0), metavar="S", help=f"default {DEFAULT_SEED}")
    chaos.add_argument(
        "--duration", type=duration_seconds, metavar="D", help="each run's length, e.g. 10s, 1m (default 10s)"
    )
    chaos.add_argument(
        "--mode",
        choices=("paper", "live"),
        default="paper",
        help="paper runs (default), or armed live runs against the simulator, with order faults",
    )
    chaos.add_argument(
        "--faults",
        metavar="LIST",
        help="comma-separated kinds or groups (pg, redis, exchange, process, disk, orders with --mode live,"
        " all; default all)",
    )
    pick = chaos.add_mutually_exclusive_group()
    pick.add_argument("--only", type=_count("run index", 0), metavar="K", help="run only plan K (0-based)")
    pick.add_argument(
        "--shard",
        type=_usage_type(_shard),
        metavar="i/n",
        help="run every n-th plan from the i-th (1-based)",
    )
    chaos.add_argument(
        "--clock",
        choices=("run", "launch"),
        default="run",
        help="strike times count from each run's start (its evidence line; default) or from the engine's "
        "launch, where a slow start-up takes the faults meant for the run",
    )
    chaos.add_argument("--dry-run", action="store_true", help="print the schedule and exit")
    chaos.add_argument(
        "--workers", type=_count("worker count", 1), metavar="W", help="parallel runs (default 1)"
    )
    chaos.add_argument(
        "--postgres-dsn", metavar="DSN", help="a PostgreSQL to use (default: one chaos starts)"
    )
    chaos.add_argument(
        "--keep", action="store_true", help="keep every run's evidence, not only failing runs'"
    )
    chaos.add_argument(
        "--output-root", type=Path, metavar="DIR", default=DEFAULT_OUTPUT_ROOT, help="default logs/chaos"
    )
    chaos.add_argument(
        "--merge", nargs="+", type=Path, metavar="REPORT", help="merge shard chaos_report.json files into one"
    )
    chaos.set_defaults(handler=chaos_handler)


def chaos_handler(args: argparse.Namespace) -> int:
    """Plan, run (or print, or merge), report; see the module docstring for exit codes."""
    if args.merge:
        return merge_campaign(args)
    return run_chaos(args)


def _usage(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


def _campaign_dir(root: Path, campaign_id: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        path = root / (campaign_id if attempt == 1 else f"{campaign_id}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{root / campaign_id} and 98 more like it exist")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _finish(report: dict[str, Any], directory: Path) -> int:
    """Write both artifacts, print each failing run with its replay command, then the summary line."""
    from gates.chaos.page import write_page
    from gates.chaos.report import exit_code, failing_runs, summary_line, write_report

    try:
        json_path = write_report(report, directory)
        page_path = write_page(report, directory)
    except OSError as exc:
        return _fail(f"cannot write the chaos report to {directory}: {exc.strerror or exc}")
    for o in failing_runs(report):
        reasons = "; ".join(o["reasons"]) or "no reason given"
        print(f"{o['classification']} run {int(o['index']):04d} ({o['schedule_line']}): {reasons}")
        print(f"  replay: {o['replay_command']}")
    print(f"report: {json_path}")
    print(f"page: {page_path}")
    venue_orders = report["totals"].get("venue_orders")
    if venue_orders:
        print("venue orders filled: " + ", ".join(f"{fate} {n}" for fate, n in sorted(venue_orders.items())))
    print(summary_line(report))
    return exit_code(report)


def run_chaos(args: argparse.Namespace, runner: Runner | None = None) -> int:
    """The campaign itself; `runner` defaults to `gates.chaos.runner.run_campaign`."""
    from gates.chaos.model import Schedule
    from gates.chaos.schedule import build_schedule, format_fault_list, replay_command, shard

    runs = args.runs or DEFAULT_RUNS
    seed = DEFAULT_SEED if args.seed is None else args.seed
    duration = args.duration or DEFAULT_DURATION_SEC
    try:
        kinds = _fault_kinds(args)
    except ValueError as exc:
        return _usage(f"argument --faults: {exc}")
    if args.postgres_dsn is not None:
        from gates.chaos.external_pg import SERVER_ONLY_KINDS, ExternalPostgres, ExternalPostgresError

        try:
            ExternalPostgres(args.postgres_dsn)
        except ExternalPostgresError as exc:
            return _fail(str(exc))
        kinds = tuple(kind for kind in kinds if kind not in SERVER_ONLY_KINDS)
        if not kinds:
            return _usage("argument --faults: pg-restart and pg-freeze need a server the chaos command owns")
    try:
        full = build_schedule(seed, runs, duration, kinds)
    except ValueError as exc:
        return _usage(f"argument --duration: {exc}")
    header = (
        f"chaos schedule: seed={seed} runs={runs} duration={duration:g}s"
        f"{'' if args.mode == 'paper' else ' mode=' + args.mode} faults={format_fault_list(kinds, args.mode)}"
    )
    if args.clock != "run":
        header += f" clock={args.clock}"
    planned: Schedule = full
    if args.only is not None:
        if args.only >= runs:
            return _usage(f"argument --only: run {args.only} is beyond the schedule: expected 0..{runs - 1}")
        planned = Schedule(seed, duration, full.fault_kinds, (full.runs[args.only],))
        header += f" only={args.only}"
    elif args.shard is not None:
        planned = shard(full, *args.shard)
        header += f" shard={args.shard[0]}/{args.shard[1]}"
    if args.dry_run:
        print(header)
        for plan in planned.runs:
            print(plan.line())
        return 0
    dsn: str | None = args.postgres_dsn
    if dsn is not None:
        from arbitrage.ledger import LedgerUnavailable, connect

        try:
            connect(dsn, DSN_CHECK_TIMEOUT_SEC, round(DSN_CHECK_TIMEOUT_SEC * 1000)).close()
        except LedgerUnavailable as exc:
            return _fail(f"--postgres-dsn: {exc}")
    replay = partial(replay_command, mode=args.mode)
    return _campaign(args, full, planned, header, runner or _default_runner(), replay)


def _fault_kinds(args: argparse.Namespace) -> tuple[str, ...]:
    """`--faults` as kinds of the campaign's mode (without it, every kind of the mode)."""
    from gates.chaos.schedule import kinds_of, parse_fault_list

    return parse_fault_list(args.faults, args.mode) if args.faults is not None else kinds_of(args.mode)


def _default_runner() -> Runner:
    from gates.chaos.runner import run_campaign

    return run_campaign


def _options(args: argparse.Namespace, directory: Path) -> ChaosOptions:
    """How the runner runs the campaign, from the command line."""
    from gates.chaos.model import ChaosOptions

    return ChaosOptions(
        workers=args.workers or 1,
        postgres_dsn=args.postgres_dsn,
        keep=args.keep,
        output_root=directory,
        clock=args.clock,
        mode=args.mode,
    )


def _campaign(
    args: argparse.Namespace,
    full: Schedule,
    planned: Schedule,
    header: str,
    runner: Runner,
    replay: Callable[[int, int, float, tuple[str, ...], int, Clock], str],
) -> int:
    from arbitrage.ledger import describe_dsn
    from gates.chaos.live import LiveTable
    from gates.chaos.report import build_report

    suffix = f"_shard{args.shard[0]}of{args.shard[1]}" if args.shard else ""
    campaign_id = f"chaos_{_stamp()}_s{full.seed}{suffix}"
    try:
        directory = _campaign_dir(args.output_root, campaign_id)
    except OSError as exc:
        return _fail(f"cannot create the campaign directory under {args.output_root}: {exc.strerror or exc}")
    campaign_id = directory.name
    options = _options(args, directory)
    workers = options.workers
    total = len(full.runs)

    def with_replay(outcome: RunOutcome) -> RunOutcome:
        outcome.replay_command = replay(
            full.seed, total, full.duration_sec, full.fault_kinds, outcome.plan.index, args.clock
        )
        return outcome

    seen: dict[int, RunOutcome] = {}
    print(f"{header} id={campaign_id} workers={workers}", flush=True)
    started = time.monotonic()
    interrupted = False
    with LiveTable(len(planned.runs)) as live:

        def on_outcome(outcome: RunOutcome) -> None:
            seen[outcome.plan.index] = with_replay(outcome)
            live.on_outcome(outcome)

        try:
            outcomes = [with_replay(o) for o in runner(planned, options, on_outcome)]
        except KeyboardInterrupt:
            outcomes, interrupted = list(seen.values()), True
    recorded = {
        "workers": workers,
        "mode": args.mode,
        "postgres_dsn": None if args.postgres_dsn is None else describe_dsn(args.postgres_dsn),
        "keep": args.keep,
        "output_root": str(args.output_root),
        "only": args.only,
        "shard": None if args.shard is None else f"{args.shard[0]}/{args.shard[1]}",
        "interrupted": interrupted,
    }
    report = build_report(campaign_id, planned, total, recorded, outcomes, time.monotonic() - started)
    code = _finish(report, directory)
    return 130 if interrupted else code


def merge_campaign(args: argparse.Namespace) -> int:
    """`--merge`: shard reports summed into one report and one page."""
    from gates.chaos.report import ReportError, merge_reports, read_report

    valued = {
        "--runs": args.runs, "--seed": args.seed, "--duration": args.duration, "--faults": args.faults,
        "--only": args.only, "--shard": args.shard, "--workers": args.workers,
        "--postgres-dsn": args.postgres_dsn, "--dry-run": args.dry_run or None, "--keep": args.keep or None,
    }  # fmt: skip
    given = [flag for flag, value in valued.items() if value is not None]
    if given:
        return _usage(
            f"argument --merge: not allowed with {given[0]} (merge takes reports and --output-root)"
        )
    try:
        reports = [(path, read_report(path)) for path in args.merge]
        merged = merge_reports(f"chaos_{_stamp()}_s{reports[0][1]['seed']}_merged", reports)
        directory = _campaign_dir(args.output_root, merged["campaign_id"])
    except ReportError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot create the merged report under {args.output_root}: {exc.strerror or exc}")
    merged["campaign_id"] = directory.name
    seed, runs = merged["seed"], merged["runs"]
    print(f"chaos merge: {len(reports)} reports, seed={seed} runs={runs} id={directory.name}")
    return _finish(merged, directory)
