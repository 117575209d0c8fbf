"""A simulator a test module or test owns (the harness's `exchange_sim` is shared and seeded 7)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.exchange_sim.client import SimProcess, start_exchange_sim


@contextlib.contextmanager
def running_sim(*args: str) -> Iterator[SimProcess]:
    """`arbitrage sim *args` for the `with` block, stopped (SIGTERM) when it ends."""
    sim = start_exchange_sim(*args)
    try:
        yield sim
    finally:
        sim.stop()
