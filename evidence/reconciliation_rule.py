"""Whether a run was reconciled with the venues, and whether the reconciliation holds up.

`arbitrage reconcile` writes `reconciliation.json` beside a live run's evidence, sealed as an
addendum (`evidence.addendum`). Two criteria read it:

- `reconciliation` (critical): when the report is there (whatever the mode), its seal matches
  (the document and the manifest it was added to), it is a reconciliation report of this run
  (`ReconciliationDoc`), and it says `ok`. A report that found the venues disagree with the
  ledger, or one that was changed or moved, is a NO-GO.
- `reconciled` (high): a live run has a report at all. A live run nobody reconciled is not
  known to be wrong, so it is a CONDITIONAL GO until `arbitrage reconcile` has run; a paper run
  has no venue to reconcile with ("not applicable").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evidence.addendum import addendum_problems
from evidence.criteria import CRITICAL, HIGH, Judged
from evidence.names import RECONCILIATION, RECONCILIATION_SEAL

SHOWN: Final = 3


class ReconciliationDoc(BaseModel):
    """The fields of `reconciliation.json` a verdict reads (extra keys are kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    run_id: Annotated[str, Field(min_length=1)]
    ok: bool
    problems: list[str]
    tolerances: dict[str, float]
    venues: dict[str, Any]
    trades: list[dict[str, Any]]
    reconciled_at: Annotated[str, Field(min_length=1)]

    def consistent(self) -> bool:
        """`ok` exactly when no problem was found."""
        return self.ok == (not self.problems)


def _schema_problems(document: object) -> list[str]:
    try:
        parsed = ReconciliationDoc.model_validate(document)
    except ValidationError as exc:
        return [
            f"{RECONCILIATION}: {'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in exc.errors()[:SHOWN]
        ]
    if not parsed.consistent():
        return [f"{RECONCILIATION}: ok is {parsed.ok} with {len(parsed.problems)} problem(s)"]
    return []


def _shown(problems: list[str]) -> str:
    more = f" (+{len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return "; ".join(problems[:SHOWN]) + more


def _not_reconciled(mode: object, run_id: object) -> list[Judged]:
    if mode == "live":
        detail = f"live run not reconciled: no {RECONCILIATION} (run `arbitrage reconcile --run {run_id}`)"
        reconciled = Judged("reconciled", HIGH, "fail", "absent", "present", detail)
    elif mode is None:
        reconciled = Judged("reconciled", HIGH, "fail", "absent", "present", "cannot check: run mode unknown")
    else:
        reconciled = Judged("reconciled", HIGH, "not applicable", "absent", None, f"{mode} run")
    none = Judged("reconciliation", CRITICAL, "not applicable", "absent", "ok", f"no {RECONCILIATION}")
    return [none, reconciled]


def _report(directory: Path, run_id: object) -> tuple[ReconciliationDoc | None, list[str]]:
    """The sealed, valid report of this run, else why it is not one."""
    problems = addendum_problems(directory, RECONCILIATION, RECONCILIATION_SEAL)
    if problems:
        return None, problems
    try:
        document = json.loads((directory / RECONCILIATION).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, [f"{RECONCILIATION}: unreadable: {exc}"]
    problems = _schema_problems(document)
    if problems:
        return None, problems
    report = ReconciliationDoc.model_validate(document)
    if report.run_id != run_id:
        return None, [f"{RECONCILIATION}: reconciles run {report.run_id!r}, not {run_id!r}"]
    return report, []


def judge_reconciliation(evidence_dir: Path, manifest: Mapping[str, Any] | None) -> list[Judged]:
    """The `reconciliation` and `reconciled` rows for one evidence directory."""
    directory = Path(evidence_dir)
    mode, run_id = (manifest or {}).get("mode"), (manifest or {}).get("run_id")
    if not (directory / RECONCILIATION).exists() and not (directory / RECONCILIATION_SEAL).exists():
        return _not_reconciled(mode, run_id)
    report, problems = _report(directory, run_id)
    reconciled = Judged("reconciled", HIGH, "pass", "present", "present", f"{RECONCILIATION} beside the run")
    if report is None:
        return [Judged("reconciliation", CRITICAL, "fail", "invalid", "ok", _shown(problems)), reconciled]
    if not report.ok:
        detail = f"the venues disagree with the ledger: {_shown(report.problems)}"
        found = f"{len(report.problems)} finding(s)"
        return [Judged("reconciliation", CRITICAL, "fail", found, "ok", detail), reconciled]
    detail = f"orders, fills, balances and PnL match both venues (reconciled at {report.reconciled_at})"
    return [Judged("reconciliation", CRITICAL, "pass", "ok", "ok", detail), reconciled]
