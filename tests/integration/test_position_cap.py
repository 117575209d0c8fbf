"""A top50 run holds entries at `guards.max_open_positions` instead of tripping the guard.

The synthetic top50 market offers far more simultaneous entries than the cap (34-41 positions at
once when nothing holds them). The trader takes none while the cap is open: the run ends by its own
duration, the OPEN_POSITIONS guard never trips, the held entries are counted in kpi.json and traced
in decision_trace.json, and the ledger in PostgreSQL never shows more positions open than the cap.
"""

from __future__ import annotations

import json

import pytest

from arbitrage.ledger import connect
from evidence import names
from harness.engine import EngineLauncher

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CAP = 8
DURATION_SEC = 8
"""The cap is reached at the fifth tick and entries are held from then on (half-second ticks): eight
seconds hold several, and a slower machine's fewer ticks still reach it."""
AFTER_THE_LOOP = 2**31 - 1
"""Where the stop-time flatten's exits sort: after every tick, whatever book tick they record."""

MOST_OPEN_SQL = """
WITH moves AS (
    SELECT CASE WHEN leg = 'exit' AND reason IN ('flatten', 'guard') THEN %(after)s ELSE tick END AS at,
           CASE leg WHEN 'entry' THEN 1 ELSE -1 END AS delta
    FROM trade_legs WHERE run_id = %(run)s
), per_tick AS (
    SELECT at, sum(delta) AS delta FROM moves GROUP BY at
)
SELECT max(open), count(*) FROM (SELECT sum(delta) OVER (ORDER BY at) AS open FROM per_tick) AS running
"""
"""The most positions open at once, from the legs alone. Within a tick the trader exits before it
enters, so the count after each tick is the tick's highest."""


@pytest.mark.timeout(DURATION_SEC + 180)
def test_a_top50_run_holds_entries_at_the_cap_without_tripping_the_guard(
    engine: EngineLauncher, postgres_dsn: str
) -> None:
    run = engine(env={"ARB_GUARDS__MAX_OPEN_POSITIONS": str(CAP)})
    run.start(["--profile", "paper-phase3", "--duration", f"{DURATION_SEC}s", "--trace",
               "--heartbeat-interval", "5"])  # fmt: skip
    assert run.wait(timeout=DURATION_SEC + 120) == 0, run.describe()
    assert (run.evidence.manifest or {})["config"]["symbols"]["universe"] == "top50"
    summary = run.evidence.chain_summary or {}
    assert summary["stop_reason"] == "DURATION_REACHED", summary["stop_reason"]
    kpi = run.evidence.kpi or {}
    assert kpi["guards"] is None, kpi["guards"]
    held = kpi["entries_held_at_position_cap"]
    assert held > 0, "the market never offered more entries than the cap"
    assert run.evidence_dir is not None
    trace = json.loads((run.evidence_dir / names.DECISION_TRACE).read_text())
    assert trace["dropped"] == 0
    notes = [e for e in trace["entries"] if e["kind"] == "entry" and "(the cap): entry held" in e["reason"]]
    assert len(notes) == held and all(e["outcome"] == "rejected" for e in notes)
    with connect(postgres_dsn, 5.0, 5000) as conn:
        counted = conn.execute(MOST_OPEN_SQL, {"after": AFTER_THE_LOOP, "run": run.run_id}).fetchone()
        trips = conn.execute(
            "SELECT count(*) FROM event_log WHERE run_id = %s AND event_type = 'GUARD_TRIP'", (run.run_id,)
        ).fetchone()
    assert counted is not None
    most_open, ticks = counted
    assert ticks > 1 and most_open == CAP, (most_open, ticks)
    assert trips == (0,)
