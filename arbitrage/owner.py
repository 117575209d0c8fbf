"""Which process owns a run, and whether it is gone: what crash recovery and journal replay decide on.

A pid alone is not enough: after a crash the pid can be reused by an unrelated process. The
owner is (host, pid, process start time); it is gone when, on this host, no process has that pid
or the process that has it started at another time. An owner on another host is never judged.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import psutil

START_TIME_SLACK_SEC = 2.0


@dataclass(frozen=True)
class OwnerProcess:
    """A process identity that survives pid reuse."""

    pid: int
    host: str
    started: float

    @classmethod
    def current(cls) -> OwnerProcess:
        return cls(os.getpid(), socket.gethostname(), psutil.Process().create_time())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OwnerProcess:
        return cls(int(data["pid"]), str(data["host"]), float(data["started"]))

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "started": self.started}

    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def is_gone(self) -> bool:
        """True when this host has no such process any more (a zombie or a reused pid counts as gone)."""
        if not self.on_this_host():
            return False
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            return abs(process.create_time() - self.started) > START_TIME_SLACK_SEC
        except psutil.NoSuchProcess:
            return True
