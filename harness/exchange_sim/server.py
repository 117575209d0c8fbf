"""The HTTP front of the simulator: a threading server on 127.0.0.1 that hands each request to `ExchangeSim`.

Each request gets its own thread, because faults block on purpose: "timeout" holds a request until
the fault clears and `latency_ms` delays every answer, while other requests (and the control API
that clears the fault) must still be served. An answer of None closes the connection unanswered.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from harness.exchange_sim import dialects as d
from harness.exchange_sim.exchange import ExchangeSim


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the simulator's own counters say what it served."""

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = self.server.sim.handle(
                method, parts.path, parse_qs(parts.query), body, headers, parts.query
            )
            if reply is None:
                self.close_connection = True
                return
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, reply: d.Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)


class SimServer(ThreadingHTTPServer):
    """The HTTP front of an `ExchangeSim`, bound to 127.0.0.1 only."""

    daemon_threads = True

    def __init__(self, sim: ExchangeSim, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.sim = sim

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the base URL clients point at."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> SimServer:
        """Serve from a daemon thread and return self, for in-process use."""
        threading.Thread(target=self.serve_forever, args=(0.05,), name="exchange-sim", daemon=True).start()
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the socket."""
        self.sim.close()
        self.shutdown()
        self.server_close()
