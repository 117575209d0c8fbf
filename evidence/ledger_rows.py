"""Independent recount of a run's ledger rows in PostgreSQL.

The DB invariant is only worth something when the checker counts the rows itself instead of
trusting the engine's own `db_inserts_ok`. The table name is the one the engine's schema creates
(`evidence.ledger_tables`); the column names are part of the same contract.
"""

from __future__ import annotations

import psycopg

from evidence.ledger_rule import LegCounts
from evidence.ledger_tables import TRADE_LEGS


def count_trade_legs(dsn: str, run_id: str, connect_timeout_sec: int = 5) -> int:
    """Rows in `trade_legs` for `run_id` (entry and exit legs). Raises psycopg.Error when unreachable."""
    with (
        psycopg.connect(dsn, connect_timeout=connect_timeout_sec, autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(f"SELECT count(*) FROM {TRADE_LEGS} WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
    return int(row[0]) if row is not None else 0


def count_legs(dsn: str, run_id: str, connect_timeout_sec: int = 5) -> LegCounts:
    """The run's entry and exit legs counted in PostgreSQL, for `evidence.ledger_rule.check_ledger`."""
    counts = count_legs_by_kind(dsn, run_id, connect_timeout_sec)
    return LegCounts(counts["entry"], counts["exit"])


def count_legs_by_kind(dsn: str, run_id: str, connect_timeout_sec: int = 5) -> dict[str, int]:
    """{'entry': n, 'exit': m} for `run_id`: a closed trade has one of each."""
    with (
        psycopg.connect(dsn, connect_timeout=connect_timeout_sec, autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(f"SELECT leg, count(*) FROM {TRADE_LEGS} WHERE run_id = %s GROUP BY leg", (run_id,))
        counts = {str(leg): int(n) for leg, n in cur.fetchall()}
    return {"entry": counts.get("entry", 0), "exit": counts.get("exit", 0)}
