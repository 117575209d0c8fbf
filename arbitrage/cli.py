"""`arbitrage` command line: run the engine and its operational tools.

Exit codes: 0 success, 1 failure (a failed run, a bad config, an unreachable service),
2 a usage error caught before anything started. Expected failures print one line and no
traceback.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from arbitrage import stop_request

if TYPE_CHECKING:
    from arbitrage.config import LoadedConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are a single `arbitrage: ...` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("arbitrage").strip()
        where = f" {command}:" if command else ""
        self.exit(2, f"arbitrage:{where} usage error: {' '.join(message.splitlines())}\n")


def duration_seconds(text: str) -> float:
    """Parse `90s`, `2m`, `1h` or plain seconds into a positive number of seconds."""
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0.0
    if not match or seconds <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a positive number with unit s, m or h (e.g. 90s, 2m, 1h)"
        )
    return seconds


def _positive(kind: type[int] | type[float], what: str, allow_zero: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected {expected}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected a finite number")
        if value < 0 or (value == 0 and not allow_zero):
            floor = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected a value {floor}")
        return value

    return parse


def _add_run(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    run = sub.add_parser("run", help="run the engine for a duration or a number of ticks")
    run.add_argument("--phase", choices=["smoke", "baseline", "longrun"], help="default duration 5/20/60 min")
    bound = run.add_mutually_exclusive_group()
    bound.add_argument("--duration", type=duration_seconds, help="wallclock bound, e.g. 90s, 2m, 1h")
    bound.add_argument(
        "--ticks", type=_positive(int, "tick count"), help="run exactly N ticks, as fast as possible"
    )
    run.add_argument("--seed", type=_positive(int, "seed", allow_zero=True))
    run.add_argument("--heartbeat-interval", type=_positive(float, "heartbeat interval"), metavar="SECONDS")
    run.add_argument("--market", choices=["synthetic", "ccxt"])
    run.add_argument("--exchange-url", metavar="URL", help="ccxt only: a local exchange simulator")
    run.add_argument("--mode", choices=["paper", "live"])
    run.add_argument("--config", type=Path, metavar="PATH", help="default: config/v2/config.yml if present")
    run.add_argument("--evidence-root", type=Path, metavar="DIR")
    run.add_argument("--postgres-dsn", metavar="DSN", help="default: POSTGRES_DSN, else embedded")
    run.add_argument("--redis-url", metavar="URL", help="default: REDIS_URL, else embedded")
    run.add_argument("--log-format", choices=["text", "json"])
    run.add_argument(
        "--metrics-port", type=_positive(int, "metrics port", allow_zero=True), metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT (0 picks a free port)",
    )  # fmt: skip
    run.set_defaults(handler=_run)


Registrar = Callable[["argparse._SubParsersAction[OneLineParser]"], None]

COMMAND_MODULES: tuple[str, ...] = (
    "gates.verify_command",
    "gates.chaos_command",
    "arbitrage.market.sim_command",
    "arbitrage.ops.ops_commands",
)
"""Modules that add a subcommand: each has `register(sub)`, which calls `sub.add_parser(...)` and
`set_defaults(handler=...)` with a `handler(args) -> int`. Their heavy imports stay inside the handler."""


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="arbitrage", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    _add_run(sub)
    for module_name in COMMAND_MODULES:
        register: Registrar = importlib.import_module(module_name).register
        register(sub)
    return parser


RUN_FLAGS: dict[str, tuple[str, str]] = {
    "run.phase": ("phase", "--phase"),
    "run.duration_sec": ("duration", "--duration"),
    "run.ticks": ("ticks", "--ticks"),
    "run.seed": ("seed", "--seed"),
    "heartbeat.interval_sec": ("heartbeat_interval", "--heartbeat-interval"),
    "run.market": ("market", "--market"),
    "run.exchange_url": ("exchange_url", "--exchange-url"),
    "run.mode": ("mode", "--mode"),
    "run.evidence_root": ("evidence_root", "--evidence-root"),
    "run.log_format": ("log_format", "--log-format"),
    "services.postgres_dsn": ("postgres_dsn", "--postgres-dsn"),
    "services.redis_url": ("redis_url", "--redis-url"),
    "metrics.port": ("metrics_port", "--metrics-port"),
}
"""`run`'s flags: config key -> (argparse dest, the flag as typed), so errors name the real flag."""


def _require_writable(loaded: LoadedConfig, key: str, path: Path) -> None:
    """Refuse a directory setting the engine could not write, before anything starts."""
    from arbitrage.config import ConfigError
    from arbitrage.evidence_root import unwritable_reason

    reason = unwritable_reason(path)
    if reason is not None:
        raise ConfigError(f"config error: {key} = {str(path)!r} ({loaded.origin(key)}): {reason}")


def _run(args: argparse.Namespace) -> int:
    from arbitrage.config import ConfigError, load
    from arbitrage.logs import setup_logging
    from arbitrage.orchestrator import Orchestrator
    from arbitrage.sources import universe

    cli = {key: getattr(args, dest) for key, (dest, _) in RUN_FLAGS.items()}
    flags = {key: flag for key, (_, flag) in RUN_FLAGS.items()}
    try:
        loaded = load(args.config, os.environ, cli, flags)
        config = loaded.config
        universe(config)
        _require_writable(loaded, "run.evidence_root", config.run.evidence_root)
        if config.services.postgres_dsn is None or config.services.redis_url is None:
            _require_writable(loaded, "services.data_dir", config.services.data_dir)
    except ConfigError as exc:
        print(f"arbitrage: {exc}", file=sys.stderr)
        return 1
    setup_logging(config.run.log_format)
    return Orchestrator(config, stop=stop_request.PROCESS).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point.

    The stop handlers come first, so a signal during start-up is a stop request (exit 1 with one
    line), not a bare signal death; commands other than `run` get the default handlers back.
    """
    stop_request.install_signal_handlers()
    args = build_parser().parse_args(argv)
    refusal = stop_request.startup_refusal()
    if refusal is not None:
        print(refusal, file=sys.stderr, flush=True)
        return 1
    if args.command != "run":
        stop_request.restore_default_handlers()
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def console() -> NoReturn:
    """The `arbitrage` command (and `python -m arbitrage`): `main`, then a quick exit.

    Tearing the interpreter down, every module's objects freed one by one, took about a sixth of
    an `arbitrage run --ticks 1`. Once the exit handlers have run and the output is flushed, a
    process with no other thread left loses nothing by leaving at once; with one still running,
    the ordinary exit waits for it as before.
    """
    code = main()
    if threading.active_count() == 1:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
