"""`arbitrage reconcile [--run RUN_ID] [--exchange-url URL]`: the flags; the work is in `handler`.

Exit 0 only when the run's ledger, event log and reported PnL match both venues within the
stated tolerances and nothing is left open; 1 on any finding or an expected failure (one line).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _handle(args: argparse.Namespace) -> int:
    from arbitrage.reconcile.handler import reconcile_command

    return reconcile_command(args)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `reconcile` to the CLI."""
    parser = sub.add_parser(
        "reconcile",
        help="compare a live run's ledger with both venues (orders, fills, PnL); exit 0 when all match",
    )
    parser.add_argument("--run", metavar="RUN_ID", help="default: the latest live run in the ledger")
    parser.add_argument(
        "--exchange-url",
        metavar="URL",
        help="a local exchange simulator (default: run.exchange_url from the config)",
    )
    parser.add_argument(
        "--evidence-root",
        type=Path,
        metavar="DIR",
        help="where the run's evidence directory is (default: config)",
    )
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="default: config/v2/config.yml if present"
    )
    parser.add_argument("--postgres-dsn", metavar="DSN", help="default: POSTGRES_DSN, else embedded")
    parser.add_argument("--redis-url", metavar="URL", help="default: REDIS_URL, else embedded")
    parser.set_defaults(handler=_handle)
