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

from arbitrage.journal import encode_batch
from evidence.ledger_tables import EVENT_LOG, RUNS, TRADE_LEGS

if TYPE_CHECKING:
    from arbitrage.execution import PairFill

RUN_START = "run_start"
LEG = "leg"
EVENT = "event"
RUN_END = "run_end"

INSERT_LEG_SQL = f"""
INSERT INTO {TRADE_LEGS} (run_id, trade_id, leg, correlation_id, symbol, direction, qty,
    upbit_side, upbit_vwap_krw, upbit_fee_krw, binance_side, binance_vwap_usdt, binance_fee_usdt,
    krw_per_usdt, premium_net_pct, pnl_krw, pnl_usd, reason, tick, upbit_qty)
VALUES (%(run_id)s, %(trade_id)s, %(leg)s, %(correlation_id)s, %(symbol)s, %(direction)s, %(qty)s,
    %(upbit_side)s, %(upbit_vwap_krw)s, %(upbit_fee_krw)s, %(binance_side)s, %(binance_vwap_usdt)s,
    %(binance_fee_usdt)s, %(krw_per_usdt)s, %(premium_net_pct)s, %(pnl_krw)s, %(pnl_usd)s, %(reason)s,
    %(tick)s, %(upbit_qty)s)
ON CONFLICT (run_id, trade_id, leg) DO NOTHING
"""

INSERT_EVENT_SQL = f"""
INSERT INTO {EVENT_LOG} (run_id, event_type, correlation_id, payload, event_uid)
VALUES (%(run_id)s, %(event_type)s, %(correlation_id)s, %(payload)s, %(event_uid)s)
ON CONFLICT (event_uid) DO NOTHING
"""

INSERT_RUN_SQL = f"""
INSERT INTO {RUNS} (run_id, phase, mode, started_at, status, seed, git_sha, config_hash, schema_version,
    pid, host, process_started)
VALUES (%(run_id)s, %(phase)s, %(mode)s, %(started_at)s, 'running', %(seed)s, %(git_sha)s, %(config_hash)s,
    %(schema_version)s, %(pid)s, %(host)s, %(process_started)s)
ON CONFLICT (run_id) DO NOTHING
"""

FINISH_RUN_SQL = f"""
UPDATE {RUNS} SET status=%(status)s, stop_reason=%(stop_reason)s, exit_code=%(exit_code)s,
    closed_trades=%(closed_trades)s, ended_at=%(ended_at)s
WHERE run_id=%(run_id)s AND status='running'
"""
"""A final status is never overwritten: a replayed duplicate, or a run already judged crashed,
changes nothing."""


@dataclass(frozen=True, slots=True)
class LegRow:
    """One trade leg as stored: `leg` is `entry` or `exit`.

    `qty` is the Binance leg's quantity; `upbit_qty` the Upbit leg's own (a live Upbit market buy
    spends KRW, so its quantity differs by the price it filled at). Their difference is the leg's
    hedge residual (`arbitrage.residual`); None in rows written before the column existed.
    """

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
    upbit_qty: float | None = None

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
            upbit_qty=fill.upbit.qty,
        )


LEG_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(LegRow))


def statement_of(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The idempotent statement that writes `record`, and its parameters."""
    op = record["op"]
    if op == LEG:
        return INSERT_LEG_SQL, {"upbit_qty": None, **record["row"], "run_id": record["run_id"]}
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


_SQL_TYPES = {"str": "text", "float": "float8", "int": "int4"}
_LEG_TYPES = {field.name: _SQL_TYPES[str(field.type).split(" |")[0]] for field in fields(LegRow)}
"""Each leg field as its parameter arrives from the single-row INSERT: a Python float is sent as
float8 and cast to numeric on insert, and the batch takes the same path to store the same value."""

_ROW_FIELDS = tuple(name for name in LEG_FIELDS if name != "run_id")

INSERT_BATCH_SQL = f"""
WITH batch AS (
    SELECT * FROM json_to_recordset(%s::json) AS r(op text, run_id text, "row" json, event_type text,
        correlation_id text, payload jsonb, uid text)
), legs AS (
    INSERT INTO {TRADE_LEGS} ({", ".join(LEG_FIELDS)})
    SELECT batch.run_id, {", ".join(f"leg.{name}" for name in _ROW_FIELDS)}
    FROM batch, json_to_record(batch."row")
        AS leg({", ".join(f"{name} {_LEG_TYPES[name]}" for name in _ROW_FIELDS)})
    WHERE batch.op = '{LEG}'
    ON CONFLICT (run_id, trade_id, leg) DO NOTHING
)
INSERT INTO {EVENT_LOG} (run_id, event_type, correlation_id, payload, event_uid)
SELECT run_id, event_type, correlation_id, coalesce(payload, '{{}}'::jsonb), uid
FROM batch WHERE op = '{EVENT}'
ON CONFLICT (event_uid) DO NOTHING
"""
"""Every leg and event of a batch from one JSON parameter: one fixed statement (psycopg caches and
prepares it), and the rows are built by PostgreSQL, not by the thread that sends them."""


def apply_batch(conn: psycopg.Connection[Any], records: list[dict[str, Any]]) -> None:
    """Write `records` idempotently: a run row first, then every leg and event in one statement
    (`INSERT_BATCH_SQL`), then the run's final update. The caller owns the transaction, so a batch
    is acknowledged whole or not at all.

    The legs and events go to PostgreSQL as the journal holds them, one JSON array joined from
    the lines the journal already wrote (`encode_batch`). A multi-row INSERT with a parameter per
    value spent 30-45 us of CPU per record, most of it in psycopg parsing a statement too long to
    cache, and encoding the records again held Python's GIL, which the tick thread needs, for
    4-8 ms per 500-record batch. A value JSON cannot carry (NaN) makes PostgreSQL refuse the
    batch; the writer then sends it a unit at a time through `apply_record`, which stores it as
    before.
    """
    rows = [record for record in records if record["op"] in (LEG, EVENT)]
    with conn.cursor() as cur:
        for record in records:
            if record["op"] == RUN_START:
                cur.execute(INSERT_RUN_SQL, record)
        if rows:
            cur.execute(INSERT_BATCH_SQL, (encode_batch(rows),))
        for record in records:
            if record["op"] == RUN_END:
                cur.execute(FINISH_RUN_SQL, record)


def describe_record(record: dict[str, Any]) -> str:
    """A record as an operator reads it: `leg <run>/<trade>/<leg>`, `event <type>`, `run_end <run>`."""
    op = record["op"]
    if op == LEG:
        row = record["row"]
        return f"leg {record['run_id']}/{row['trade_id']}/{row['leg']}"
    if op == EVENT:
        return f"event {record['event_type']}"
    return f"{op} {record.get('run_id')}"
