"""Evidence file names shared by the engine (writer) and the checkers (readers).

Keeping the names in one module means a rename cannot silently split the contract.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1
"""Version of the evidence contract written into every manifest."""

MANIFEST: Final = "manifest.json"
CHAIN_SUMMARY: Final = "chain_summary.json"
HEARTBEAT: Final = "heartbeat.jsonl"
KPI: Final = "kpi.json"

MINIMUM_SET: Final[tuple[str, ...]] = (MANIFEST, CHAIN_SUMMARY, HEARTBEAT, KPI)
"""Files every run must leave behind; the completeness invariant checks exactly these."""

STOP_REASON_SNAPSHOT: Final = "stop_reason_snapshot.json"
DAILY_REPORT: Final = "daily_report.json"
DECISION_TRACE: Final = "decision_trace.json"
MONITOR_SUMMARY: Final = "monitor_summary.json"
METRICS_SNAPSHOT: Final = "metrics_snapshot.prom"
ANALYSIS_RESULT: Final = "analysis_result.json"
REPORT_HTML: Final = "report.html"
ENGINE_LOG: Final = "engine.log"
LEDGER_JOURNAL: Final = "ledger_journal.jsonl"
RECONCILIATION: Final = "reconciliation.json"
RECONCILIATION_SEAL: Final = "reconciliation.seal.json"
"""`arbitrage reconcile`'s report, written after the run, and its own seal (see `evidence.addendum`)."""


NEVER_SEALED: Final = frozenset(
    {MANIFEST, ENGINE_LOG, MONITOR_SUMMARY, ANALYSIS_RESULT, REPORT_HTML, RECONCILIATION, RECONCILIATION_SEAL}
)
"""Files the manifest's seal never covers: the manifest itself, the log still being appended to
as the process exits, and what the harness, ``verify`` and ``reconcile`` write into the directory
afterwards (an addendum carries its own seal, leaving the manifest's untouched)."""
