"""The criteria `verify` checks on the raw evidence itself: the files, the heartbeat, the run's exit
and warnings, and the ledger recounted from PostgreSQL; each returns one `Criterion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import psycopg

from evidence import names
from evidence.completeness import CONTENT_KINDS, PRESENCE_KINDS, SEAL_KINDS, Problem, summarize
from evidence.conditional_rule import check_conditional
from evidence.documents import beat_epoch
from evidence.invariants import heartbeat_limit
from evidence.judge import judge_ledger, run_window
from evidence.ledger_rows import count_legs
from evidence.ledger_rule import LedgerClaims
from evidence.reader import EvidenceBundle
from gates.analysis import FAIL, NOT_CHECKED, PASS, Criterion, judged, unavailable
from gates.ledger_access import LedgerChoice, embedded_data_dir, open_ledger

_SHOWN_PROBLEMS: Final = 3


def _summarize(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    more = f" (+{len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
    return shown + more


def number(doc: Mapping[str, Any] | None, *path: str) -> float | None:
    """The number at `path` in a JSON document; None when absent or not a number."""
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


# -- evidence files --------------------------------------------------------------------------------
def manifest_status(bundle: EvidenceBundle) -> Criterion:
    """The manifest was sealed `ended`; `running` means the engine crashed before its flush."""
    if bundle.manifest is None:
        return unavailable("manifest_status", "ended", names.MANIFEST)
    status = bundle.manifest.get("status")
    if status == "ended":
        return Criterion("manifest_status", PASS, status, "ended", "the engine sealed its evidence")
    if status == "running":
        detail = "crash: manifest still says running, the engine never reached its final flush"
    else:
        detail = f"the engine sealed the run as {status!r}"
    return Criterion("manifest_status", FAIL, str(status), "ended", detail)


def files_present(problems: Sequence[Problem]) -> Criterion:
    """Every file of the minimum set is there and non-empty."""
    found = [p for p in problems if p.kind in PRESENCE_KINDS]
    total = len(names.MINIMUM_SET)
    observed = f"{total - len({p.file for p in found})}/{total}"
    detail = summarize(found) or "minimum set present, non-empty"
    return judged("files_present", not found, observed, f"{total}/{total}", detail)


def schema_valid(problems: Sequence[Problem], bundle: EvidenceBundle) -> Criterion:
    """Every present file of the minimum set parses and validates against its schema."""
    absent = {p.file for p in problems if p.kind in PRESENCE_KINDS}
    present = [n for n in names.MINIMUM_SET if n not in absent]
    found = [p for p in problems if p.kind in CONTENT_KINDS and p.file in present]
    observed = f"{len(present) - len({p.file for p in found})}/{len(present)}"
    torn = " (torn final heartbeat line dropped)" if bundle.heartbeat_torn_tail else ""
    detail = summarize(found) or f"all parse and validate{torn}"
    return judged("schema_valid", not found, observed, f"{len(present)}/{len(present)}", detail)


def sha256_match(problems: Sequence[Problem], bundle: EvidenceBundle) -> Criterion:
    """Every sealed file still matches the digest the manifest recorded for it."""
    found = [p for p in problems if p.kind in SEAL_KINDS]
    listed = (bundle.manifest or {}).get("files")
    sealed = [n for n in listed if n not in names.NEVER_SEALED] if isinstance(listed, dict) else []
    mismatched = {p.file for p in found if p.kind in ("sha256", "listed_missing")}
    observed = f"{len(sealed) - len(mismatched)}/{len(sealed)} sealed files match"
    detail = summarize(found) or "every sealed file matches its manifest digest"
    return judged("sha256_match", not found, observed, "all match", detail)


def conditional(evidence_dir: Path, bundle: EvidenceBundle) -> list[Criterion]:
    """One criterion per conditional file (OPS_PROTOCOL §5.2), judged by the rule the engine writes by."""
    return [
        Criterion(
            check.requirement.file.removesuffix(".json"),
            check.verdict,
            check.observed,
            check.limit,
            check.detail,
        )
        for check in check_conditional(evidence_dir, bundle.manifest, bundle.chain_summary)
    ]


# -- heartbeat ---------------------------------------------------------------------------------------
def heartbeat_lines(bundle: EvidenceBundle) -> Criterion:
    """heartbeat.jsonl starts with a start line and ends with a stop line."""
    events = [r.get("event") for r in bundle.heartbeats]
    limit = ">= 2 lines: start first, stop last"
    if not events:
        return Criterion(
            "heartbeat_lines", FAIL, 0, limit, "no heartbeat lines: the run left no proof of life"
        )
    problems = []
    if events[0] != "start":
        problems.append(f"first line is {events[0]!r}, not 'start'")
    if events[-1] != "stop":
        problems.append(f"last line is {events[-1]!r}, not 'stop' (the run did not stop cleanly)")
    if len(events) < 2:
        problems.append("only one line")
    detail = _summarize(problems) or "start and stop present"
    return judged("heartbeat_lines", not problems, len(events), limit, detail)


def loop_progress(bundle: EvidenceBundle) -> Criterion:
    """loop_count must advance and never go back; the loop must never be silent past a beat interval."""
    window = run_window(bundle)
    beats = sorted(bundle.heartbeats, key=lambda r: number(r, "seq") or 0.0)
    if window is None or not beats:
        return unavailable("loop_progress", None, "heartbeat lines" if not beats else "heartbeat interval")
    limit = heartbeat_limit(window.interval)
    counts = [int(number(r, "loop_count") or 0) for r in beats]
    stalls = [
        epoch - (number(r, "last_loop_ts") or window.started)
        for r in beats
        if (epoch := beat_epoch(r)) is not None and r.get("event") != "start"
    ]
    stall = max(stalls, default=0.0)
    problems = []
    backwards = sum(later < earlier for earlier, later in pairwise(counts))
    if backwards:
        problems.append(f"loop_count went backwards {backwards} time(s)")
    if len(counts) >= 2 and counts[-1] <= counts[0]:
        problems.append(f"loop_count did not advance ({counts[0]} -> {counts[-1]})")
    if stall > limit:
        problems.append(f"loop silent for {stall:.1f}s at a beat > limit {limit:.1f}s")
    detail = (
        f"loop_count {counts[0]} -> {counts[-1]} over {len(counts)} beats; longest loop silence {stall:.1f}s"
    )
    return judged("loop_progress", not problems, round(stall, 3), limit, _summarize(problems) or detail)


# -- run and database ----------------------------------------------------------------------------
def db_recount(bundle: EvidenceBundle, choice: LedgerChoice) -> Criterion:
    """Count the run's legs in PostgreSQL and hold them to the ledger rule (`evidence.ledger_rule`).

    A ledger the run or the operator named (the run's embedded data directory, `--postgres-dsn`)
    that cannot be read fails a run that claims legs: its rows cannot be shown. A run that claims
    none is "not checked" then, as is an ambient `POSTGRES_DSN` that cannot be reached.
    """
    run_id = bundle.manifest_doc.run_id if bundle.manifest_doc is not None else None
    named = choice.dsn is not None or (choice.embedded and embedded_data_dir(bundle.manifest) is not None)
    if not named:
        return Criterion(
            "db_recount", NOT_CHECKED, None, None, "no database given (--postgres-dsn or POSTGRES_DSN)"
        )
    if run_id is None or bundle.kpi_doc is None:
        return unavailable("db_recount", None, "run_id, kpi.json")
    expected = LedgerClaims.from_documents(bundle.kpi_doc, bundle.summary_doc).expected
    claims_legs = expected.total > 0
    try:
        with open_ledger(choice, bundle.manifest) as access:
            if access.dsn is None:
                problem = access.problem or "no database"
                if claims_legs:
                    return Criterion("db_recount", FAIL, "unreachable", None, f"cannot recount: {problem}")
                return Criterion("db_recount", NOT_CHECKED, None, None, f"{problem}; the run claims no legs")
            rows = count_legs(access.dsn, run_id, connect_timeout_sec=5)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if access.explicit and (claims_legs or access.origin == "--postgres-dsn"):
            return Criterion("db_recount", FAIL, "unreachable", None, f"db_recount: unreachable: {reason}")
        return Criterion(
            "db_recount", NOT_CHECKED, None, None, f"database from {access.origin} unreachable: {reason}"
        )
    result = judge_ledger(bundle, rows)
    observed = f"rows {rows.total} (entry {rows.entry}, exit {rows.exit})"
    detail = f"{result.detail}; read from {access.origin}"
    return judged("db_recount", bool(result.passed), observed, result.limit, detail)


def engine_exit(bundle: EvidenceBundle) -> Criterion:
    """The engine itself reported exit code 0."""
    summary = bundle.chain_summary
    if summary is None:
        return unavailable("engine_exit", 0, names.CHAIN_SUMMARY)
    code, reason = summary.get("exit_code"), summary.get("stop_reason")
    return judged("engine_exit", code == 0, code, 0, f"stop_reason {reason}")


def warnings_logged(bundle: EvidenceBundle) -> Criterion:
    """No WARNING-or-worse record was logged (WARN = FAIL)."""
    summary = bundle.chain_summary
    if summary is None:
        return unavailable("warnings", 0, names.CHAIN_SUMMARY)
    count = summary.get("warnings_count")
    first = [w.get("message", "") for w in summary.get("warnings", []) if isinstance(w, dict)]
    detail = f"WARN = FAIL; first: {_summarize(first)}" if first else "no WARNING-or-worse records"
    return judged("warnings", count == 0, count, 0, detail)
