"""Waits on a venue end at their deadline (`order_lookup.before`): the stop's, and a lookup's budget.

A live run that is stopping must not wait on a slow venue past its budget: a wait still running
when the deadline comes is cancelled and reported (`DeadlinePassed`), the deadline is asked
again while waiting (a stop can be requested mid-wait), and no lookup starts after it. Outside a
stop, a lookup request still unanswered when the lookup budget is spent is abandoned too, so that
resolving an order never holds the trading loop for the client's whole timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import pytest

from arbitrage.order_lookup import (
    BUDGET_SPENT,
    PLACED,
    STOPPED_LOOKING,
    UNKNOWN,
    DeadlinePassed,
    LookupPolicy,
    before,
    no_deadline,
    passed,
    resolve,
    sooner,
)
from arbitrage.stop_request import StopRequest


class Slow:
    """An awaitable venue call that answers after `seconds`, and says whether it was cancelled."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cancelled = False
        self.calls = 0
        self.first_call_at: float | None = None

    async def call(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.first_call_at is None:
            self.first_call_at = time.monotonic()
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return {"id": "answered"}

    def stop_after_first_call(self, seconds: float) -> float | None:
        """A stop deadline `seconds` after the first call was sent (not after the test began, which a
        loaded machine can turn into a stop before any call), None until then."""
        return None if self.first_call_at is None else self.first_call_at + seconds


def test_without_a_stop_the_wait_gets_its_answer() -> None:
    venue = Slow(0.05)
    assert asyncio.run(before(no_deadline, venue.call())) == {"id": "answered"}
    assert not venue.cancelled


def test_a_deadline_that_passes_cancels_the_wait() -> None:
    venue = Slow(60.0)
    with pytest.raises(DeadlinePassed):
        asyncio.run(before(lambda: venue.stop_after_first_call(0.1), venue.call()))
    assert venue.cancelled


def test_a_stop_requested_mid_wait_is_seen() -> None:
    stop = StopRequest()
    venue = Slow(60.0)

    async def wait() -> Mapping[str, Any]:
        asyncio.get_running_loop().call_later(0.1, stop.request, "SIGTERM")
        return await before(lambda: stop.deadline(0.0), venue.call())

    with pytest.raises(DeadlinePassed):
        asyncio.run(wait())
    assert venue.cancelled and stop.reason == "SIGTERM"


def test_no_lookup_starts_after_the_deadline() -> None:
    venue = Slow(0.0)
    found = asyncio.run(resolve(venue.call, LookupPolicy(), lambda: time.monotonic() - 1.0))
    assert (found.outcome, found.attempts, found.last_error, venue.calls) == (UNKNOWN, 0, STOPPED_LOOKING, 0)


def test_a_lookup_in_flight_at_the_deadline_is_abandoned_as_unknown() -> None:
    venue = Slow(60.0)
    stop = partial(venue.stop_after_first_call, 0.1)
    found = asyncio.run(resolve(venue.call, LookupPolicy(budget_sec=120.0), stop))
    assert (found.outcome, found.attempts, venue.cancelled) == (UNKNOWN, 1, True)


def test_the_stop_deadline_counts_from_the_first_request() -> None:
    stop = StopRequest()
    assert stop.deadline(4.0) is None and not passed(lambda: stop.deadline(4.0))
    before_request = time.monotonic()
    stop.request("SIGTERM")
    first = stop.requested_at
    stop.request("GUARD")
    assert first is not None and stop.requested_at == first and first >= before_request
    assert stop.deadline(4.0) == first + 4.0
    assert passed(lambda: stop.deadline(0.0)) and not passed(lambda: stop.deadline(3600.0))


def test_sooner_is_the_earlier_of_the_two_deadlines() -> None:
    assert sooner(no_deadline, 5.0)() == 5.0
    assert sooner(lambda: 3.0, 5.0)() == 3.0
    assert sooner(lambda: 7.0, 5.0)() == 5.0


def test_a_lookup_in_flight_when_the_budget_is_spent_is_abandoned_as_unknown() -> None:
    venue = Slow(60.0)
    found = asyncio.run(resolve(venue.call, LookupPolicy(budget_sec=0.2, interval_sec=0.05)))
    assert (found.outcome, found.attempts, found.last_error) == (UNKNOWN, 1, BUDGET_SPENT)
    assert venue.cancelled


def test_a_lookup_answered_within_the_budget_finds_the_order() -> None:
    venue = Slow(0.05)
    found = asyncio.run(resolve(venue.call, LookupPolicy(budget_sec=30.0)))
    assert (found.outcome, found.order, found.attempts) == (PLACED, {"id": "answered"}, 1)
    assert not venue.cancelled
