"""`arbitrage kill-switch status|activate|deactivate` and `arbitrage preflight`.

Both reach PostgreSQL and Redis the way the engine does: `--postgres-dsn`/`--redis-url`, else
POSTGRES_DSN/REDIS_URL, else embedded servers under `services.data_dir`. An expected failure
is one `arbitrage: ...` line and exit 1; a usage error is one line and exit 2. The handlers live
in `ops_handlers`, imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _text(what: str, limit: int = 500) -> Callable[[str], str]:
    def parse(value: str) -> str:
        cleaned = " ".join(value.split())
        if not cleaned or len(cleaned) > limit:
            raise argparse.ArgumentTypeError(f"invalid {what} {value!r}: expected 1 to {limit} characters")
        return cleaned

    return parse


def _add_service_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="default: config/v2/config.yml if present"
    )
    parser.add_argument("--postgres-dsn", metavar="DSN", help="default: POSTGRES_DSN, else embedded")
    parser.add_argument("--redis-url", metavar="URL", help="default: REDIS_URL, else embedded")


def _later(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler `name` of `ops_handlers`, imported when the command runs rather than when parsed."""

    def run(args: argparse.Namespace) -> int:
        handler: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module("arbitrage.ops.ops_handlers"), name
        )
        return handler(args)

    return run


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `kill-switch` (with status/activate/deactivate) and `preflight` to the CLI."""
    kill = sub.add_parser("kill-switch", help="show or change the kill switch (ACTIVE unless released)")
    actions = kill.add_subparsers(dest="action", required=True, parser_class=type(kill))
    status = actions.add_parser("status", help="print the current state")
    status.add_argument("--json", action="store_true", help="print the state as one JSON object")
    _add_service_options(status)
    for action, what in (("activate", "block every live order"), ("deactivate", "allow live orders again")):
        change = actions.add_parser(action, help=what)
        change.add_argument("--reason", required=True, type=_text("reason"), help="why, for the audit log")
        change.add_argument("--by", required=True, type=_text("operator name", 100), help="who decides")
        _add_service_options(change)
    kill.set_defaults(handler=_later("kill_switch_command"))

    preflight = sub.add_parser("preflight", help="check that a run may start here, now (PASS/FAIL rows)")
    preflight.add_argument("--mode", choices=["paper", "live"], help="default: run.mode from the config")
    preflight.add_argument("--output", type=Path, metavar="FILE", help="also write the report as JSON")
    _add_service_options(preflight)
    preflight.set_defaults(handler=_later("preflight_command"))
