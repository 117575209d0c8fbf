"""Which process owns a run, and whether it is gone: what crash recovery and journal replay decide on.

A pid alone is not enough: after a crash the pid can be reused by an unrelated process. The
owner is (host, pid, process start time); it is gone when, on this host, no live process has that
pid or the process that has it started at another time. An owner on another host is never judged.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Literal

import psutil

OWNER_START_SLACK_SEC = 2.0

OwnerState = Literal["alive", "gone", "foreign", "unknown"]


def owner_state(
    host: str | None,
    pid: int | None,
    process_started: float | None,
    local_host: str,
    live_create_time: float | None,
) -> OwnerState:
    """Whether a `running` row's owner process is still that run's engine.

    `live_create_time` is the start time of the process now holding `pid` on this host (None when
    no live process holds it). A row of another host is `foreign`; a row without owner facts is
    `unknown`; a pid that is free, or held by a process started at another time (a reused pid),
    is `gone`. With no recorded start time, a held pid counts as `alive`: never settle on a guess.
    """
    if host is None or pid is None:
        return "unknown"
    if host != local_host:
        return "foreign"
    if live_create_time is None:
        return "gone"
    if process_started is not None and abs(live_create_time - process_started) > OWNER_START_SLACK_SEC:
        return "gone"
    return "alive"


def process_create_time(pid: int) -> float | None:
    """The start time of the live process holding `pid`, or None when it is free or a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


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

    def state(self) -> OwnerState:
        """`owner_state` of this identity, as seen from this host now."""
        return owner_state(
            self.host, self.pid, self.started, socket.gethostname(), process_create_time(self.pid)
        )
