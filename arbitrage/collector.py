"""The cyclic garbage collector, paused while the `arbitrage` command loads its code.

Loading a run's modules (pydantic's validators, the database and cache clients, the engine's
classes) allocates well over a hundred thousand objects that live as long as the process. The
collector, started every few hundred allocations, walked them again and again while they were
being made: about a tenth of an `arbitrage run --ticks 1`, for nothing it could free. The entry
point pauses it; once the command's code is loaded, `resume` moves what loading made out of the
collector's way for good (`gc.freeze`) and turns it back on, so the run itself collects as usual
and never rescans those objects. The few cycles loading leaves behind (under a thousand objects
of some hundred thousand) are frozen with the rest rather than paid for with a full collection.

Only the entry point pauses: code that calls `arbitrage.cli.main` in a process of its own (tests)
keeps its collector as it was, and `resume` is then a no-op.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Turn the collector off until `resume`, unless something else already had."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Freeze what exists now out of the collector's reach and turn it back on, if `pause` stopped it."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
