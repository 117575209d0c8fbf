"""A per-user registry of embedded servers, so that no server outlives all of its owners.

pgserver and the embedded Redis count their users in a file inside the data directory. An owner
killed with SIGKILL never removes itself there, and a data directory nobody opens again (a test
run's temp dir) is never looked at again. So every embedded server start records itself here
(data dir, server process, owner processes) in a directory keyed by uid under the system temp
dir, and every start and stop sweeps the registry, stopping servers whose owners are all gone.
Processes are identified by pid and start time, so a recycled pid never passes for an owner.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import psutil
from pydantic import BaseModel, ValidationError

log = logging.getLogger("arbitrage.services")

STOP_TIMEOUT_SEC: Final = 10.0
_POLL_SEC: Final = 0.02


class RegistryError(Exception):
    """The registry directory is unusable (not ours, not a directory); the message names it."""


class ProcessRef(BaseModel):
    """A process as pid plus start time: a pid recycled by an unrelated process does not match."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        """The running process `pid`, or None when there is none (zombies count as gone)."""
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return cls(pid=pid, started=process.create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def alive(self) -> bool:
        """True while this very process (same pid, same start time) runs and is not a zombie."""
        current = ProcessRef.of(self.pid)
        return current is not None and current.started == self.started


class RegisteredServer(BaseModel):
    """One embedded server: where its data is, how to find and stop it, and who uses it."""

    kind: str
    data_dir: Path
    pid_file: Path
    """Holds the server's pid on its first line, for a server that died before it was recorded."""
    process_name: str
    """The server's executable name, checked before a pid read from `pid_file` is signalled."""
    stop_signal: int
    handle_file: Path | None = None
    """A JSON list of owner pids kept by the server's library; emptied when the server is swept."""
    server: ProcessRef | None = None
    owners: list[ProcessRef] = []

    def live_owners(self) -> list[ProcessRef]:
        return [owner for owner in self.owners if owner.alive()]

    def server_process(self) -> ProcessRef | None:
        """The running server: the recorded process, else the one named in `pid_file`."""
        if self.server is not None:
            return self.server if self.server.alive() else None
        try:
            pid = int(self.pid_file.read_text().split("\n", 1)[0].strip())
        except (OSError, ValueError):
            return None
        found = ProcessRef.of(pid)
        try:
            name = psutil.Process(pid).name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return found if found is not None and name == self.process_name else None


def default_registry_dir() -> Path:
    """`<tempdir>/arb-services-<uid>`: one registry per user, shared by all of that user's processes."""
    return Path(tempfile.gettempdir()) / f"arb-services-{os.getuid()}"


def _alive(pid: int) -> bool:
    return ProcessRef.of(pid) is not None


def prune_handle_file(path: Path) -> list[int]:
    """Drop dead pids from a JSON list of owner pids; return the live ones."""
    try:
        pids = json.loads(path.read_text() or "[]")
    except (OSError, json.JSONDecodeError):
        return []
    if not isinstance(pids, list):
        pids = []
    live = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if live != pids:
        with contextlib.suppress(OSError):
            path.write_text(json.dumps(live))
    return live


def _continue_tree(pid: int) -> None:
    """SIGCONT `pid` and its descendants: a stopped process (a fault test's SIGSTOP) cannot act on
    its stop signal, and a stopped child of a killed server would be left behind for good."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for member in tree:
        with contextlib.suppress(psutil.Error):
            member.send_signal(signal.SIGCONT)


def stop_process(process: ProcessRef, stop_signal: int, timeout: float = STOP_TIMEOUT_SEC) -> None:
    """Send `stop_signal` (stopped processes of its tree continued first), wait up to `timeout`
    for the process to go, then SIGKILL it."""
    if process.alive():
        _continue_tree(process.pid)
    for sig in (stop_signal, signal.SIGKILL):
        if not process.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        deadline = time.monotonic() + timeout
        while process.alive() and time.monotonic() < deadline:
            time.sleep(_POLL_SEC)


class ServerRegistry:
    """The registry directory; every method but `locked` expects the caller to hold its lock."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_registry_dir()

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            info = self.directory.lstat()
        except OSError as exc:
            raise RegistryError(f"embedded server registry {self.directory} is unusable: {exc}") from None
        if not self.directory.is_dir() or self.directory.is_symlink() or info.st_uid != os.getuid():
            raise RegistryError(
                f"embedded server registry {self.directory} is not a directory owned by uid {os.getuid()}"
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's lock (a flock: released by the kernel when its holder dies)."""
        self._ensure_dir()
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _path(self, data_dir: Path) -> Path:
        digest = hashlib.sha256(os.fsencode(data_dir.resolve())).hexdigest()[:20]
        return self.directory / f"{digest}.json"

    def entries(self) -> list[RegisteredServer]:
        """Every registered server; unreadable entries are dropped."""
        found: list[RegisteredServer] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(RegisteredServer.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError):
                path.unlink(missing_ok=True)
        return found

    def get(self, data_dir: Path) -> RegisteredServer | None:
        try:
            return RegisteredServer.model_validate_json(self._path(data_dir).read_bytes())
        except (OSError, ValidationError):
            return None

    def save(self, entry: RegisteredServer) -> None:
        path = self._path(entry.data_dir)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(entry.model_dump_json())
        os.replace(temporary, path)

    def forget(self, data_dir: Path) -> None:
        self._path(data_dir).unlink(missing_ok=True)

    def join(self, entry: RegisteredServer) -> None:
        """Add this process as an owner of `entry.data_dir`, registering the server if new."""
        me = ProcessRef.of(os.getpid())
        assert me is not None
        current = self.get(entry.data_dir) or entry
        current.owners = [owner for owner in current.live_owners() if owner.pid != me.pid] + [me]
        self.save(current)

    def record_server(self, data_dir: Path, pid: int) -> None:
        """Record the server process serving `data_dir` (after it started, or was joined)."""
        current = self.get(data_dir)
        if current is not None:
            current.server = ProcessRef.of(pid)
            self.save(current)

    def leave(self, data_dir: Path) -> None:
        """Remove this process from the owners of `data_dir`."""
        current = self.get(data_dir)
        if current is not None:
            current.owners = [o for o in current.live_owners() if o.pid != os.getpid()]
            self.save(current)

    def sweep(self, keep: Path | None = None) -> list[RegisteredServer]:
        """Stop every server whose owners are all gone (but `keep`'s, which a caller is joining).

        Returns the servers it stopped. Entries of servers no longer running are removed.
        """
        stopped: list[RegisteredServer] = []
        kept = keep.resolve() if keep is not None else None
        for entry in self.entries():
            owners = entry.live_owners()
            server = entry.server_process()
            if owners or entry.data_dir == kept:
                if owners != entry.owners:
                    entry.owners = owners
                    self.save(entry)
                continue
            if server is not None:
                if entry.owners:
                    dead = ", ".join(str(owner.pid) for owner in entry.owners)
                    log.info(
                        "stopping embedded %s for %s (pid %d): the processes using it (%s) are gone",
                        entry.kind, entry.data_dir, server.pid, dead,
                    )  # fmt: skip
                stop_process(server, entry.stop_signal)
                stopped.append(entry)
            if entry.handle_file is not None and entry.handle_file.exists():
                with contextlib.suppress(OSError):
                    entry.handle_file.write_text("[]")
            self.forget(entry.data_dir)
        return stopped


def sweep_orphaned_servers(registry: ServerRegistry | None = None) -> list[RegisteredServer]:
    """Stop this user's embedded servers whose owners are all gone; return them.

    For commands that do not start embedded servers themselves (starts and stops sweep anyway).
    """
    registry = registry or ServerRegistry()
    with registry.locked():
        return registry.sweep()
