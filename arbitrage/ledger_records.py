"""Ledger records and the one idempotent way each is written to PostgreSQL.

A record is a plain dict, exactly as the journal holds it: `op` says what it is (`run_start`,
`leg`, `event`, `run_end`), `seq` numbers it within its journal and `uid` (journal run id and
seq) names it for good. `apply_record` writes it so that
writing it twice changes nothing: legs are unique on (run_id, trade_id, leg), journaled events
on `event_uid` (the record's uid), the run row on its key, and the final update is a plain SET.
The live ledger and the replay of a journal after a crash both go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from arbitrage.execution import PairFill

RUN_START = "run_start"
LEG = "leg"
EVENT = "event"
RUN_END = "run_end"

INSERT_LEG_SQL = """
INSERT INTO trade_legs (run_id, trade_id, leg, correlation_id, symbol, direction, qty,
    upbit_side, upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt,
    krw_per_usdt, premium_net_pct, pnl_krw, pnl_usd, reason, tick)
VALUES (%(run_id)s, %(trade_id)s, %(leg)s, %(correlation_id)s, %(symbol)s, %(direction)s, %(qty)s,
    %(upbit_side)s, %(upbit_vwap_krw)s, %(upbit_fee_krw)s, %(binance_side)s, %(binance_vwap_usdt)s,
    %(binance_fee_usdt)s, %(krw_per_usdt)s, %(premium_net_pct)s, %(pnl_krw)s, %(pnl_usd)s, %(reason)s,
    %(tick)s)
ON CONFLICT (run_id, trade_id, leg) DO NOTHING
"""

INSERT_EVENT_SQL = """
INSERT INTO event_log (run_id, event_type, correlation_id, payload, event_uid)
VALUES (%(run_id)s, %(event_type)s, %(correlation_id)s, %(payload)s, %(event_uid)s)
ON CONFLICT (event_uid) DO NOTHING
"""

INSERT_RUN_SQL = """
INSERT INTO runs (run_id, phase, mode, started_at, status, seed, git_sha, config_hash, schema_version,
    pid, host, process_started)
VALUES (%(run_id)s, %(phase)s, %(mode)s, %(started_at)s, 'running', %(seed)s, %(git_sha)s, %(config_hash)s,
    %(schema_version)s, %(pid)s, %(host)s, %(process_started)s)
ON CONFLICT (run_id) DO NOTHING
"""

FINISH_RUN_SQL = """
UPDATE runs SET status=%(status)s, stop_reason=%(stop_reason)s, exit_code=%(exit_code)s,
    closed_trades=%(closed_trades)s, ended_at=%(ended_at)s
WHERE run_id=%(run_id)s AND status='running'
"""
"""A final status is never overwritten: a replayed duplicate, or a run already judged crashed,
changes nothing."""


@dataclass(frozen=True, slots=True)
class LegRow:
    """One trade leg as stored: `leg` is `entry` or `exit`."""

    run_id: str
    trade_id: str
    leg: str
    correlation_id: str
    symbol: str
    direction: str
    qty: float
    upbit_side: str
    upbit_vwap_krw: float
    upbit_fee_krw: float
    binance_side: str
    binance_vwap_usdt: float
    binance_fee_usdt: float
    krw_per_usdt: float
    premium_net_pct: float
    pnl_krw: float | None
    pnl_usd: float | None
    reason: str
    tick: int

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LEG_FIELDS}

    @classmethod
    def of_fill(
        cls, run_id: str, trade_id: str, correlation_id: str, symbol: str, direction: str, leg: str,
        fill: PairFill, reason: str, tick: int, pnl: tuple[float, float] | None = None,
    ) -> LegRow:  # fmt: skip
        """The row for one leg of a position, from the fill of both its venues' orders."""
        quote = fill.quote
        return cls(
            run_id=run_id,
            trade_id=trade_id,
            leg=leg,
            correlation_id=correlation_id,
            symbol=symbol,
            direction=direction,
            qty=fill.binance.qty,
            upbit_side=fill.upbit.side,
            upbit_vwap_krw=fill.upbit.vwap,
            upbit_fee_krw=fill.upbit.fee,
            binance_side=fill.binance.side,
            binance_vwap_usdt=fill.binance.vwap,
            binance_fee_usdt=fill.binance.fee,
            krw_per_usdt=quote.krw_per_usdt,
            premium_net_pct=quote.net_pct,
            pnl_krw=None if pnl is None else pnl[0],
            pnl_usd=None if pnl is None else pnl[1],
            reason=reason,
            tick=tick,
        )


LEG_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(LegRow))


def statement_of(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The idempotent statement that writes `record`, and its parameters."""
    op = record["op"]
    if op == LEG:
        return INSERT_LEG_SQL, {**record["row"], "run_id": record["run_id"]}
    if op == EVENT:
        params = {
            "run_id": record["run_id"],
            "event_type": record["event_type"],
            "correlation_id": record.get("correlation_id"),
            "payload": Jsonb(record.get("payload") or {}),
            "event_uid": record.get("uid"),
        }
        return INSERT_EVENT_SQL, params
    if op == RUN_START:
        return INSERT_RUN_SQL, record
    if op == RUN_END:
        return FINISH_RUN_SQL, record
    raise ValueError(f"unknown ledger record op {op!r}")


def apply_record(conn: psycopg.Connection[Any], record: dict[str, Any]) -> int:
    """Write one record idempotently; returns the rows it added or changed (0 for a replayed duplicate)."""
    statement, params = statement_of(record)
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return max(cur.rowcount, 0)


BATCH_ORDER = (INSERT_RUN_SQL, INSERT_LEG_SQL, INSERT_EVENT_SQL, FINISH_RUN_SQL)
"""Within one transaction the statements run grouped in this order: a run row before what refers to
it, its final update last. Legs and events do not depend on each other."""


def apply_batch(conn: psycopg.Connection[Any], records: list[dict[str, Any]]) -> None:
    """Write `records` idempotently, one `executemany` per kind of statement; the caller owns the
    transaction, so a batch is acknowledged whole or not at all."""
    grouped: dict[str, list[dict[str, Any]]] = {statement: [] for statement in BATCH_ORDER}
    for record in records:
        statement, params = statement_of(record)
        grouped[statement].append(params)
    with conn.cursor() as cur:
        for statement, params_seq in grouped.items():
            if len(params_seq) == 1:
                cur.execute(statement, params_seq[0])
            elif params_seq:
                cur.executemany(statement, params_seq)


def describe_record(record: dict[str, Any]) -> str:
    """A record as an operator reads it: `leg <run>/<trade>/<leg>`, `event <type>`, `run_end <run>`."""
    op = record["op"]
    if op == LEG:
        row = record["row"]
        return f"leg {record['run_id']}/{row['trade_id']}/{row['leg']}"
    if op == EVENT:
        return f"event {record['event_type']}"
    return f"{op} {record.get('run_id')}"
