"""Tolerant readers for evidence files.

A crash can tear only the final, unterminated line of a JSONL file (see :mod:`evidence.writer`),
so that one case is tolerated; every other malformation is corruption and is reported with the
file and line so an operator can find it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from evidence.documents import ChainSummary, Kpi, Manifest, beat_epoch, parse_document
from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST


class CorruptEvidenceError(ValueError):
    """An evidence file exists but cannot be trusted; the message names the file and line."""

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}: line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type[CorruptEvidenceError], tuple[Path, str, int | None]]:
        return (type(self), (self.path, self.reason, self.line))

    def describe(self, name: str) -> str:
        """Short form for problem lists, keyed by bare file name: ``"<name>: line N: corrupt: ..."``."""
        where = f"{name}: line {self.line}" if self.line is not None else name
        return f"{where}: corrupt: {self.reason}"


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-standard JSON constant {name}")


def _parse(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object document; ``FileNotFoundError`` passes through, anything else is corruption."""
    path = Path(path)
    data = path.read_bytes()
    if not data.strip():
        raise CorruptEvidenceError(path, "empty file")
    try:
        document = _parse(data)
    except json.JSONDecodeError as exc:
        raise CorruptEvidenceError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from exc
    except ValueError as exc:
        raise CorruptEvidenceError(path, f"invalid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise CorruptEvidenceError(path, f"expected a JSON object, got {type(document).__name__}")
    return document


@dataclass
class JsonlContent:
    """Records of a JSONL file, plus whether a torn final append was dropped."""

    records: list[dict[str, Any]]
    torn_tail: bool


def read_jsonl(path: Path) -> JsonlContent:
    """Read a JSONL file written by :class:`evidence.writer.JsonlAppender`.

    An unterminated final line that does not parse is a torn append and is dropped
    (``torn_tail=True``); one that parses is kept. Any newline-terminated line that is blank,
    malformed or not an object raises :class:`CorruptEvidenceError` with its line number.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            raise CorruptEvidenceError(path, "blank line", number)
        try:
            record = _parse(raw)
        except ValueError as exc:
            raise CorruptEvidenceError(path, f"malformed JSON line: {exc}", number) from exc
        if not isinstance(record, dict):
            raise CorruptEvidenceError(path, f"expected a JSON object, got {type(record).__name__}", number)
        records.append(record)
    if not tail:
        return JsonlContent(records=records, torn_tail=False)
    try:
        record = _parse(tail)
    except ValueError:
        return JsonlContent(records=records, torn_tail=True)
    if not isinstance(record, dict):
        kind = type(record).__name__
        raise CorruptEvidenceError(path, f"expected a JSON object, got {kind}", len(lines) + 1)
    records.append(record)
    return JsonlContent(records=records, torn_tail=False)


@dataclass
class EvidenceBundle:
    """Everything parseable in one evidence directory, with what could not be read in ``problems``."""

    path: Path
    manifest: dict[str, Any] | None = None
    chain_summary: dict[str, Any] | None = None
    kpi: dict[str, Any] | None = None
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    heartbeat_torn_tail: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every minimum-set file was present and parseable."""
        return not self.problems

    @cached_property
    def manifest_doc(self) -> Manifest | None:
        """The manifest as a typed document; None when missing or not a valid manifest."""
        return parse_document(Manifest, self.manifest)

    @cached_property
    def summary_doc(self) -> ChainSummary | None:
        """``chain_summary.json`` as a typed document; None when missing or invalid."""
        return parse_document(ChainSummary, self.chain_summary)

    @cached_property
    def kpi_doc(self) -> Kpi | None:
        """``kpi.json`` as a typed document; None when missing or invalid."""
        return parse_document(Kpi, self.kpi)

    @property
    def beat_epochs(self) -> list[float]:
        """The precise time of every heartbeat line that has one, in file order."""
        return [epoch for record in self.heartbeats if (epoch := beat_epoch(record)) is not None]


def _load_json(bundle: EvidenceBundle, name: str) -> dict[str, Any] | None:
    try:
        return read_json(bundle.path / name)
    except FileNotFoundError:
        bundle.problems.append(f"{name}: missing")
    except CorruptEvidenceError as exc:
        bundle.problems.append(exc.describe(name))
    except OSError as exc:
        bundle.problems.append(f"{name}: unreadable: {exc}")
    return None


def load_evidence(evidence_dir: Path) -> EvidenceBundle:
    """Load the minimum evidence set without ever raising for missing or corrupt files.

    Only parsing is checked here; schema and hash checks belong to
    :func:`evidence.invariants.check_completeness`.
    """
    bundle = EvidenceBundle(path=Path(evidence_dir))
    if not bundle.path.is_dir():
        bundle.problems.append(f"{bundle.path}: evidence directory missing")
        return bundle
    bundle.manifest = _load_json(bundle, MANIFEST)
    bundle.chain_summary = _load_json(bundle, CHAIN_SUMMARY)
    bundle.kpi = _load_json(bundle, KPI)
    try:
        content = read_jsonl(bundle.path / HEARTBEAT)
    except FileNotFoundError:
        bundle.problems.append(f"{HEARTBEAT}: missing")
    except CorruptEvidenceError as exc:
        bundle.problems.append(exc.describe(HEARTBEAT))
    except OSError as exc:
        bundle.problems.append(f"{HEARTBEAT}: unreadable: {exc}")
    else:
        bundle.heartbeats = content.records
        bundle.heartbeat_torn_tail = content.torn_tail
    return bundle
