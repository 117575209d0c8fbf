"""A loopback Telegram Bot API: `POST /bot<token>/sendMessage` answered like the real one.

It answers 200 with `{"ok": true, "result": {...}}`, or, when told to, the real error bodies
for 500, 429 (with `parameters.retry_after`) and 401. A wrong token is answered 401 like
Telegram does. Every request is recorded, so a test can check what was actually sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server saw it, the status it answered, and when (monotonic)."""

    token: str
    method: str
    chat_id: object
    text: str
    answered: int
    at: float


class FakeTelegram:
    """A Bot API server on 127.0.0.1 with a free port; use as a context manager."""

    def __init__(self, token: str, status: int = 200, retry_after: int = 1) -> None:
        self.token = token
        self.status = status
        self.retry_after = retry_after
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._message_id = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-telegram",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """What `alerts.api_base_url` should be set to."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, status: int) -> None:
        """Answer every following request with this status."""
        with self._cond:
            self.status = status

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` requests have arrived; False at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def texts(self) -> list[str]:
        with self._cond:
            return [r.text for r in self.received]

    def _respond(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        token, _, method = path.removeprefix("/bot").partition("/")
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        with self._cond:
            if not path.startswith("/bot") or method != "sendMessage":
                status = 404
            elif token != self.token:
                status = 401
            else:
                status = self.status
            self.received.append(
                Received(
                    token,
                    method,
                    payload.get("chat_id"),
                    str(payload.get("text", "")),
                    status,
                    time.monotonic(),
                )
            )
            self._message_id += 1
            message_id = self._message_id
            self._cond.notify_all()
        if status == 200:
            result = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": payload.get("chat_id"), "type": "private"},
                "text": payload.get("text", ""),
            }
            return status, {"ok": True, "result": result}
        description = _DESCRIPTIONS.get(status, "Error").format(retry_after=self.retry_after)
        doc: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if status == 429:
            doc["parameters"] = {"retry_after": self.retry_after}
        return status, doc

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, doc = fake._respond(self.path, self.rfile.read(length))
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
