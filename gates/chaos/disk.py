"""A size-limited tmpfs, and a filler that fills it: a real full disk (ENOSPC) without touching the host's.

The chaos rig mounts one under the engine's evidence root so `disk-full` is a real ENOSPC from
the kernel; the fault suite mounts tiny ones for its own disk tests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

FILL_CHUNKS: Final = (1 << 20, 1 << 12)
"""Fill with 1 MiB writes, then 4 KiB ones (a tmpfs page) so the last page is taken too."""


class MountError(Exception):
    """mount(8) refused; the message carries its stderr."""


def mount_tmpfs(path: Path, size_kb: int) -> Path:
    """Mount a `size_kb` KiB tmpfs on `path` (created if missing). Needs root (CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0777", "tmpfs", str(path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if result.returncode != 0:
        raise MountError(
            f"mount -t tmpfs on {path} failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    return path


def unmount(path: Path) -> None:
    """Unmount `path`; a mount still busy (a process holding a file open) is detached lazily."""
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=True, timeout=30)


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """Mount a `size_kb` KiB tmpfs on `path` (created if missing); unmount it on the way out."""
    mount_tmpfs(path, size_kb)
    try:
        yield path
    finally:
        unmount(path)


def fill_to_enospc(filler: Path) -> int:
    """Write `filler` until its file system answers ENOSPC; return the bytes it holds.

    Any other error propagates: a filler that stopped for another reason has not filled the disk.
    """
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in FILL_CHUNKS:
            block = b"\0" * size
            while True:
                try:
                    written += os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written
