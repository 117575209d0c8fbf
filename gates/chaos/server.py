"""What the chaos servers (PostgreSQL, Redis) share: one child process on a 127.0.0.1 port, stopped
with its own signal and registered with the embedded-server registry so no owner orphans it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

from arbitrage.service_registry import RegisteredServer, ServerRegistry


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ControlledServer:
    """The lifecycle both servers have in common; a subclass starts the process and says how it
    is registered (`_entry`), what stops it (`stop_signal`) and how a frozen one is thawed."""

    stop_signal: ClassVar[signal.Signals]
    stop_timeout_sec: ClassVar[float]

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._registry = ServerRegistry()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    def thaw(self) -> None:
        """Let a frozen server run again (no-op otherwise)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the server (no-op when it runs) and wait until it answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Thaw the server (so it can act on its stop signal), signal it and wait; SIGKILL if it lingers."""
        with self._lock:
            self.thaw()
            process = self._process
            if process is None or process.poll() is not None:
                return
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout=self.stop_timeout_sec)
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
            self._registry.forget(self._entry().data_dir)
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=self.stop_timeout_sec)

    def _entry(self) -> RegisteredServer:
        raise NotImplementedError

    def _register(self, pid: int) -> None:
        entry = self._entry()
        with self._registry.locked():
            self._registry.join(entry)
            self._registry.record_server(entry.data_dir, pid)
