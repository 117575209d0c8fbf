"""The one client of `arbitrage sim` run as a subprocess: start it, drive its faults, read its counters.

The pytest fixtures, chaos and the integration tests all need a simulator they own and
re-configure while an engine reads it; this is that client, with no pytest in it (the simulator
behind the process is `harness.exchange_sim.exchange.ExchangeSim`).
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from harness.cli_process import start_cli

SIM_START_TIMEOUT_SECONDS: Final = 30.0
_HTTP_TIMEOUT_SECONDS: Final = 5.0
HEALTHY: Final[Mapping[str, Any]] = {
    "faults": [], "latency_ms": 0, "error_rate": 0.0, "markets": None, "venues": None, "reject_orders": [],
    "reject_after": {},
}  # fmt: skip
"""Every fault setting of the control API at its healthy value."""


class SimUnavailable(Exception):
    """This build's CLI has no ``arbitrage sim`` command."""


def book_requests(stats: Mapping[str, Any]) -> int:
    """Upbit order-book requests in `stats`: what `SimProcess.stats` or `configure` returned."""
    return int(stats["requests"].get("/v1/orderbook", 0))


class SimProcess:
    """A running ``arbitrage sim`` and its control API (``/_control/stats``, ``/_control/faults``)."""

    def __init__(self, process: subprocess.Popen[str], url: str, logs: list[str]) -> None:
        self.process = process
        self.url = url
        self.logs = logs

    def _request(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS) as response:
                document: dict[str, Any] = json.loads(response.read().decode())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise RuntimeError(f"exchange sim {request.method} {path}: HTTP {error.code}: {detail}") from None
        return document

    def stats(self) -> dict[str, Any]:
        """Requests per route, the active faults, latency, error rate and the model's tick."""
        return self._request("/_control/stats")

    def book_requests(self) -> int:
        """Upbit order-book requests served so far: one per tick an engine fetched (it names every market)."""
        return book_requests(self.stats())

    def configure(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Change only the settings named in `update` (the others keep their values); return the new state."""
        return self._request("/_control/faults", update)

    def set_faults(
        self,
        faults: Sequence[str | Mapping[str, Any]] = (),
        *,
        latency_ms: int = 0,
        error_rate: float = 0.0,
        markets: Sequence[str] | None = None,
        venues: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Replace the whole fault set (faults not listed are cleared); ``markets``/``venues`` scope it."""
        body: dict[str, Any] = {
            "faults": list(faults),
            "latency_ms": latency_ms,
            "error_rate": error_rate,
            "markets": None if markets is None else list(markets),
        }
        if venues is not None:
            body["venues"] = list(venues)
        return self._request("/_control/faults", body)

    def clear(self) -> None:
        """Back to a healthy exchange: no fault, no latency, no error rate, no refused orders."""
        self.configure(HEALTHY)

    def private_requests(self) -> dict[str, int]:
        """Every private (signed) request served, per "METHOD /path", refused ones included."""
        requests: dict[str, int] = self.stats()["private_requests"]
        return requests

    def private_calls(self) -> int:
        """How many private requests the simulator has served in all."""
        return sum(self.private_requests().values())

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """`with start_exchange_sim(...) as sim:` stops the simulator when the block ends."""
        self.stop()

    def stop(self) -> int:
        """SIGTERM (the simulator exits 0 on it), SIGKILL if it is still there 5 s later; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def start_exchange_sim(*args: str, cwd: Path | None = None) -> SimProcess:
    """Start ``arbitrage sim --port 0`` with the flags `args` and wait for its URL line."""
    process: subprocess.Popen[str] = start_cli(
        "sim", "--port", "0", *args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    logs: list[str] = []
    first: queue.Queue[str | None] = queue.Queue()

    def pump_stdout(stream: Any) -> None:
        for line in stream:
            first.put(line.strip())
        first.put(None)

    def pump_stderr(stream: Any) -> None:
        for line in stream:
            logs.append(line.rstrip("\n"))

    for target, stream in ((pump_stdout, process.stdout), (pump_stderr, process.stderr)):
        threading.Thread(target=target, args=(stream,), name="exchange-sim-pipe", daemon=True).start()
    try:
        line = first.get(timeout=SIM_START_TIMEOUT_SECONDS)
    except queue.Empty:
        line = None
    if line is not None and re.fullmatch(r"http://127\.0\.0\.1:\d+", line):
        return SimProcess(process, line, logs)
    sim = SimProcess(process, "", logs)
    sim.stop()
    text = "\n".join(logs[-20:])
    if process.returncode == 2 and "invalid choice: 'sim'" in text:
        raise SimUnavailable(text.strip().splitlines()[-1])
    raise RuntimeError(f"arbitrage sim did not print its URL (first stdout line {line!r}); stderr:\n{text}")
