"""Deliberate load inside the engine process, for tests of the anomaly table's CPU and memory rows.

Lowering a threshold until an idle engine trips it proves the comparison, not the cause. These
knobs make the cause real: `cpu_burn_threads` threads that hash a buffer in a busy loop (hashlib
releases the GIL, so each thread can take a whole core, and the process's CPU is what `sysmon`
measures), and `hold_memory_mb` megabytes allocated, written and held (resident, so RSS grows by
that much). Both start when the run starts trading and end with it.

They are test knobs only: the defaults do nothing, and a live run that sets either is refused
(`live_setup.live_plan`).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Final

from arbitrage.config.debug import DebugConfig

MB: Final = 1_048_576
BURN_CHUNK_BYTES: Final = 4 * MB
"""Hashed per burn step: long enough to release the GIL, short enough to stop promptly. The buffer
is made by the burner itself, so that every run does not allocate 4 MiB at import for a test knob."""


class DebugLoad:
    """The configured load: `start` allocates and starts burning, `stop` ends both; idle by default."""

    def __init__(self, config: DebugConfig) -> None:
        self.config = config
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._held: bytes | None = None
        self.burn_steps = 0

    def start(self) -> DebugLoad:
        """Allocate the held memory and start the burner threads; returns self."""
        if self.config.hold_memory_mb:
            self._held = b"\xa5" * (self.config.hold_memory_mb * MB)
        for index in range(self.config.cpu_burn_threads):
            thread = threading.Thread(target=self._burn, name=f"debug-cpu-burn-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _burn(self) -> None:
        digest = hashlib.sha256()
        chunk = bytes(range(256)) * (BURN_CHUNK_BYTES // 256)
        while not self._stop.is_set():
            digest.update(chunk)
            self.burn_steps += 1

    def stop(self) -> None:
        """Stop the burners and release the memory; safe to call twice."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        self._held = None
