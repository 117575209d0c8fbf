"""How early a run with a duration stops trading, so that its stop-time flatten ends on time.

A run's wallclock includes its close-out (DESIGN §4: within 5 % of the duration). On paper the
flatten is instant, but a live flatten sends two market orders per open position, one position after
another, and the venues' rate limits bound how fast they go: eight positions took about 1.4 s against
the simulator, three times the 0.5 s a 10-second run may run over. So the loop ends its last tick
early by the time the flatten is expected to take: the open positions times the median wall time of
the run's latest order round trips (entries and exits alike: two market orders each), at most the
stop's venue budget (`live.stop_venue_sec`), past which the flatten gives up anyway. The median of
the latest few, not the mean of all, so that a venue that was slow for a while earlier in the run
does not end it seconds early.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Final

WINDOW: Final = 9
"""The latest round trips the estimate is the median of."""


class FlattenLead:
    """The wall times of the run's latest order round trips, and the lead they give the loop's end."""

    def __init__(self) -> None:
        self._latest: deque[float] = deque(maxlen=WINDOW)

    def round_trip(self, seconds: float) -> None:
        """An entry that reached the venues (filled, or one leg filled and unwound), or an exit attempt."""
        self._latest.append(seconds)

    def lead_sec(self, open_positions: int, cap_sec: float) -> float:
        """Seconds before the run's duration at which the loop must stop for the flatten of
        `open_positions` to end by it; 0.0 with nothing to close or nothing measured yet."""
        if open_positions <= 0 or not self._latest:
            return 0.0
        return min(cap_sec, open_positions * statistics.median(self._latest))
