"""What `arbitrage reconcile` does once parsed: load the run, ask the venues, compare, record.

The report is written as `reconciliation.json` in the run's evidence directory, sealed as an
addendum (`reconciliation.seal.json`; the manifest is untouched), and summarized in a
`RECONCILIATION` event_log row of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ccxt
from psycopg.types.json import Jsonb

from arbitrage.config import AppConfig, ConfigError, load, with_state_dirs
from arbitrage.ledger import Ledger, LedgerUnavailable, connect, first_line
from arbitrage.ops.live_arm import LiveKeys
from arbitrage.reconcile.compare import reconcile
from arbitrage.reconcile.ledger_side import RunNotFound, latest_live_run, load_run
from arbitrage.reconcile.venues import fetch_venues
from arbitrage.services import EmbeddedServices, ServiceStartError
from arbitrage.sources import universe
from evidence import names
from evidence.addendum import write_addendum
from evidence.ledger_tables import EVENT_LOG

EVENT = "RECONCILIATION"
SHOWN_PROBLEMS = 20
VENUE_TIMEOUT_SEC = 10.0


class ReconcileError(Exception):
    """An expected failure: the message is the operator's one line."""


def _reported_pnl(evidence_dir: Path) -> float | None:
    try:
        kpi = json.loads((evidence_dir / names.KPI).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = kpi.get("net_pnl_usd") if isinstance(kpi, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _record(dsn: str, run_id: str, report: dict[str, Any], written: Path | None) -> None:
    payload = {
        "ok": report["ok"],
        "problems": len(report["problems"]),
        "first_problems": report["problems"][:SHOWN_PROBLEMS],
        "file": None if written is None else str(written),
        "pnl": report["pnl"],
    }
    with connect(dsn, 5.0, 5000) as conn:
        conn.execute(
            f"INSERT INTO {EVENT_LOG} (run_id, event_type, payload) VALUES (%s, %s, %s)",
            (run_id, EVENT, Jsonb(payload)),
        )


def _reconcile(args: argparse.Namespace, config: AppConfig, dsn: str) -> int:
    try:
        keys = LiveKeys.from_env(os.environ)
    except ValueError as exc:
        raise ReconcileError(f"reconcile needs the live keys: {exc}") from None
    run_id = args.run or latest_live_run(dsn)
    run = load_run(dsn, run_id)
    symbols = set(universe(config)) | {leg["symbol"] for leg in run.legs}
    symbols |= {str(ids["symbol"]) for ids in run.order_ids.values() if ids.get("symbol")}
    since_ms = int(run.started_at.timestamp() * 1000) - 1000
    url = config.run.exchange_url
    try:
        venues = fetch_venues(keys, url, symbols, since_ms, VENUE_TIMEOUT_SEC)
    except ccxt.BaseError as exc:
        raise ReconcileError(
            f"venue query failed ({url or 'the real venues'}): {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from None
    evidence_dir = config.run.evidence_root / run_id
    report = reconcile(run, venues, _reported_pnl(evidence_dir))
    report.update(
        reconciled_at=datetime.now(UTC).isoformat(), exchange_url=url, evidence_dir=str(evidence_dir)
    )
    written: Path | None = None
    if (evidence_dir / names.MANIFEST).is_file():
        written = write_addendum(evidence_dir, names.RECONCILIATION, names.RECONCILIATION_SEAL, report)
    else:
        report["problems"].append(
            f"evidence directory {evidence_dir} has no manifest: report not written there"
        )
        report["ok"] = False
    _record(dsn, run_id, report, written)
    for venue, summary in report["venues"].items():
        print(
            f"{venue}: {summary['matched']} orders matched, "
            f"{len(summary['missing_in_ledger'])} missing in the ledger, "
            f"{len(summary['open_orders'])} open orders"
        )
    for sent in report["order_trail"]:
        found = sent["on_venue"]
        fate = f"on the venue as order {found}" if found else "not on the venue: nothing was booked"
        print(f"order trail: {sent['order']}: {fate}")
    for problem in report["problems"]:
        print(f"problem: {problem}")
    verdict = "PASS" if report["ok"] else f"FAIL ({len(report['problems'])} problems)"
    where = written if written is not None else "not written"
    print(f"reconcile: {verdict} run {run_id}, {len(report['trades'])} trades; report {where}", flush=True)
    return 0 if report["ok"] else 1


def reconcile_command(args: argparse.Namespace) -> int:
    """`arbitrage reconcile`, with expected failures as one `arbitrage: ...` line and exit 1."""
    cli: dict[str, object] = {
        "services.postgres_dsn": args.postgres_dsn,
        "services.redis_url": args.redis_url,
        "run.exchange_url": args.exchange_url,
        "run.evidence_root": args.evidence_root,
    }
    services: EmbeddedServices | None = None
    try:
        config = with_state_dirs(load(args.config, os.environ, cli)).config
        svc = config.services
        services = EmbeddedServices(svc.data_dir)
        endpoints = services.resolve(
            svc.postgres_dsn.get_secret_value() if svc.postgres_dsn else None,
            svc.redis_url.get_secret_value() if svc.redis_url else None,
        )
        ledger = Ledger(endpoints.postgres_dsn, svc.connect_timeout_sec, svc.statement_timeout_ms)
        ledger.open()
        ledger.close()
        return _reconcile(args, config, endpoints.postgres_dsn)
    except (ConfigError, ServiceStartError, LedgerUnavailable, RunNotFound, ReconcileError) as exc:
        print(f"arbitrage: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"arbitrage: reconcile: {first_line(exc)}", file=sys.stderr, flush=True)
        return 1
    finally:
        if services is not None:
            services.stop()
