"""Builders for a small, valid evidence directory, for tests that need real evidence on disk.

Everything is written through :mod:`evidence.writer`, so the files are exactly what the engine
would produce: they pass the schemas and the manifest digests match. Tests break one thing at a
time via the per-file overrides (shallow, top-level; use ``REMOVE`` to drop a key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST, SCHEMA_VERSION
from evidence.reader import read_json
from evidence.writer import JsonlAppender, atomic_write_json, file_digest

RUN_ID: Final = "smoke_20250101T000000Z_a1b2c3"
STARTED_EPOCH: Final = 1_735_689_600.0
INTERVAL_SECONDS: Final = 10.0
BEATS: Final = 6
CLOSED_TRADES: Final = 3
REMOVE: Final = object()
"""Override value that deletes the key instead of setting it."""


def iso(epoch: float) -> str:
    """ISO-8601 UTC timestamp for an epoch, in the form the engine writes."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _apply(base: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    for key, value in (overrides or {}).items():
        if value is REMOVE:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def ended_epoch(beats: int = BEATS, interval_seconds: float = INTERVAL_SECONDS) -> float:
    """End of the synthetic run: one interval after the last regular beat."""
    return STARTED_EPOCH + (beats + 1) * interval_seconds


def make_heartbeats(
    beats: int = BEATS, interval_seconds: float = INTERVAL_SECONDS, closed_trades: int = CLOSED_TRADES
) -> list[dict[str, Any]]:
    """A start line, ``beats`` regular beats one interval apart, and a stop line at the run end."""
    epochs = [STARTED_EPOCH + i * interval_seconds for i in range(beats + 2)]
    events = ["start", *["beat"] * beats, "stop"]
    lines: list[dict[str, Any]] = []
    for seq, (epoch, event) in enumerate(zip(epochs, events, strict=True)):
        trades = closed_trades if event == "stop" else 0
        lines.append(
            {
                "timestamp": iso(epoch),
                "epoch_time": int(epoch),
                "epoch_time_precise": epoch,
                "seq": seq,
                "event": event,
                "kpi": {
                    "closed_trades": trades,
                    "open_positions": 0,
                    "opportunities_generated": trades,
                    "wins": trades,
                    "losses": 0,
                    "net_pnl_krw": 1500.0 * trades,
                    "net_pnl_usd": 1.1 * trades,
                    "db_inserts_ok": 2 * trades,
                    "db_inserts_failed": 0,
                },
                "guards": {"peak_pnl": 1500.0 * trades, "drawdown_pct": 0.0, "consecutive_losses": 0},
                "last_loop_ts": None if event == "start" else epoch - 0.5,
                "loop_count": seq * 10,
                "rss_mb": 85.5,
                "watchdog": "OK",
            }
        )
    return lines


def make_kpi(
    overrides: Mapping[str, Any] | None = None, closed_trades: int = CLOSED_TRADES
) -> dict[str, Any]:
    """A schema-valid ``kpi.json`` document."""
    kpi: dict[str, Any] = {
        "run_id": RUN_ID,
        "closed_trades": closed_trades,
        "wins": closed_trades,
        "losses": 0,
        "open_positions": 0,
        "opportunities_generated": closed_trades,
        "loop_count": 70,
        "net_pnl_krw": 1500.0 * closed_trades,
        "net_pnl_usd": 1.1 * closed_trades,
        "db_counts": {"db_inserts_ok": 2 * closed_trades, "db_inserts_failed": 0},
        "loop_latency_ms": {"p50": 1.5, "p95": 4.0, "p99": 7.25, "max": 12.0},
        "market_errors": {"upbit": 0, "binance": 1},
        "rejected_books": {"stale": 2},
        "leg_unwinds": 0,
        "rejected_orders": {},
        "guards": None,
        "alerts": {
            "notifier_available": False, "channel": "telegram", "sent_count": 0, "dlq_count": 0,
            "retry_count": 0, "disabled_count": 2, "pending": 0, "record_failures": 0,
        },
        "ledger": {
            "entry_legs_ok": closed_trades,
            "exit_legs_ok": closed_trades,
            "journal_pending": 0,
            "legs_pending": 0,
        },
        "residual": {
            "trades": closed_trades, "total_abs_usd": 0.0, "largest_abs_usd": 0.0, "abs_qty_by_symbol": {},
            "entry_notional_usd": 200.0 * closed_trades, "max_pct_of_notional": 2.0,
            "bound_usd": 4.0 * closed_trades,
        },
    }  # fmt: skip
    return _apply(kpi, overrides)


def _invariant(name: str, observed: float | str, limit: float | str, detail: str) -> dict[str, Any]:
    return {
        "name": name,
        "applicable": True,
        "passed": True,
        "observed": observed,
        "limit": limit,
        "detail": detail,
    }


def make_chain_summary(
    overrides: Mapping[str, Any] | None = None,
    beats: int = BEATS,
    interval_seconds: float = INTERVAL_SECONDS,
    closed_trades: int = CLOSED_TRADES,
) -> dict[str, Any]:
    """A schema-valid ``chain_summary.json`` for a tick-bounded run with all invariants passing."""
    ended = ended_epoch(beats, interval_seconds)
    summary: dict[str, Any] = {
        "run_id": RUN_ID,
        "duration_seconds": ended - STARTED_EPOCH,
        "expected_duration_seconds": None,
        "run_started_epoch": STARTED_EPOCH,
        "run_ended_epoch": ended,
        "heartbeat_interval_seconds": interval_seconds,
        "closed_trades": closed_trades,
        "wins": closed_trades,
        "losses": 0,
        "opportunities_generated": closed_trades,
        "net_pnl": {"krw": 1500.0 * closed_trades, "usd": 1.1 * closed_trades},
        "stop_reason": "DURATION_REACHED",
        "exit_code": 0,
        "warnings_count": 0,
        "warnings": [],
        "invariants": {
            "wallclock": {
                "name": "wallclock",
                "applicable": False,
                "passed": None,
                "observed": None,
                "limit": None,
                "detail": "not applicable: run was tick-bounded",
            },
            "heartbeat_density": _invariant(
                "heartbeat_density", interval_seconds, interval_seconds + 5, "ok"
            ),
            "db": _invariant("db", 0, 2, "ok"),
            "completeness": _invariant("completeness", "4/4 files ok", "4/4", "ok"),
        },
    }
    return _apply(summary, overrides)


def make_manifest(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A schema-valid final ``manifest.json`` with an empty ``files`` map (see ``make_evidence_dir``)."""
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": RUN_ID,
        "phase": "smoke",
        "mode": "paper",
        "started_at": iso(STARTED_EPOCH),
        "ended_at": iso(ended_epoch()),
        "duration_minutes": None,
        "expected_duration_seconds": None,
        "heartbeat_interval_seconds": INTERVAL_SECONDS,
        "ticks": 70,
        "seed": 42,
        "market_source": "replay",
        "git_sha": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": False,
        "config": {"exchanges": ["upbit", "binance"], "api_key": "***"},
        "config_hash": "ab" * 32,
        "versions": {"python": "3.11.7", "arbitrage": "0.1.0"},
        "pid": 4242,
        "status": "ended",
        "files": {},
    }
    return _apply(manifest, overrides)


def refresh_manifest_hashes(evidence_dir: Path) -> None:
    """Re-digest every non-manifest minimum-set file into the manifest, after a deliberate edit."""
    manifest = read_json(evidence_dir / MANIFEST)
    manifest["files"] = {
        name: file_digest(evidence_dir / name).to_json()
        for name in (CHAIN_SUMMARY, HEARTBEAT, KPI)
        if (evidence_dir / name).is_file()
    }
    atomic_write_json(evidence_dir / MANIFEST, manifest)


def make_evidence_dir(
    path: Path,
    *,
    manifest: Mapping[str, Any] | None = None,
    chain_summary: Mapping[str, Any] | None = None,
    kpi: Mapping[str, Any] | None = None,
    heartbeats: Sequence[Mapping[str, Any]] | None = None,
    beats: int = BEATS,
    interval_seconds: float = INTERVAL_SECONDS,
    closed_trades: int = CLOSED_TRADES,
) -> Path:
    """Write a complete minimum evidence set into ``path`` (created if needed) and return it.

    ``manifest``/``chain_summary``/``kpi`` are top-level overrides; ``heartbeats`` replaces the
    generated lines. The manifest is written last with the real digests of the other three files
    unless the ``manifest`` override supplies its own ``files``.
    """
    path.mkdir(parents=True, exist_ok=True)
    digests = {
        KPI: atomic_write_json(path / KPI, make_kpi(kpi, closed_trades)),
        CHAIN_SUMMARY: atomic_write_json(
            path / CHAIN_SUMMARY, make_chain_summary(chain_summary, beats, interval_seconds, closed_trades)
        ),
    }
    lines = heartbeats if heartbeats is not None else make_heartbeats(beats, interval_seconds, closed_trades)
    with JsonlAppender(path / HEARTBEAT) as appender:
        for line in lines:
            appender.append(line)
    digests[HEARTBEAT] = file_digest(path / HEARTBEAT)
    files = {name: digest.to_json() for name, digest in digests.items()}
    expected = (chain_summary or {}).get("expected_duration_seconds")
    typed = {
        "heartbeat_interval_seconds": interval_seconds,
        "expected_duration_seconds": expected if isinstance(expected, int | float) else None,
        "duration_minutes": expected / 60.0 if isinstance(expected, int | float) and expected > 0 else None,
    }
    atomic_write_json(path / MANIFEST, make_manifest({"files": files, **typed, **(manifest or {})}))
    return path
