"""A client call in a thread of its own, so a test can wait on it with a deadline (a frozen peer)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Call:
    """Runs `call` at once in a daemon thread; `returned_within` waits for it up to a deadline."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), name="deadline-call", daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            self.result = call()
        except BaseException as exc:
            self.error = exc

    def returned_within(self, seconds: float) -> bool:
        self._thread.join(seconds)
        return not self._thread.is_alive()
