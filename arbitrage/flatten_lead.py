"""How early a run with a duration stops trading, so that its stop-time flatten ends on time.

A run's wallclock includes its close-out (DESIGN §4: within 5 % of the duration). On paper the
flatten is instant, but a live flatten sends two market orders per open position, one position after
another, and the venues' rate limits bound how fast they go: eight positions took about 1.4 s against
the simulator, three times the 0.5 s a 10-second run may run over. So the loop ends its last tick
early by the time the flatten is expected to take: the open positions times the mean wall time of
this run's own exits so far (of its entries while it has none: two orders each as well), at most
the stop's venue budget (`live.stop_venue_sec`), past which the flatten gives up anyway.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FlattenLead:
    """The wall times of the run's order round trips, and the lead they give the loop's end."""

    entries: int = 0
    entry_sec: float = 0.0
    """Entries that reached the venues (filled, or one leg filled and unwound), and their total time."""
    exits: int = 0
    exit_sec: float = 0.0
    """Exit attempts (closed or failed), and their total time."""

    def entered(self, seconds: float) -> None:
        self.entries += 1
        self.entry_sec += seconds

    def exited(self, seconds: float) -> None:
        self.exits += 1
        self.exit_sec += seconds

    def lead_sec(self, open_positions: int, cap_sec: float) -> float:
        """Seconds before the run's duration at which the loop must stop for the flatten of
        `open_positions` to end by it; 0.0 with nothing to close or nothing measured yet."""
        count, total = (self.exits, self.exit_sec) if self.exits else (self.entries, self.entry_sec)
        if open_positions <= 0 or not count:
            return 0.0
        return min(cap_sec, open_positions * total / count)
