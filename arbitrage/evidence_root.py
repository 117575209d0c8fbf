"""Proving the evidence root writable before anything starts.

Permission bits say little when the engine runs as root, and nothing about a read-only mount,
/proc, or a regular file in the path, so the check creates a probe (a directory with a file
in it, like a run's evidence directory) and removes it again, along with any parent it had
to create. The filesystem is left as it was found.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _missing_parents(root: Path) -> list[Path]:
    missing: list[Path] = []
    current = root
    while not current.exists() and not current.is_symlink() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing


def _probe(root: Path) -> None:
    probe = Path(tempfile.mkdtemp(prefix=".write-probe-", dir=root))
    try:
        fd = os.open(probe / "probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def unwritable_reason(root: Path) -> str | None:
    """Why a run could not write its evidence under `root`, or None when it can."""
    if root.exists() and not root.is_dir():
        return "exists and is not a directory"
    missing = _missing_parents(root)
    try:
        try:
            root.mkdir(parents=True, exist_ok=True)
            _probe(root)
        finally:
            for created in missing:
                with contextlib.suppress(OSError):
                    created.rmdir()
    except OSError as exc:
        return f"cannot be written: {exc.strerror or type(exc).__name__}"
    return None
