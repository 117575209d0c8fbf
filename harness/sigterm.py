"""SIGTERM ends a pytest session the way Ctrl-C does: fixtures are torn down first.

Python's default for SIGTERM is to die on the spot, so a test session stopped by `kill`, by a CI
runner's cancel or by a supervisor never runs its finalizers and leaves its embedded PostgreSQL
and Redis running. Here the first SIGTERM raises ``pytest.exit`` in the main thread, which pytest
handles like an interrupt (session fixtures finalize); further SIGTERMs are ignored so they cannot
cut the teardown short, and SIGKILL stays the way to force an exit.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Final

import pytest

SIGTERM_EXIT_CODE: Final = 128 + signal.SIGTERM
"""The shell's code for a SIGTERM death, so callers still see how the session ended."""


class SigtermPlugin:
    """Installs the SIGTERM handler for the session and restores the previous one after it."""

    def __init__(self) -> None:
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pytest.exit("received SIGTERM: tearing fixtures down", returncode=SIGTERM_EXIT_CODE)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if current not in (signal.SIG_DFL, None):
            return
        self._previous = current
        signal.signal(signal.SIGTERM, self._handler)
        self._installed = True

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
