"""The ledger's write-ahead journal: what the engine wrote, before PostgreSQL acknowledged it.

Every leg, event and `runs` update is appended here (one JSON line, written straight to the
kernel, so it survives the process being killed) before it is sent to PostgreSQL (by the
caller, or by the ledger's writer thread under group commit); a record that PostgreSQL did not
acknowledge is fsynced at once. Every record replays idempotently
(`ops.apply_record`), so the journal can be replayed whole at any time: by the ledger on
reconnect, at close-out, or by the next engine command when the run ended with the database
down or died.

The journal lives in the run's evidence directory and is sealed with it. While a run may still
have records PostgreSQL lacks, a marker under `<evidence_root>/.ledger_pending/` names the
journal and its owner process; the marker is removed only when everything is acknowledged.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbitrage.owner import OwnerProcess
from evidence import names
from evidence.reader import read_jsonl
from evidence.writer import atomic_write_json, fsync_dir

PENDING_DIR = ".ledger_pending"


class JournalError(OSError):
    """The journal could not be written: the run cannot promise its ledger any more."""


def encode_records(value: Any) -> str:
    """Records as JSON, the one way the journal writes them and the writer thread sends them to
    PostgreSQL, so both hold the same values (what JSON cannot carry natively becomes its str)."""
    return json.dumps(value, separators=(",", ":"), default=str)


class JournalRecord(dict[str, Any]):
    """A record as the journal wrote it, keeping its line's JSON (`text`).

    The writer thread sends that text to PostgreSQL instead of encoding the record again: encoding
    holds Python's GIL throughout, and a back-to-back run's 500-record batch held it for 4-8 ms,
    which every tick due meanwhile waited out. Nothing changes a record once it is journaled.
    """

    __slots__ = ("text",)

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self.text = encode_records(fields)


def encode_batch(records: list[dict[str, Any]]) -> str:
    """`encode_records(records)`, built from each journaled record's own text where it has one."""
    parts = (r.text if isinstance(r, JournalRecord) else encode_records(r) for r in records)
    return "[" + ",".join(parts) + "]"


def pending_dir(evidence_root: Path) -> Path:
    """Where markers of journals with possibly unacknowledged records are kept."""
    return evidence_root / PENDING_DIR


@dataclass(frozen=True)
class PendingMarker:
    """A journal that may hold records PostgreSQL lacks, and the process that wrote it."""

    run_id: str
    journal: Path
    owner: OwnerProcess
    path: Path

    @classmethod
    def read(cls, path: Path) -> PendingMarker:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            run_id=str(data["run_id"]),
            journal=Path(data["journal"]),
            owner=OwnerProcess.from_json(data["owner"]),
            path=path,
        )


def pending_markers(evidence_root: Path) -> list[PendingMarker]:
    """Every readable marker under the evidence root, oldest run first."""
    directory = pending_dir(evidence_root)
    try:
        entries = sorted(directory.glob("*.json"))
    except OSError:
        return []
    found = []
    for entry in entries:
        try:
            found.append(PendingMarker.read(entry))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


class LedgerJournal:
    """Appends ledger records to `<evidence_dir>/ledger_journal.jsonl`, numbering them."""

    def __init__(self, evidence_dir: Path, evidence_root: Path, run_id: str) -> None:
        self.path = evidence_dir / names.LEDGER_JOURNAL
        self.run_id = run_id
        self._marker = pending_dir(evidence_root) / f"{run_id}.json"
        self._lock = threading.Lock()
        self._seq = 0
        self._dirty = False
        self._marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self._marker,
            {
                "run_id": run_id,
                "journal": str(self.path.resolve()),
                "owner": OwnerProcess.current().to_json(),
            },
        )
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        fsync_dir(evidence_dir)

    def append(self, op: str, fields: dict[str, Any]) -> JournalRecord:
        """Write one record and return it with its sequence number; raises JournalError."""
        return self.append_many([(op, fields)])[0]

    def append_many(self, items: list[tuple[str, dict[str, Any]]]) -> list[JournalRecord]:
        """Write records that belong together (a leg and its event) in one write, all or none."""
        with self._lock:
            if self._fd is None:
                raise JournalError(f"{self.path}: journal already closed")
            records = [
                JournalRecord({"seq": number, "uid": f"{self.run_id}:{number}", "op": op, **fields})
                for number, (op, fields) in enumerate(items, start=self._seq + 1)
            ]
            lines = "".join(record.text + "\n" for record in records).encode()
            self._write_whole(self._fd, lines)
            self._seq += len(records)
            self._dirty = True
            return records

    def _write_whole(self, fd: int, line: bytes) -> None:
        """Append the whole line or nothing: a full disk can take part of a line, and a fragment
        followed by later lines would make the journal unreadable, so it is cut off again."""
        written = 0
        try:
            while written < len(line):
                count = os.write(fd, line[written:])
                if count == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += count
        except OSError as exc:
            if written:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
            raise JournalError(exc.errno, f"journal write failed: {exc.strerror}", str(self.path)) from None
        self._size += written

    def sync(self) -> None:
        """Make every record written so far durable (called when one was not acknowledged). The disk
        is waited for outside the lock, so appends are not held by it."""
        with self._lock:
            if self._fd is None or not self._dirty:
                return
            try:
                fd = os.dup(self._fd)
            except OSError as exc:
                raise JournalError(
                    exc.errno, f"journal sync failed: {exc.strerror}", str(self.path)
                ) from None
            self._dirty = False
        try:
            os.fdatasync(fd)
        except OSError as exc:
            with self._lock:
                self._dirty = True
            raise JournalError(exc.errno, f"journal sync failed: {exc.strerror}", str(self.path)) from None
        finally:
            os.close(fd)

    def settle(self, pending: int) -> None:
        """At the end of the run: drop the marker when nothing is pending, else make it durable."""
        self.sync()
        if pending == 0:
            self._marker.unlink(missing_ok=True)
        fsync_dir(self._marker.parent)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's records in order; a torn final line (an interrupted append) is ignored."""
    return [record for record in read_jsonl(path).records if isinstance(record, dict)]
