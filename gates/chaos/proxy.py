"""A TCP fault proxy between the engine and PostgreSQL or Redis: chaos's network faults, applied outside.

The engine under test runs unmodified; it is pointed at this proxy instead of the server, and
the proxy decides what the wire does. Modes:

- `pass`: forward both ways.
- `reset`: abort every open connection with a TCP RST (SO_LINGER 0) on both sides, then accept
  and forward new connections as `pass` does.
- `blackhole`: keep every socket open but forward no byte either way; new connections are
  accepted and held without reaching the server. Leaving blackhole resets every held connection
  (a real partition that heals leaves the peers with stale state; RST is the honest end of it).
- `delay`: forward, each chunk `delay_ms` later.

Everything runs on one asyncio loop in one daemon thread; `close()` stops it within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, cast, get_args

Mode = Literal["pass", "reset", "blackhole", "delay"]
MODES: Final[tuple[str, ...]] = get_args(Mode)
CHUNK_BYTES: Final = 65536
MAX_CONNECTIONS: Final = 256
"""More than any engine opens; one beyond it is refused, so a runaway client cannot grow the proxy."""
CONTROL_TIMEOUT_SEC: Final = 5.0
CONNECT_TIMEOUT_SEC: Final = 5.0
_LINGER_RST: Final = struct.pack("ii", 1, 0)
T = TypeVar("T")


class ProxyError(Exception):
    """The proxy was misused (unknown mode, not started, closed) or its loop did not answer."""


@dataclass
class ProxyStats:
    """What went through the proxy since it started."""

    accepted: int = 0
    reset: int = 0
    refused: int = 0
    bytes_up: int = 0
    """Client to server."""
    bytes_down: int = 0
    """Server to client."""
    open: int = 0


@dataclass(eq=False)
class _Link:
    """One client connection and, unless it arrived in blackhole, its connection to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST: linger 0, then abort (no FIN, no waiting for unsent data)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


class FaultProxy:
    """Listens on `listen_host` (a free port), forwards to `target_host:target_port`, faults on demand."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self._mode: Mode = "pass"
        self._delay_sec = 0.0
        self._links: set[_Link] = set()
        self._stats = ProxyStats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._unblocked: asyncio.Event | None = None
        self._port: int | None = None
        self._closed = False

    # -- control (any thread) ------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port clients connect to (known once `start()` returned)."""
        if self._port is None:
            raise ProxyError("the fault proxy is not started")
        return self._port

    @property
    def mode(self) -> Mode:
        return self._mode

    def start(self) -> FaultProxy:
        """Bind a free port and start forwarding (mode `pass`); returns self."""
        if self._closed or self._thread is not None:
            raise ProxyError("a fault proxy starts once")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"fault-proxy-{self.target[1]}", daemon=True
        )
        self._thread.start()
        self._call(self._listen())
        return self

    def set_mode(self, mode: str, delay_ms: float = 0) -> int:
        """Switch mode (see the module doc); returns how many connections it reset on the way."""
        if mode not in MODES:
            raise ProxyError(f"unknown fault proxy mode {mode!r}; known: {', '.join(MODES)}")
        if delay_ms < 0:
            raise ProxyError(f"delay_ms must be >= 0, got {delay_ms}")
        return self._call(self._set_mode(cast(Mode, mode), delay_ms / 1000.0))

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(**vars(self._stats))

    def close(self) -> None:
        """Abort every connection, stop listening and stop the loop's thread. Idempotent, bounded."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(ProxyError, RuntimeError):
                self._call(self._shutdown(), force=True)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CONTROL_TIMEOUT_SEC)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T], *, force: bool = False) -> T:
        if self._loop is None or (self._closed and not force):
            coroutine.close()
            raise ProxyError("the fault proxy is not running")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=CONTROL_TIMEOUT_SEC)
        except TimeoutError:
            future.cancel()
            raise ProxyError(
                f"the fault proxy's loop did not answer within {CONTROL_TIMEOUT_SEC:g}s"
            ) from None

    # -- the loop's side -----------------------------------------------------------------------
    async def _listen(self) -> None:
        self._unblocked = asyncio.Event()
        self._unblocked.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0, backlog=64)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _set_mode(self, mode: Mode, delay_sec: float) -> int:
        assert self._unblocked is not None
        leaving_blackhole = self._mode == "blackhole" and mode != "blackhole"
        reset = self._reset_all() if mode == "reset" or leaving_blackhole else 0
        self._mode, self._delay_sec = mode, delay_sec if mode == "delay" else 0.0
        if mode == "blackhole":
            self._unblocked.clear()
        else:
            self._unblocked.set()
        return reset

    def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            self._drop(link, rst=True)
        with self._lock:
            self._stats.reset += len(links)
        return len(links)

    def _drop(self, link: _Link, *, rst: bool) -> None:
        if link not in self._links:
            return
        self._links.discard(link)
        for writer in (link.client, link.server):
            if writer is None:
                continue
            if rst:
                _abort(writer)
            else:
                writer.close()
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()
        with self._lock:
            self._stats.open = len(self._links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed or len(self._links) >= MAX_CONNECTIONS:
            with self._lock:
                self._stats.refused += 1
            _abort(writer)
            return
        link = _Link(client=writer)
        self._links.add(link)
        with self._lock:
            self._stats.accepted += 1
            self._stats.open = len(self._links)
        if self._mode == "blackhole":
            return
        try:
            server_reader, server_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target), CONNECT_TIMEOUT_SEC
            )
        except (OSError, TimeoutError):
            self._drop(link, rst=True)
            return
        if link not in self._links:
            _abort(server_writer)
            return
        link.server = server_writer
        link.tasks = [
            asyncio.create_task(self._pump(link, reader, server_writer, up=True)),
            asyncio.create_task(self._pump(link, server_reader, writer, up=False)),
        ]

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        assert self._unblocked is not None
        try:
            while data := await reader.read(CHUNK_BYTES):
                if self._delay_sec > 0:
                    await asyncio.sleep(self._delay_sec)
                await self._unblocked.wait()
                writer.write(data)
                await writer.drain()
                with self._lock:
                    if up:
                        self._stats.bytes_up += len(data)
                    else:
                        self._stats.bytes_down += len(data)
            if writer.can_write_eof():
                writer.write_eof()
            if link.server is not None and all(
                task.done() or task is asyncio.current_task() for task in link.tasks
            ):
                self._drop(link, rst=False)
        except (OSError, asyncio.IncompleteReadError):
            self._drop(link, rst=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_all()
        if self._unblocked is not None:
            self._unblocked.set()
