"""The `symbols` section: which markets a run trades."""

from __future__ import annotations

from typing import Literal

from arbitrage.config.base import Frozen


class SymbolsConfig(Frozen):
    """The TopN universe: KRW markets that also trade against USDT, ranked by KRW volume."""

    universe: Literal["top5", "top10", "top20", "top50"] = "top10"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def top_n(self) -> int:
        """How many markets the universe names (5, 10 or 20)."""
        return int(self.universe.removeprefix("top"))
