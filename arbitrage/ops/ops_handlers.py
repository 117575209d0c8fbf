"""What `arbitrage kill-switch` and `arbitrage preflight` do once parsed; imported only when one of
them runs, because it needs PostgreSQL, Redis and the config (see `ops_commands` for the flags)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator

from arbitrage.config import AppConfig, ConfigError, load, with_state_dirs
from arbitrage.ledger import Ledger, LedgerUnavailable, connect
from arbitrage.ops.kill_switch import KillSwitch, KillSwitchCache, KillSwitchError
from arbitrage.services import EmbeddedServices, ServiceEndpoints, ServiceStartError
from arbitrage.state import StateUnavailable

Handler = Callable[[argparse.Namespace], int]
EXPECTED_FAILURES = (ConfigError, ServiceStartError, LedgerUnavailable, StateUnavailable, KillSwitchError)
MIN_FREE_DISK_MB = 100.0


def _guarded(handler: Handler) -> Handler:
    """Turn an expected failure into one `arbitrage: ...` line and exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except EXPECTED_FAILURES as exc:
            print(f"arbitrage: {exc}", file=sys.stderr, flush=True)
            return 1

    return run


@contextlib.contextmanager
def _endpoints(
    args: argparse.Namespace, extra: dict[str, object]
) -> Iterator[tuple[AppConfig, ServiceEndpoints]]:
    cli: dict[str, object] = {
        "services.postgres_dsn": args.postgres_dsn,
        "services.redis_url": args.redis_url,
        **extra,
    }
    config = with_state_dirs(load(args.config, os.environ, cli)).config
    svc = config.services
    services = EmbeddedServices(svc.data_dir)
    try:
        yield (
            config,
            services.resolve(
                svc.postgres_dsn.get_secret_value() if svc.postgres_dsn else None,
                svc.redis_url.get_secret_value() if svc.redis_url else None,
            ),
        )
    finally:
        services.stop()


def _ensure_schema(config: AppConfig, dsn: str) -> None:
    ledger = Ledger(dsn, config.services.connect_timeout_sec, config.services.statement_timeout_ms)
    try:
        ledger.open()
    finally:
        ledger.close()


def _cache(config: AppConfig, url: str) -> KillSwitchCache | None:
    """The Redis copy of the switch, or None when Redis is down: the database alone still decides."""
    svc = config.services
    try:
        cache = KillSwitchCache.connect(url, svc.redis_key_prefix, svc.redis_socket_timeout_sec)
    except KillSwitchError:
        return None
    if cache.ping():
        return cache
    cache.close()
    return None


def _kill_switch(args: argparse.Namespace) -> int:
    with _endpoints(args, {}) as (config, endpoints):
        svc = config.services
        _ensure_schema(config, endpoints.postgres_dsn)
        conn = connect(endpoints.postgres_dsn, svc.connect_timeout_sec, svc.statement_timeout_ms)
        cache = _cache(config, endpoints.redis_url)
        try:
            switch = KillSwitch(conn, cache)
            if args.action == "activate":
                state = switch.activate(args.reason, args.by)
            elif args.action == "deactivate":
                state = switch.deactivate(args.reason, args.by)
            else:
                state = switch.status()
        finally:
            conn.close()
            if cache is not None:
                cache.close()
    if getattr(args, "json", False):
        print(json.dumps(state.to_json()))
    else:
        print(f"kill switch: {state.describe()}")
    if cache is None:
        print(
            "arbitrage: note: redis unreachable or invalid, its kill switch copy was not refreshed",
            file=sys.stderr,
        )
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from arbitrage.ops.preflight import run_preflight
    from arbitrage.ops.run_gate import preflight_context
    from arbitrage.recovery import recover_at_start

    with _endpoints(args, {"run.mode": args.mode}) as (config, endpoints):
        try:
            _ensure_schema(config, endpoints.postgres_dsn)
        except LedgerUnavailable:
            pass
        else:
            recover_at_start(config, endpoints.postgres_dsn)
        context = preflight_context(config, endpoints, None, MIN_FREE_DISK_MB, probe_market=True)
        report = run_preflight(context)
    for check in report.checks:
        print(check.line())
    if args.output is not None:
        report.write(args.output)
    refusal = report.refusal()
    if refusal is not None:
        print(f"arbitrage: {refusal}", file=sys.stderr)
        return 1
    print(f"preflight: PASS ({len(report.checks)} checks, mode {report.mode})")
    return 0


def kill_switch_command(args: argparse.Namespace) -> int:
    """`arbitrage kill-switch ...`, with expected failures as one line and exit 1."""
    return _guarded(_kill_switch)(args)


def preflight_command(args: argparse.Namespace) -> int:
    """`arbitrage preflight`, with expected failures as one line and exit 1."""
    return _guarded(_preflight)(args)
