"""The ledger recount: one rule for what PostgreSQL must hold after a run.

The ledger promises one entry and one exit leg per closed trade, one entry leg per position the
run reports open, and that every leg PostgreSQL did not acknowledge is kept in the run's journal
(replayed by the next engine command). So the rows must be exactly ``2 x closed + open``, split
as entries ``closed + open`` and exits ``closed``, and they must be exactly what the engine
accounted for: acknowledged plus journaled. No tolerance: a lost leg must never hide in one.
The same rule judges the engine's own account at close-out (rows = the legs it saw
acknowledged) and the checkers' recount (rows counted in PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from evidence.documents import ChainSummary, Kpi
from evidence.invariants import DB, InvariantResult

DB_ROWS_PER_CLOSED_TRADE: Final = 2
"""One entry and one exit leg per closed trade."""
ENGINE_ACKNOWLEDGED: Final = "the engine's acknowledgements"
"""The ``source`` named when the rows are the legs PostgreSQL acknowledged to the engine."""


@dataclass(frozen=True)
class LegCounts:
    """Trade legs of one run: counted in PostgreSQL, or acknowledged to the engine."""

    entry: int
    exit: int

    @property
    def total(self) -> int:
        """All legs."""
        return self.entry + self.exit


@dataclass(frozen=True)
class LedgerClaims:
    """What the run's documents say the ledger holds."""

    closed_trades: int
    open_positions: int
    acknowledged: int
    journaled_legs: int

    @classmethod
    def from_documents(cls, kpi: Kpi, summary: ChainSummary | None = None) -> LedgerClaims:
        """Claims from ``kpi.json`` (closed trades from the chain summary when there is one)."""
        closed = summary.closed_trades if summary is not None else kpi.closed_trades
        journaled = kpi.ledger.legs_pending if kpi.ledger is not None else 0
        return cls(closed, kpi.open_position_count, kpi.db_counts.db_inserts_ok, journaled)

    @property
    def expected(self) -> LegCounts:
        """The legs a complete ledger holds for these claims."""
        return LegCounts(self.closed_trades + self.open_positions, self.closed_trades)


def check_ledger(rows: LegCounts, claims: LedgerClaims, *, source: str = "PostgreSQL") -> InvariantResult:
    """The DB invariant: ``rows`` (from ``source``) are exactly the legs the claims call for."""
    expected = claims.expected
    accounted = claims.acknowledged + claims.journaled_legs
    problems = []
    if rows.exit != expected.exit:
        problems.append(f"{rows.exit} exit legs for {claims.closed_trades} closed trades")
    if rows.entry != expected.entry:
        problems.append(
            f"{rows.entry} entry legs for {claims.closed_trades} closed trades"
            f" + {claims.open_positions} reported open"
        )
    if rows.total != accounted:
        problems.append(
            f"{rows.total} rows but the engine accounted for {claims.acknowledged} acknowledged"
            f" + {claims.journaled_legs} journaled ({rows.total - accounted:+d})"
        )
    if claims.journaled_legs and rows.total < expected.total:
        problems.append(f"{claims.journaled_legs} legs still only in the run's journal (not replayed yet)")
    difference = rows.total - expected.total
    opened = f" + {claims.open_positions} open" if claims.open_positions else ""
    detail = (
        f"{source} holds {rows.total} legs (entry {rows.entry}, exit {rows.exit}); expected "
        f"{expected.total} ({DB_ROWS_PER_CLOSED_TRADE} x {claims.closed_trades} closed{opened})"
    )
    if problems:
        detail += ": " + "; ".join(problems)
    limit = f"entry {expected.entry}, exit {expected.exit}, rows = {accounted} accounted"
    return InvariantResult(DB, True, not problems, difference, limit, detail)
