"""What a guard and an anomaly row report when crossed, so that the run answers both the same way.

A guard always stops the run; an anomaly row stops it only when its action is `kill`. Either way
the trip is recorded in event_log under its own event type and, when it stops the run, activates
the kill switch with the trip's kind as the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Trip:
    """A crossed limit: what crossed it (`name`), the observed value against the limit, and in words."""

    kind: ClassVar[str]
    event_type: ClassVar[str]

    name: str
    observed: float
    limit: float
    detail: str

    @property
    def stop_reason(self) -> str:
        return f"{self.kind.upper()}_{self.name.upper()}"

    @property
    def stops_run(self) -> bool:
        """Whether the trip ends the run (and activates the kill switch)."""
        return True

    def to_event(self) -> dict[str, Any]:
        """The event_log payload of the trip."""
        raise NotImplementedError
