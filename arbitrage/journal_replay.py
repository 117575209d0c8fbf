"""The next engine command's duty: replay the ledger journals that runs left pending.

A run whose database was down at its end, or whose process died, leaves a marker under
`<evidence_root>/.ledger_pending/`. `run` and `preflight` (never `verify`, which only reads)
replay each journal whose owner process is gone, idempotently and whole, record a
JOURNAL_REPLAYED event, remove the marker, and tell the operator in one line. A journal that
cannot be replayed yet keeps its marker for the next command.
"""

from __future__ import annotations

import contextlib
import logging

import psycopg

from arbitrage.config import AppConfig
from arbitrage.journal import PendingMarker, pending_markers, read_journal
from arbitrage.ledger import RETRYABLE, connect, first_line
from arbitrage.ledger_records import EVENT, apply_record
from arbitrage.pg_deadline import DeadlineGuard
from evidence.reader import CorruptEvidenceError

log = logging.getLogger("arbitrage.journal_replay")


def _replay_one(
    marker: PendingMarker, dsn: str, connect_timeout_sec: float, statement_timeout_ms: int
) -> str | None:
    records = read_journal(marker.journal)
    conn = connect(dsn, connect_timeout_sec, statement_timeout_ms)
    guard = DeadlineGuard(statement_timeout_ms / 1000.0 + 0.5)
    try:
        added = 0
        for record in records:
            with guard.bounded(conn):
                added += 1 if apply_record(conn, record) else 0
        payload = {"records": len(records), "added": added, "journal": str(marker.journal)}
        summary = {
            "op": EVENT, "run_id": marker.run_id, "event_type": "JOURNAL_REPLAYED",
            "uid": f"{marker.run_id}:replayed", "correlation_id": None, "payload": payload,
        }  # fmt: skip
        with guard.bounded(conn):
            apply_record(conn, summary)
    finally:
        guard.close()
        with contextlib.suppress(Exception):
            conn.close()
    marker.path.unlink(missing_ok=True)
    line = (
        f"replayed the ledger journal of run {marker.run_id}: "
        f"{added} of {len(records)} records were missing from PostgreSQL"
    )
    if not added:
        log.debug("%s", line)
        return None
    return line


def replay_pending_journals(config: AppConfig, dsn: str) -> list[str]:
    """Replay every pending journal under the evidence root whose writer is gone; one operator
    line per journal that added records or could not be replayed (a journal PostgreSQL already
    holds whole is only logged).

    Never raises: a journal that cannot be read or replayed now is reported and kept.
    """
    svc = config.services
    lines = []
    for marker in pending_markers(config.run.evidence_root):
        if marker.owner.state() != "gone":
            continue
        try:
            line = _replay_one(marker, dsn, svc.connect_timeout_sec, svc.statement_timeout_ms)
        except FileNotFoundError:
            marker.path.unlink(missing_ok=True)
            lines.append(f"ledger journal of run {marker.run_id} is gone ({marker.journal}): marker removed")
        except (OSError, CorruptEvidenceError) as exc:
            lines.append(f"ledger journal of run {marker.run_id} unreadable, kept for later: {exc}")
        except (*RETRYABLE, psycopg.Error) as exc:
            lines.append(f"ledger journal of run {marker.run_id} still pending: {first_line(exc)}")
        else:
            if line is not None:
                lines.append(line)
    return lines
