"""A size-limited tmpfs, so a test can fill a disk for real (ENOSPC) without touching the host's."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


class MountError(Exception):
    """mount(8) refused; the message carries its stderr."""


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """Mount a `size_kb` KiB tmpfs on `path` (created if missing); unmount it on the way out.

    Needs root (CAP_SYS_ADMIN). A mount still busy at exit (a process holding a file open) is
    detached lazily, so the unmount never fails the test.
    """
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0777", "tmpfs", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise MountError(
            f"mount -t tmpfs on {path} failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=True)
