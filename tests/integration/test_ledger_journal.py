"""The ledger against a real PostgreSQL that drops and freezes its connection: nothing acknowledged
is lost, nothing unacknowledged is forgotten, and a replay adds each record exactly once.

Outcomes are read from PostgreSQL and from the journal file, never from the ledger's counters
alone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arbitrage.config import AppConfig, RunConfig
from arbitrage.journal import LedgerJournal, pending_markers, read_journal
from arbitrage.journal_replay import replay_pending_journals
from arbitrage.ledger import APPLICATION_NAME, Ledger, LegRow, connect
from arbitrage.services import ServiceEndpoints
from tests.support.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn(server: ServiceEndpoints) -> str:
    return fresh_database(server.postgres_dsn, "lj")


def leg(run_id: str, number: int, kind: str = "entry") -> LegRow:
    return LegRow(
        run_id=run_id, trade_id=f"T{number:06d}", leg=kind, correlation_id=f"{run_id}:T{number:06d}",
        symbol="BTC", direction="upbit_rich", qty=0.001, upbit_side="sell", upbit_vwap_krw=140_000_000.0,
        upbit_fee_krw=70.0, binance_side="buy", binance_vwap_usdt=98_000.0, binance_fee_usdt=0.098,
        krw_per_usdt=1380.0, premium_net_pct=2.5, pnl_krw=None, pnl_usd=None, reason="threshold", tick=number,
    )  # fmt: skip


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connect(dsn, 5.0, 5000) as conn:
        return conn.execute(sql, params).fetchall()


def ledger_backends(dsn: str) -> list[int]:
    return [
        pid
        for (pid,) in rows(
            dsn,
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()"
            " AND pid <> pg_backend_pid()",
            APPLICATION_NAME,
        )
    ]


@contextlib.contextmanager
def frozen_ledger_backends(dsn: str) -> Iterator[list[int]]:
    """SIGSTOP every engine backend of `dsn` (a connection the ledger just closed can linger a moment
    in pg_stat_activity, and freezing that one alone would leave the live one answering), then
    SIGCONT them."""
    frozen = ledger_backends(dsn)
    assert frozen, "no ledger backend to freeze"
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield frozen
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def journaled(dsn: str, tmp_path: Path) -> Iterator[tuple[Ledger, LedgerJournal]]:
    ledger = Ledger(dsn, connect_timeout_sec=2.0, statement_timeout_ms=1000)
    ledger.open()
    evidence = tmp_path / "run_a"
    evidence.mkdir()
    journal = LedgerJournal(evidence, tmp_path, "run_a")
    ledger.attach_journal(journal)
    yield ledger, journal
    ledger.close()
    journal.close()


@pytest.mark.allow_log("WARNING", "not acknowledged", count=1)
def test_a_killed_connection_loses_no_leg(dsn: str, journaled: tuple[Ledger, LedgerJournal]) -> None:
    ledger, journal = journaled
    assert ledger.record_leg(leg("run_a", 1))
    with connect(dsn, 5.0, 5000) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database() AND pid <> pg_backend_pid()",
            (APPLICATION_NAME,),
        ).fetchone()
    assert killed == (1,)
    acknowledged = ledger.record_leg(leg("run_a", 1, "exit"))
    ledger.record_leg(leg("run_a", 2))  # acknowledged now or queued behind the pending exit leg
    assert ledger.drain(10.0) == 0
    legs = rows(dsn, "SELECT trade_id, leg FROM trade_legs WHERE run_id = 'run_a' ORDER BY trade_id, leg")
    assert legs == [("T000001", "entry"), ("T000001", "exit"), ("T000002", "entry")]
    assert ledger.db_inserts_ok == 3
    assert acknowledged is False
    assert ledger.reconnects == 1
    assert [r["row"]["trade_id"] for r in read_journal(journal.path) if r["op"] == "leg"] == [
        "T000001", "T000001", "T000002",
    ]  # fmt: skip


@pytest.mark.allow_log("WARNING", r"not acknowledged \(no answer from PostgreSQL within 1\.5s", count=1)
def test_a_frozen_backend_cannot_hold_a_write_and_the_record_stays_journaled(
    dsn: str, journaled: tuple[Ledger, LedgerJournal]
) -> None:
    ledger, journal = journaled
    assert ledger.record_leg(leg("run_a", 1))
    with frozen_ledger_backends(dsn):
        acknowledged = ledger.record_leg(leg("run_a", 1, "exit"))
        pending_while_frozen = ledger.pending_count
    assert acknowledged is False
    assert pending_while_frozen == 1
    assert ledger.drain(15.0) == 0
    assert rows(dsn, "SELECT count(*) FROM trade_legs WHERE run_id = 'run_a' AND leg = 'exit'") == [(1,)]
    synced = [r for r in read_journal(journal.path) if r["op"] == "leg" and r["row"]["leg"] == "exit"]
    assert len(synced) == 1


@pytest.mark.allow_log("ERROR", r"event PONG failed: no answer from PostgreSQL within 0\.2s", count=1)
def test_stop_request_shortens_the_wait_on_a_frozen_backend(dsn: str, tmp_path: Path) -> None:
    ledger = Ledger(dsn, connect_timeout_sec=2.0, statement_timeout_ms=10_000)
    ledger.open()
    assert ledger.record_event("run_b", "PING", {})
    try:
        with frozen_ledger_backends(dsn):
            ledger.expedite(0.2)
            assert ledger.guard.bound_sec == pytest.approx(0.2)
            assert ledger.record_event("run_b", "PONG", {}) is False
    finally:
        ledger.close()
    assert ledger.event_inserts_failed == 1


def test_the_next_start_replays_a_journal_whose_writer_died(dsn: str, tmp_path: Path) -> None:
    """A child process journals records and dies (SIGKILL) before sending some of them; the next
    start's replay adds exactly the missing ones and says so in one line."""
    script = f"""
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {str(Path.cwd())!r})
from arbitrage.journal import LedgerJournal
from arbitrage.ledger import Ledger
from tests.integration.test_ledger_journal import leg
ledger = Ledger({dsn!r}); ledger.open()
evidence = Path({str(tmp_path)!r}) / "run_c"; evidence.mkdir()
journal = LedgerJournal(evidence, Path({str(tmp_path)!r}), "run_c")
ledger.attach_journal(journal)
assert ledger.record_leg(leg("run_c", 1))
ledger.record_run_end("run_c", "ended", "DURATION_REACHED", 0, 1, __import__("datetime").datetime.now())
journal.append("leg", {{"run_id": "run_c", "row": leg("run_c", 1, "exit").fields()}})
event = {{"run_id": "run_c", "event_type": "TRADE_CLOSE", "payload": {{}}, "correlation_id": None}}
journal.append("event", event)
os.kill(os.getpid(), signal.SIGKILL)
"""
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert [m.run_id for m in pending_markers(tmp_path)] == ["run_c"]
    config = AppConfig(run=RunConfig(evidence_root=tmp_path))

    lines = replay_pending_journals(config, dsn)
    again = replay_pending_journals(config, dsn)

    assert lines == ["replayed the ledger journal of run run_c: 2 of 4 records were missing from PostgreSQL"]
    assert again == []
    assert pending_markers(tmp_path) == []
    assert rows(dsn, "SELECT leg FROM trade_legs WHERE run_id = 'run_c' ORDER BY leg") == [
        ("entry",),
        ("exit",),
    ]
    events = rows(dsn, "SELECT event_type, payload FROM event_log WHERE run_id = 'run_c' ORDER BY id")
    assert [e[0] for e in events] == ["TRADE_CLOSE", "JOURNAL_REPLAYED"]
    assert events[1][1]["added"] == 2


def test_replay_leaves_a_living_writers_journal_alone(
    dsn: str, journaled: tuple[Ledger, LedgerJournal]
) -> None:
    _, journal = journaled
    journal.append("leg", {"run_id": "run_a", "row": leg("run_a", 9).fields()})
    root = journal.path.parent.parent
    assert replay_pending_journals(AppConfig(run=RunConfig(evidence_root=root)), dsn) == []
    assert [m.run_id for m in pending_markers(root)] == ["run_a"]
    assert rows(dsn, "SELECT count(*) FROM trade_legs WHERE run_id = 'run_a'") == [(0,)]


def test_an_unreachable_database_keeps_the_journal_pending(tmp_path: Path, dsn: str) -> None:
    evidence = tmp_path / "run_d"
    evidence.mkdir()
    marker = tmp_path / ".ledger_pending" / "run_d.json"
    journal = LedgerJournal(evidence, tmp_path, "run_d")
    journal.append("leg", {"run_id": "run_d", "row": leg("run_d", 1).fields()})
    journal.close()
    data = json.loads(marker.read_text())
    data["owner"]["pid"] = 2**22 + 7  # above pid_max's default: no such process
    marker.write_text(json.dumps(data))
    dead = "host=127.0.0.1 port=1 dbname=nothing connect_timeout=2"

    lines = replay_pending_journals(AppConfig(run=RunConfig(evidence_root=tmp_path)), dead)

    assert len(lines) == 1
    assert lines[0].startswith(
        "ledger journal of run run_d still pending: postgres unreachable at 127.0.0.1:1"
    )
    assert marker.exists()
    assert replay_pending_journals(AppConfig(run=RunConfig(evidence_root=tmp_path)), dsn) == [
        "replayed the ledger journal of run run_d: 1 of 1 records were missing from PostgreSQL"
    ]
    assert not marker.exists()


def test_psycopg_sees_a_cut_connection_as_broken(dsn: str) -> None:
    """The deadline's mechanism itself: shutting the socket down fails a blocked call at once."""
    from arbitrage.pg_deadline import cut_connection

    with connect(dsn, 5.0, 5000) as conn:
        cut_connection(conn)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        assert conn.broken
