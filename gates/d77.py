"""The facts verify hands to D77-4's criteria and KPI catalog, read from one evidence directory.

The rules and thresholds live in :mod:`evidence.criteria` and :mod:`evidence.kpi_catalog`; this
module only adds what the parsed bundle lacks (engine.log's text) and builds the facts.
"""

from __future__ import annotations

from pathlib import Path

from evidence import names
from evidence.reader import EvidenceBundle
from evidence.run_facts import RunFacts, facts_from_documents


def engine_log_text(evidence_dir: Path) -> str | None:
    """engine.log's text (undecodable bytes replaced), or None when the run left none."""
    try:
        return (evidence_dir / names.ENGINE_LOG).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def run_facts(evidence_dir: Path, bundle: EvidenceBundle) -> RunFacts:
    """The D77-4 facts of one evidence directory, from the documents verify already parsed."""
    return facts_from_documents(
        bundle.manifest, bundle.chain_summary, bundle.kpi, bundle.heartbeats, engine_log_text(evidence_dir)
    )
