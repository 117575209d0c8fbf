"""Loopback ports for tests that need an address nothing answers on."""

from __future__ import annotations

import socket


def refused_port() -> int:
    """A 127.0.0.1 port that was free a moment ago: connecting to it is refused.

    The kernel hands out ephemeral ports in turn, so the port stays unused for the short while
    a test needs it.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
