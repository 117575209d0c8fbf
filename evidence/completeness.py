"""Completeness of an evidence directory, as structured problems every judge reads the same way.

A problem names the file, its kind and a detail; the engine's close-out summarises them into the
completeness invariant, ``verify`` sorts them into its file criteria by kind, and the harness
asserts on them, so nobody recovers a file name by splitting a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from evidence.invariants import COMPLETENESS, InvariantResult
from evidence.names import HEARTBEAT, MANIFEST, MINIMUM_SET, NEVER_SEALED
from evidence.reader import CorruptEvidenceError, read_json, read_jsonl
from evidence.schema import DocumentCheck, validation_errors
from evidence.writer import file_digest

ProblemKind = Literal[
    "missing", "empty", "unreadable", "corrupt", "schema", "unlisted", "sha256", "listed_missing", "unsealed"
]
PRESENCE_KINDS: Final = frozenset({"missing", "empty"})
"""The file is not there to read."""
CONTENT_KINDS: Final = frozenset({"unreadable", "corrupt", "schema"})
"""The file is there but does not parse or does not match its schema."""
SEAL_KINDS: Final = frozenset({"unlisted", "sha256", "listed_missing", "unsealed"})
"""The file and the manifest's seal disagree."""
_DETAIL_PROBLEMS: Final = 3


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one evidence file."""

    file: str
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.detail}"


def _content_problems(
    path: Path, name: str, check: DocumentCheck
) -> tuple[dict[str, Any] | None, list[Problem]]:
    try:
        if name == HEARTBEAT:
            records = read_jsonl(path).records
            if not records:
                return None, [Problem(name, "corrupt", "no complete records")]
            errors: list[str] = []
            for number, record in enumerate(records, start=1):
                errors += check(name, record, location=f"line {number}")
            return None, [Problem(name, "schema", e) for e in errors]
        document = read_json(path)
    except CorruptEvidenceError as exc:
        where = f"line {exc.line}: " if exc.line is not None else ""
        return None, [Problem(name, "corrupt", f"{where}corrupt: {exc.reason}")]
    except OSError as exc:
        return None, [Problem(name, "unreadable", f"unreadable: {exc.strerror or exc}")]
    errors = check(name, document)
    return document, [Problem(name, "schema", e.removeprefix(f"{name}: ")) for e in errors]


def _minimum_file(
    evidence_dir: Path, name: str, check: DocumentCheck
) -> tuple[dict[str, Any] | None, list[Problem]]:
    path = evidence_dir / name
    if not path.is_file():
        return None, [Problem(name, "missing", "missing")]
    if path.stat().st_size == 0:
        return None, [Problem(name, "empty", "empty")]
    return _content_problems(path, name, check)


def seal_problems(evidence_dir: Path, manifest: Mapping[str, Any] | None) -> list[Problem]:
    """Where the files and the manifest's digests disagree: a minimum-set file not listed, a listed
    file changed or gone, a file the seal should cover that it does not."""
    files = manifest.get("files") if manifest is not None else None
    if not isinstance(files, dict):
        return [
            Problem(name, "unlisted", "cannot verify sha256: manifest unreadable")
            for name in MINIMUM_SET
            if name != MANIFEST and (evidence_dir / name).is_file()
        ]
    problems = [
        Problem(name, "unlisted", "not listed in manifest files")
        for name in MINIMUM_SET
        if name != MANIFEST and name not in files
    ]
    for name, entry in sorted(files.items()):
        if name in NEVER_SEALED:
            continue
        path = evidence_dir / name
        if not path.is_file():
            if name not in MINIMUM_SET:
                problems.append(Problem(name, "listed_missing", "listed in manifest but missing"))
            continue
        try:
            actual = file_digest(path)
        except OSError as exc:
            problems.append(Problem(name, "unreadable", f"cannot hash: {exc.strerror or exc}"))
            continue
        recorded = entry if isinstance(entry, dict) else {}
        if actual.to_json() != {k: recorded.get(k) for k in ("sha256", "bytes")}:
            detail = (
                f"sha256 mismatch with manifest (manifest {str(recorded.get('sha256'))[:12]}... "
                f"{recorded.get('bytes')} bytes, actual {actual.sha256[:12]}... {actual.bytes} bytes)"
            )
            problems.append(Problem(name, "sha256", detail))
    for path in sorted(evidence_dir.iterdir()):
        name = path.name
        sealable = name not in NEVER_SEALED and name not in MINIMUM_SET and not name.startswith(".")
        if sealable and path.is_file() and name not in files:
            problems.append(Problem(name, "unsealed", "present but not sealed in the manifest"))
    return problems


def completeness_problems(
    evidence_dir: Path, *, verify_hashes: bool = True, check: DocumentCheck = validation_errors
) -> list[Problem]:
    """Every minimum-set file must exist, be non-empty, parse and match its schema; with
    ``verify_hashes`` every file must also match the manifest's seal.

    Heartbeat lines are read with the tolerant reader (a torn final append is allowed) and each
    record is schema-checked. ``verify_hashes=False`` is for before the final manifest exists.
    ``check`` is the shipped schema for readers; the engine passes the models' equal rule
    (:func:`evidence.schema.document_errors`) for the documents it has just written.
    """
    evidence_dir = Path(evidence_dir)
    if not evidence_dir.is_dir():
        return [Problem(str(evidence_dir), "missing", "evidence directory missing")]
    manifest: dict[str, Any] | None = None
    problems: list[Problem] = []
    for name in sorted(MINIMUM_SET, key=lambda n: n != MANIFEST):
        document, found = _minimum_file(evidence_dir, name, check)
        if name == MANIFEST:
            manifest = document
        problems += found
    if verify_hashes:
        problems += seal_problems(evidence_dir, manifest)
    return problems


def summarize(problems: list[Problem]) -> str:
    """The first few problems on one line, with how many more there are."""
    shown = "; ".join(str(p) for p in problems[:_DETAIL_PROBLEMS])
    more = f" (+{len(problems) - _DETAIL_PROBLEMS} more)" if len(problems) > _DETAIL_PROBLEMS else ""
    return shown + more


def check_completeness(
    evidence_dir: Path, *, verify_hashes: bool = True, check: DocumentCheck = validation_errors
) -> InvariantResult:
    """The completeness invariant over :func:`completeness_problems`."""
    problems = completeness_problems(evidence_dir, verify_hashes=verify_hashes, check=check)
    total = len(MINIMUM_SET)
    bad = {p.file for p in problems if p.file in MINIMUM_SET}
    ok = total - len(bad)
    if not problems:
        checks = "match manifest sha256" if verify_hashes else "were not hash-verified"
        detail = f"{ok}/{total} files present, parseable, schema-valid and {checks}"
    else:
        detail = f"{ok}/{total} files ok: {summarize(problems)}"
    return InvariantResult(
        COMPLETENESS, True, not problems, f"{ok}/{total} files ok", f"{total}/{total}", detail
    )
