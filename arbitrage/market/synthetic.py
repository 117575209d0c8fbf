"""The in-process market source: the seeded `MarketModel` behind the `MarketSource` interface."""

from __future__ import annotations

import time
from collections.abc import Sequence

from arbitrage.market.book import MarketSnapshot
from arbitrage.market.model import MarketModel


class SyntheticSource:
    """A `MarketSource` that advances a seeded `MarketModel` one tick per snapshot.

    Runs without network access use it; books are stamped with the wall clock so staleness
    checks behave as they would live, while prices depend on the seed alone.
    """

    name = "synthetic"
    does_io = False

    def __init__(self, seed: int, symbols: Sequence[str], dt_sec: float, levels: int = 20) -> None:
        self.model = MarketModel(seed, symbols, dt_sec=dt_sec, levels=levels)

    def snapshot(self) -> MarketSnapshot:
        """Advance the model one tick and return its books stamped with the current time."""
        return self.model.step(now_ms=int(time.time() * 1000))

    def close(self) -> None:
        """Nothing to release: the model lives in process."""
