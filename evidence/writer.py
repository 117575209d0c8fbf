"""Durable writers for evidence files.

Evidence must survive a crash or power loss at any instant: whole-file documents are replaced
atomically (temp file + fsync + ``os.replace`` + directory fsync) so a reader sees either the old
or the new version, and JSONL records are fsynced one line at a time so at most the final line
can be torn (which :mod:`evidence.reader` tolerates).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

_CHUNK: Final = 1 << 20
_FILE_MODE: Final = 0o644


@dataclass(frozen=True)
class FileDigest:
    """SHA-256 and size of a written file, as recorded in ``manifest.json["files"]``."""

    sha256: str
    bytes: int

    def to_json(self) -> dict[str, object]:
        """Render as the manifest's ``{"sha256": ..., "bytes": ...}`` entry."""
        return {"sha256": self.sha256, "bytes": self.bytes}


def _dumps(obj: object, path: Path, *, compact: bool) -> bytes:
    try:
        if compact:
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
        else:
            text = json.dumps(obj, sort_keys=True, indent=2, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot encode as strict JSON (no NaN/Infinity allowed): {exc}") from exc
    except TypeError as exc:
        raise TypeError(f"{path}: value is not JSON-serializable: {exc}") from exc
    return (text + "\n").encode("utf-8")


def fsync_dir(path: Path) -> None:
    """Fsync a directory so a just-created or just-renamed entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> FileDigest:
    """Replace ``path`` with ``data`` atomically and durably; return the digest of ``data``."""
    path = Path(path)
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return FileDigest(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


def atomic_write_json(path: Path, obj: object) -> FileDigest:
    """Write ``obj`` as stable JSON (sorted keys, indent 2, trailing newline) via :func:`atomic_write_bytes`.

    Raises ``ValueError`` naming the file if ``obj`` contains NaN or Infinity; nothing is written then.
    """
    path = Path(path)
    return atomic_write_bytes(path, _dumps(obj, path, compact=False))


def file_digest(path: Path) -> FileDigest:
    """Digest a file on disk, streaming so large logs do not need to fit in memory."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(sha256=sha.hexdigest(), bytes=size)


def _repair_torn_tail(path: Path) -> int:
    """Make an existing file end on a line boundary before appending; return bytes dropped.

    A final line left without its newline by a crash is completed if it parses (the reader would
    keep it) and cut off otherwise (the reader would drop it), so the next append cannot glue a
    new record onto a fragment and turn a tolerated torn tail into corruption.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return 0
    if not data or data.endswith(b"\n"):
        return 0
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:
        with open(path, "r+b") as fh:
            fh.truncate(start)
            fh.flush()
            os.fsync(fh.fileno())
        return len(data) - start
    with open(path, "ab") as fh:
        fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return 0


class JsonlAppender:
    """Append-only JSONL writer that fsyncs every record (used for ``heartbeat.jsonl``).

    Safe to share between threads; each :meth:`append` is durable when it returns. Reopening an
    existing file first repairs a torn final line (see ``repaired_bytes``).
    """

    repaired_bytes: int
    """Bytes of a torn, unparseable final line dropped when an existing file was reopened."""
    lines_written: int
    """Records appended through this instance."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        existed = self._path.exists()
        self.repaired_bytes = _repair_torn_tail(self._path) if existed else 0
        self._fh: BinaryIO | None = open(self._path, "ab")  # noqa: SIM115
        if not existed:
            fsync_dir(self._path.parent)
        self.lines_written = 0

    @property
    def path(self) -> Path:
        """The file being appended to."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._fh is None

    def append(self, obj: object) -> None:
        """Write ``obj`` as one compact JSON line and fsync it before returning.

        Raises ``FileNotFoundError`` when the file has been removed while open: the write then
        lands in an unlinked inode that no reader will ever see, so it is not durable.
        """
        line = _dumps(obj, self._path, compact=True)
        with self._lock:
            if self._fh is None:
                raise ValueError(f"{self._path}: append after close")
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._raise_if_unlinked()
            self.lines_written += 1

    def check_linked(self) -> None:
        """Raise ``FileNotFoundError`` if the open file has been removed (a cheap fstat, no write)."""
        with self._lock:
            if self._fh is not None:
                self._raise_if_unlinked()

    def _raise_if_unlinked(self) -> None:
        assert self._fh is not None
        if os.fstat(self._fh.fileno()).st_nlink == 0:
            raise FileNotFoundError(errno.ENOENT, "removed while being appended to", str(self._path))

    def close(self) -> None:
        """Close the file; calling it again is a no-op."""
        with self._lock:
            if self._fh is not None:
                fh, self._fh = self._fh, None
                fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
