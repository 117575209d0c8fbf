"""When an alert is retried, how long it waits, when it is given up, and the tally of what happened.

Pure: no clock, no network, no database. The notifier asks the policy what to do after each attempt
and keeps the counts; the delivery log (`alert_store`) and the Telegram client (`telegram`) do the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from arbitrage.config.alerts import AlertsConfig

Status = Literal["SENT", "RETRY", "DLQ", "DISABLED"]
"""A row's status in `alert_deliveries`."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one delivery attempt, as the Telegram client judged it."""

    ok: bool
    http_status: int | None = None
    error: str | None = None
    retryable: bool = True
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What follows an attempt: SENT, RETRY after `delay` seconds, or DLQ (give up)."""

    status: Literal["SENT", "RETRY", "DLQ"]
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Retries with exponential backoff from a base up to a cap, at most `max_attempts` attempts."""

    max_attempts: int
    backoff_base_sec: float
    backoff_cap_sec: float

    @classmethod
    def from_config(cls, config: AlertsConfig) -> DeliveryPolicy:
        """The policy the alerts section configures."""
        return cls(config.max_attempts, config.backoff_base_sec, config.backoff_cap_sec)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based); a Retry-After may lengthen it."""
        delay = self.backoff_base_sec * 2.0 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.backoff_cap_sec)

    def after(self, attempt: int, outcome: Outcome, *, stopping: bool = False) -> Step:
        """The step after attempt `attempt` ended with `outcome`; a stopping notifier never retries."""
        if outcome.ok:
            return Step("SENT")
        if attempt >= self.max_attempts or not outcome.retryable or stopping:
            return Step("DLQ")
        return Step("RETRY", self.backoff(attempt, outcome.retry_after))


@dataclass(slots=True)
class DeliveryCounts:
    """The notifier's tally for kpi.json and metrics; `failing`: the latest finished alert was lost."""

    sent: int = 0
    retried: int = 0
    dead_lettered: int = 0
    disabled: int = 0
    record_failures: int = 0
    failing: bool = False

    def add(self, status: Status, alerts: int = 1) -> None:
        """Count `alerts` attempts that ended with `status`."""
        if status == "SENT":
            self.sent += alerts
            self.failing = False
        elif status == "DLQ":
            self.dead_lettered += alerts
            self.failing = self.failing or alerts > 0
        elif status == "RETRY":
            self.retried += alerts
        else:
            self.disabled += alerts

    def add_record_failure(self) -> None:
        """A delivery-log row could not be written."""
        self.record_failures += 1
