"""The independent checker: what a run really left behind, read from PostgreSQL and the files.

It trusts nothing the engine says about itself. It counts the run's rows in PostgreSQL, pairs
every entry leg with its exit leg, finds every journaled record in the database, compares
kpi.json with those counts, checks the `runs` row and the seal, and runs `verify`'s own
criteria with the database. A run is then:

- `clean`: exit 0, nothing wrong;
- `failed-closed`: the engine stopped (exit 1, or killed by the schedule), said why, and lost nothing;
- `LOST`: a leg, an event or an acknowledged row is missing from PostgreSQL;
- `UNEXPLAINED`: a traceback, a hang, a `running` manifest or `runs` row, a wrong exit code, a
  journal still pending after the next start, NOTHING_LEFT_OPEN recorded by a run that left an entry
  without its exit, or anything else the protocol does not allow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from evidence import names
from evidence.completeness import check_completeness
from evidence.ledger_tables import EVENT_LOG, RUNS, TRADE_LEGS
from evidence.reader import CorruptEvidenceError, read_jsonl
from evidence.run_closure import NOTHING_LEFT_OPEN
from evidence.writer import file_digest
from gates.analyzer import FAIL
from gates.chaos.model import Classification
from gates.chaos.venue_audit import VenueAudit

FINAL_STATUSES = ("ended", "failed", "crashed")
STRUCTURAL_CRITERIA = ("files_present", "schema_valid", "sha256_match", "completeness")
TRACEBACK = "Traceback (most recent call last)"
EVIDENCE_FAILED = "arbitrage: evidence write failed:"
"""The engine's one line when it stopped because its evidence could not be written."""


@dataclass(frozen=True)
class LedgerAudit:
    """What PostgreSQL and the files say about one run's ledger."""

    entries: int
    exits: int
    unpartnered: list[str]
    run_row: tuple[Any, ...] | None
    kpi: dict[str, Any] | None
    manifest_status: str | None
    seal_problem: str | None
    sealed_files_match: bool
    missing_records: list[str]
    nothing_left_open: bool = False
    """The run recorded NOTHING_LEFT_OPEN: PostgreSQL must then hold an exit leg for each entry."""

    @classmethod
    def of(cls, dsn: str, run_dir: Path) -> LedgerAudit:
        run_id = run_dir.name
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            legs: dict[str, int] = dict(
                conn.execute(
                    f"SELECT leg, count(*) FROM {TRADE_LEGS} WHERE run_id = %s GROUP BY leg", (run_id,)
                ).fetchall()
            )
            unpartnered = [
                row[0]
                for row in conn.execute(
                    f"SELECT e.trade_id FROM {TRADE_LEGS} e WHERE e.run_id = %s AND e.leg = 'entry'"
                    f" AND NOT EXISTS (SELECT 1 FROM {TRADE_LEGS} x WHERE x.run_id = e.run_id"
                    " AND x.trade_id = e.trade_id AND x.leg = 'exit') ORDER BY e.trade_id",
                    (run_id,),
                ).fetchall()
            ]
            run_row = conn.execute(
                f"SELECT status, exit_code, stop_reason FROM {RUNS} WHERE run_id = %s", (run_id,)
            ).fetchone()
            missing = _missing_journal_records(conn, run_dir / names.LEDGER_JOURNAL)
            closed = conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {EVENT_LOG} WHERE run_id = %s AND event_type = %s)",
                (run_id, NOTHING_LEFT_OPEN),
            ).fetchone()
        manifest = _read(run_dir / names.MANIFEST)
        return cls(
            entries=int(legs.get("entry", 0)),
            exits=int(legs.get("exit", 0)),
            unpartnered=unpartnered,
            run_row=run_row,
            kpi=_read(run_dir / names.KPI),
            manifest_status=None if manifest is None else str(manifest.get("status")),
            seal_problem=_seal_problem(run_dir, manifest),
            sealed_files_match=_sealed_files_match(run_dir, manifest),
            missing_records=missing,
            nothing_left_open=bool(closed and closed[0]),
        )

    def lost(self) -> list[str]:
        """Evidence that something the engine wrote or acknowledged is not in PostgreSQL."""
        found = []
        if self.missing_records:
            found.append(f"journaled but not in PostgreSQL: {', '.join(self.missing_records[:5])}")
        if self.kpi is None:
            return found
        reported_open = self.kpi.get("open_positions", 0)
        open_count = len(reported_open) if isinstance(reported_open, list) else int(reported_open)
        if len(self.unpartnered) > open_count:
            found.append(
                f"entry legs without exit {self.unpartnered[:5]} but only {open_count} reported open"
            )
        acknowledged = int(self.kpi["db_counts"]["db_inserts_ok"])
        journaled = int((self.kpi.get("ledger") or {}).get("legs_pending", 0))
        if self.entries + self.exits < acknowledged + journaled:
            found.append(
                f"kpi says {acknowledged} legs acknowledged + {journaled} journaled, PostgreSQL holds "
                f"{self.entries} entry + {self.exits} exit legs"
            )
        if self.exits < int(self.kpi["closed_trades"]):
            found.append(f"kpi closed_trades {self.kpi['closed_trades']} but {self.exits} exit legs")
        return found

    def unexplained(self, *, killed: bool, evidence_failed: bool = False, live: bool = False) -> list[str]:
        """What breaks the protocol without losing data. A killed run is allowed no seal; a run that
        stopped because its evidence could not be written (disk full) may lack what it could not
        write, but what it sealed must match. A killed live run keeps its open positions (recovery
        never touches them; preflight refuses arming while they are open)."""
        found = []
        if self.nothing_left_open and self.unpartnered:
            found.append(f"{NOTHING_LEFT_OPEN} recorded, but entry legs have no exit: {self.unpartnered[:5]}")
        if self.run_row is None:
            found.append("no runs row")
        elif self.run_row[0] not in FINAL_STATUSES:
            found.append(f"runs row not final: {self.run_row[0]}")
        elif killed and self.run_row[0] != "crashed":
            found.append(f"killed run's row is {self.run_row[0]}, expected crashed")
        if killed:
            if self.unpartnered and not live:
                found.append(f"killed run still has open entry legs after recovery: {self.unpartnered[:5]}")
            return found
        if self.kpi is not None:
            acknowledged = int(self.kpi["db_counts"]["db_inserts_ok"])
            journaled = int((self.kpi.get("ledger") or {}).get("legs_pending", 0))
            if self.entries + self.exits > acknowledged + journaled:
                found.append(
                    f"PostgreSQL holds {self.entries + self.exits} legs, kpi accounts for {acknowledged}"
                    f" acknowledged + {journaled} journaled"
                )
        if self.manifest_status in (None, "running"):
            found.append(f"manifest status {self.manifest_status}")
        if self.seal_problem is not None and not (evidence_failed and self.sealed_files_match):
            found.append(f"evidence not sealed: {self.seal_problem}")
        return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _seal_problem(run_dir: Path, manifest: dict[str, Any] | None) -> str | None:
    completeness = check_completeness(run_dir)
    if completeness.failed:
        return completeness.detail
    sealed = (manifest or {}).get("files", {}).get(names.LEDGER_JOURNAL)
    journal = run_dir / names.LEDGER_JOURNAL
    if sealed is None and not journal.exists():
        return None
    actual = file_digest(journal).to_json() if journal.exists() else None
    return None if sealed == actual else f"journal {actual} sealed as {sealed}"


def _sealed_files_match(run_dir: Path, manifest: dict[str, Any] | None) -> bool:
    """The manifest is final and every file it sealed is still exactly what it sealed."""
    if manifest is None or manifest.get("status") not in ("ended", "failed"):
        return False
    for name, digest in (manifest.get("files") or {}).items():
        path = run_dir / name
        if not path.is_file() or file_digest(path).to_json() != digest:
            return False
    return True


def _missing_journal_records(conn: psycopg.Connection[Any], journal: Path) -> list[str]:
    """Every journaled leg and event that PostgreSQL does not hold."""
    try:
        records = [r for r in read_jsonl(journal).records if isinstance(r, dict)]
    except FileNotFoundError:
        return []
    except (OSError, CorruptEvidenceError) as exc:
        return [f"journal unreadable: {exc}"]
    legs = [(r["run_id"], r["row"]["trade_id"], r["row"]["leg"]) for r in records if r.get("op") == "leg"]
    uids = [str(r["uid"]) for r in records if r.get("op") == "event" and r.get("uid")]
    present_legs = set(
        conn.execute(
            f"SELECT run_id, trade_id, leg FROM {TRADE_LEGS} WHERE (run_id, trade_id, leg) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            ([k[0] for k in legs], [k[1] for k in legs], [k[2] for k in legs]),
        ).fetchall()
    )
    present_uids = {
        row[0]
        for row in conn.execute(
            f"SELECT event_uid FROM {EVENT_LOG} WHERE event_uid = ANY(%s)", (uids,)
        ).fetchall()
    }
    missing = [f"leg {'/'.join(key[1:])}" for key in legs if key not in present_legs]
    missing += [f"event {uid}" for uid in uids if uid not in present_uids]
    return missing


@dataclass
class EngineResult:
    """How the engine process ended, and what it printed (with the next start's output, if any)."""

    exit_code: int | None
    stdout: str
    stderr: str
    hung: bool = False
    killed: bool = False
    next_start: list[str] = field(default_factory=list)
    """The next command's stdout and stderr, when the checker had to run one."""

    def run_dir(self) -> Path | None:
        for line in self.stdout.splitlines():
            if line.startswith("evidence: "):
                return Path(line.removeprefix("evidence: ").strip())
        return None

    def stop_line(self) -> str:
        """The engine's own last word: its last `arbitrage:` line, else its final log line."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        said = [line for line in lines if line.startswith("arbitrage:")]
        return said[-1] if said else (lines[-1] if lines else "")


def judge(
    result: EngineResult, dsn: str, verify_criteria: Mapping[str, str] | None, venue: VenueAudit | None = None
) -> tuple[Classification, list[str]]:
    """Classify one run; `verify_criteria` maps verify's criterion names to their verdicts, and
    `venue` (a live run's) is what the simulator's own orders say about it (`venue_audit`)."""
    unexplained: list[str] = [] if venue is None else list(venue.unexplained)
    lost: list[str] = [] if venue is None else list(venue.lost)
    outputs = [result.stdout, result.stderr, *result.next_start]
    if any(TRACEBACK in text for text in outputs):
        unexplained.append("a traceback was printed")
    if result.hung:
        unexplained.append("the engine did not exit (hang): killed by the checker")
    expected_codes = {0, 1} | ({-9} if result.killed else set())
    if result.exit_code not in expected_codes:
        unexplained.append(f"exit code {result.exit_code}, expected one of {sorted(expected_codes)}")
    run_dir = result.run_dir()
    if run_dir is None:
        if result.exit_code == 0:
            unexplained.append("exit 0 without an evidence directory")
        elif not result.stop_line().startswith("arbitrage:") and not result.killed:
            unexplained.append("stopped before the run started without saying why in one line")
        return _classify(result, lost, unexplained)
    audit = LedgerAudit.of(dsn, run_dir)
    lost += audit.lost()
    evidence_failed = any(line.startswith(EVIDENCE_FAILED) for line in result.stderr.splitlines())
    live = venue is not None
    unexplained += audit.unexplained(killed=result.killed, evidence_failed=evidence_failed, live=live)
    if verify_criteria is not None and not result.killed:
        if verify_criteria.get("db_recount") == FAIL:
            lost.append("verify: db_recount failed")
        required = ("sha256_match",) if evidence_failed else STRUCTURAL_CRITERIA
        unexplained += [f"verify: {name} failed" for name in required if verify_criteria.get(name) == FAIL]
    return _classify(result, lost, unexplained)


def _classify(
    result: EngineResult, lost: list[str], unexplained: list[str]
) -> tuple[Classification, list[str]]:
    if lost:
        return "LOST", lost + unexplained
    if unexplained:
        return "UNEXPLAINED", unexplained
    if result.exit_code == 0 and not result.killed:
        return "clean", []
    return "failed-closed", []
