"""`arbitrage sim`: run the local Upbit/Binance exchange simulator until SIGTERM or SIGINT.

The first line on stdout is the base URL (`http://127.0.0.1:PORT`), flushed, so a test or the
harness can read where it listens (by default a free port); the next line says what it serves.
Exit 0 after a signal, 1 when the port cannot be bound, 2 for a bad flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arbitrage.cli import OneLineParser

FAULT_CHOICES = (
    "rate_limit", "ban", "server_error", "timeout", "bad_json",
    "stale", "halted", "empty", "crossed", "negative", "nan",
    "lost_reply", "lost_order", "lookup_down", "late_fill", "held_order",
)  # fmt: skip
"""Kept equal to `control.FAULT_KINDS` (a test checks it) so parsing flags imports nothing heavy."""


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0-65535 (0 picks a free port)")
    return int(text)


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer >= 0")
    return int(text)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid latency {text!r}: expected milliseconds >= 0") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"invalid latency {text!r}: expected milliseconds >= 0")
    return value


def _slippage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 10_000:
        raise argparse.ArgumentTypeError(f"invalid slippage {text!r}: expected basis points, 0 <= N < 10000")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number of seconds > 0")
    return value


def _retry_after(text: str) -> float | str:
    if text.strip().lower() == "none":
        return "none"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 86_400.0:
        raise argparse.ArgumentTypeError(
            f"invalid Retry-After {text!r}: expected seconds in [0, 86400] or 'none'"
        )
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid error rate {text!r}: expected a probability in [0, 1]")
    return value


def _symbols(text: str) -> list[str]:
    from arbitrage.market.universe import UNIVERSE

    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    unknown = [s for s in symbols if s not in UNIVERSE]
    if not symbols or unknown or len(set(symbols)) != len(symbols):
        raise argparse.ArgumentTypeError(
            f"invalid symbols {text!r}: expected distinct comma-separated symbols from {sorted(UNIVERSE)}"
        )
    return symbols


def register(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    """Add `arbitrage sim` to the CLI."""
    sim = sub.add_parser("sim", help="run a local Upbit/Binance exchange simulator (127.0.0.1 only)")
    sim.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1; 0 picks a free one")
    sim.add_argument("--seed", type=_seed, default=1, help="seed of the market model")
    served = sim.add_mutually_exclusive_group()
    served.add_argument(
        "--symbols", type=_symbols, help="comma-separated (default: the engine's top-10 universe)"
    )
    served.add_argument(
        "--universe",
        choices=["top5", "top10", "top20", "top50"],
        help="serve the engine's topN universe (top50 for a live-phase3 run)",
    )
    sim.add_argument(
        "--latency-ms", type=_non_negative, default=0.0, metavar="N", help="delay added to every reply"
    )
    sim.add_argument("--error-rate", type=_probability, default=0.0, metavar="P", help="chance of a 503")
    sim.add_argument(
        "--fault", action="extend", nargs="+", choices=FAULT_CHOICES, default=[], metavar="KIND",
        help=f"fault active from the start: {', '.join(FAULT_CHOICES)}",
    )  # fmt: skip
    sim.add_argument(
        "--premium-half-life-sec", type=_positive, default=None, metavar="S",
        help="how fast each coin's premium mean-reverts (model default 5); shorter means more trades",
    )  # fmt: skip
    sim.add_argument(
        "--retry-after-sec", type=_retry_after, default=None, metavar="S",
        help="Retry-After sent with 429/418 faults (default 60; 'none' sends no header)",
    )  # fmt: skip
    sim.add_argument(
        "--slippage-bps", type=_slippage, default=0.0, metavar="N",
        help="market orders fill N basis points worse than the served book, as when prices move between "
        "quote and fill; an Upbit buy by KRW amount then gets less than the quote's quantity",
    )  # fmt: skip
    sim.add_argument("--dt-sec", type=_positive, default=0.5, metavar="S", help="model time step")
    keys = sim.add_argument_group("test keys the signed order endpoints accept (never real credentials)")
    keys.add_argument("--api-key", default="sim-binance-key", help="Binance API key (default: %(default)s)")
    keys.add_argument(
        "--api-secret", default="sim-binance-secret", help="Binance secret (default: %(default)s)"
    )
    keys.add_argument(
        "--upbit-access-key", default="sim-upbit-access", help="Upbit access key (default: %(default)s)"
    )
    keys.add_argument(
        "--upbit-secret-key", default="sim-upbit-secret", help="Upbit secret key (default: %(default)s)"
    )
    sim.set_defaults(handler=_run)


def serving_line(url: str, args: argparse.Namespace, symbols: Sequence[str]) -> str:
    """What the simulator serves, for the operator: venues, symbols, seed, faults, and how to stop it."""
    faults = ", ".join(args.fault) if args.fault else "none"
    return (
        f"arbitrage sim: serving Upbit (/v1/...) and Binance (/api/v3/...) on {url} for {len(symbols)} "
        f"symbols ({', '.join(symbols)}), seed {args.seed}, step {args.dt_sec:g} s, faults {faults}, "
        f"error rate {args.error_rate:g}, slippage {args.slippage_bps:g} bps; "
        f"use it with `arbitrage run --market ccxt --exchange-url {url}`; "
        "Ctrl-C stops it"
    )


def _chosen_retry_after(flag: float | str | None) -> float | None:
    from harness.exchange_sim.dialects import BAN_SECONDS

    if flag is None:
        return BAN_SECONDS
    return None if flag == "none" else float(flag)


def _run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from arbitrage.market.model import PREMIUM_HALF_LIFE_SEC
    from arbitrage.market.universe import top_n
    from harness.exchange_sim.auth import SimKeys
    from harness.exchange_sim.exchange import ExchangeSim
    from harness.exchange_sim.server import SimServer

    sim = ExchangeSim(
        args.seed,
        args.symbols or top_n(int((args.universe or "top10").removeprefix("top"))),
        dt_sec=args.dt_sec,
        premium_half_life_sec=args.premium_half_life_sec or PREMIUM_HALF_LIFE_SEC,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        faults=args.fault,
        retry_after_sec=_chosen_retry_after(args.retry_after_sec),
        keys=SimKeys(args.api_key, args.api_secret, args.upbit_access_key, args.upbit_secret_key),
        slippage_bps=args.slippage_bps,
    )
    try:
        server = SimServer(sim, args.port)
    except OSError as exc:
        print(f"arbitrage sim: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(server.url, flush=True)
    print(serving_line(server.url, args, sim.symbols), flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0
