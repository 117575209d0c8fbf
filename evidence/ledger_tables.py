"""The ledger's table names: the contract between the engine's schema, its writers and every checker.

Each name is spelled once, here; the schema's migrations, the engine's SQL and the checkers that
recount rows in PostgreSQL (`evidence.ledger_rows`, the chaos gate) all build their statements from
these constants. It lives in `evidence`, which imports none of the other packages, so that every one
of them may import it.
"""

from __future__ import annotations

from typing import Final

RUNS: Final = "runs"
"""One row per engine run: its identity, owner process, status and schema version."""
TRADE_LEGS: Final = "trade_legs"
"""One row per trade leg (entry, exit), unique on (run_id, trade_id, leg)."""
EVENT_LOG: Final = "event_log"
"""The append-only audit log; journaled events are unique on `event_uid`."""
SYSTEM_STATE: Final = "system_state"
"""The append-only kill switch rows (the latest wins)."""
ALERT_DELIVERIES: Final = "alert_deliveries"
"""One row per alert delivery attempt."""
LIVE_ARMS: Final = "live_arms"
"""One row per `LIVE_ARM_AT` claimed by a live run."""
SCHEMA_VERSION: Final = "schema_version"
"""One row per schema migration applied to the database."""

APPEND_ONLY: Final = (EVENT_LOG, SYSTEM_STATE)
"""Tables whose rows PostgreSQL itself refuses to UPDATE, DELETE or TRUNCATE."""
LEDGER_TABLES: Final = (RUNS, TRADE_LEGS, EVENT_LOG, SYSTEM_STATE, ALERT_DELIVERIES, LIVE_ARMS)
"""Every table the engine writes (the migrations' record aside)."""
