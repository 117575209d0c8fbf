"""A private logger whose records a test can inspect without them reaching the root logger.

Components that log WARNING+ by design take a `logger` argument; handing them this one keeps
those intended records out of the WARN->FAIL policy while the test still asserts on them.
"""

from __future__ import annotations

import itertools
import logging

_ids = itertools.count()


class Records(logging.Handler):
    """Collects every record of its own non-propagating logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(f"tests.records.{next(_ids)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        """Messages logged at exactly this level."""
        return [r.getMessage() for r in self.records if r.levelno == level]

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]
