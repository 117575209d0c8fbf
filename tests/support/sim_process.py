"""`arbitrage sim` as a subprocess for tests that need a simulator of their own (own seed, flags, keys)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from typing import Any


class SimProcess:
    """A running local exchange simulator and its control API (`/_control/stats`, `/_control/faults`)."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "arbitrage", "sim", "--port", "0", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), f"simulator did not start: {self.url!r}"

    def control(self, path: str, update: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET `/_control/<path>`, or POST `update` to it."""
        data = None if update is None else json.dumps(update).encode()
        request = urllib.request.Request(
            f"{self.url}/_control/{path}", data=data, method="GET" if data is None else "POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            document: dict[str, Any] = json.load(response)
        return document

    def stats(self) -> dict[str, Any]:
        return self.control("stats")

    def faults(self, **update: Any) -> dict[str, Any]:
        return self.control("faults", update)

    def private_requests(self) -> dict[str, int]:
        """Every private request served, per "METHOD /path", refused ones included."""
        requests: dict[str, int] = self.stats()["private_requests"]
        return requests

    def private_calls(self) -> int:
        return sum(self.private_requests().values())

    def stop(self) -> int | None:
        """SIGTERM and wait; the simulator exits 0 on SIGTERM."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)
