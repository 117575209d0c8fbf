"""Ambiguous order outcomes, resolved by the order's client order id while the run goes on.

An order whose create call times out, loses its connection or gets a 5xx may have been booked
and filled all the same: Binance documents a 5xx as "execution status UNKNOWN", and a reply lost
after the matching engine took the order looks to the client exactly like a request lost before
it. Treating that as a refusal books a fill that happened as if it had not. So the executor asks
the venue for the order by its client order id (every order carries one), a bounded number of
times within `LookupPolicy.budget_sec`:

- found: the order was placed; its real fill is what the run books;
- "does not exist" `absent_after` times: it was not placed (a refusal);
- neither before the budget runs out: the outcome stays unknown, and the caller stops entries and
  surfaces it (`live_setup.LiveSession` records it, activates the kill switch and stops the run).

No lookup request outlasts the budget either: one still unanswered when the budget is spent is
abandoned, whatever the client's own timeout. Once the run is stopping, no wait on a venue outlasts
the stop's `Deadline` (`before`): a request still unanswered then is abandoned, and its order's
outcome is unknown.

Errors that say the venue refused the request (429/418, a nonce refusal) or that nothing was sent
(the local back-off) are not ambiguous.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, TypeVar

import ccxt

Outcome = Literal["placed", "absent", "unknown"]
PLACED: Final = "placed"
ABSENT: Final = "absent"
UNKNOWN: Final = "unknown"
MESSAGE_CHARS: Final = 300
STOPPED_LOOKING: Final = "no lookup answered before the stop's deadline"
BUDGET_SPENT: Final = "no lookup answered within the lookup budget"

Find = Callable[[], Awaitable[Mapping[str, Any]]]
"""Looks the order up by its client order id; raises ccxt.OrderNotFound when the venue has none."""
Deadline = Callable[[], float | None]
"""When waits on a venue must end (`time.monotonic`) because the run is stopping; None until then."""
DEADLINE_POLL_SEC: Final = 0.05
T = TypeVar("T")


def no_deadline() -> float | None:
    """The `Deadline` of an executor outside a run: waits are bounded by their own timeouts only."""
    return None


def passed(deadline: Deadline) -> bool:
    """Whether the stop's deadline has come."""
    limit = deadline()
    return limit is not None and time.monotonic() >= limit


def sooner(deadline: Deadline, at: float) -> Deadline:
    """A `Deadline` that comes at `at` (`time.monotonic`), or at `deadline` if that is earlier."""

    def limit() -> float:
        other = deadline()
        return at if other is None else min(at, other)

    return limit


class DeadlinePassed(Exception):
    """A wait on a venue was abandoned at its deadline: whatever it asked for may have happened."""


async def before(deadline: Deadline, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result; DeadlinePassed (it is cancelled) if the deadline comes first. The
    deadline is asked again while waiting, since a stop can be requested at any moment."""
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        limit, now = deadline(), time.monotonic()
        if limit is not None and now >= limit:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise DeadlinePassed
        await asyncio.wait(
            {task}, timeout=DEADLINE_POLL_SEC if limit is None else min(DEADLINE_POLL_SEC, limit - now)
        )
    return task.result()


def is_ambiguous(exc: BaseException) -> bool:
    """Whether an error on an order's create call leaves open whether the venue booked it."""
    refused = (ccxt.DDoSProtection, ccxt.InvalidNonce)
    return isinstance(exc, ccxt.NetworkError) and not isinstance(exc, refused)


def one_line(exc: BaseException) -> str:
    """The error as one bounded line (no secrets: ccxt messages carry no credentials)."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


@dataclass(frozen=True, slots=True)
class LookupPolicy:
    """How hard an ambiguous order is looked up: the time budget, the pause, the absence proof."""

    budget_sec: float = 10.0
    interval_sec: float = 0.5
    absent_after: int = 2
    """"Does not exist" answers needed before the order counts as not placed (a request still in
    flight at the venue may be booked just after the first lookup)."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the lookup of one ambiguous order found; `to_event` is its event_log payload."""

    venue: str
    symbol: str
    side: str
    amount: float
    client_order_id: str
    create_error: str
    outcome: Outcome
    attempts: int
    lookup_error: str | None = None
    order_id: str | None = None

    def to_event(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Found:
    """The lookup's verdict: the order when placed, the attempts made, the last lookup error."""

    outcome: Outcome
    order: Mapping[str, Any] | None
    attempts: int
    last_error: str | None


async def resolve(find: Find, policy: LookupPolicy, stop: Deadline = no_deadline) -> Found:
    """Look the order up until it is found, proven absent, or the budget is spent (or the stop's
    deadline comes). No lookup starts after either, and one in flight then is abandoned."""
    deadline = time.monotonic() + policy.budget_sec
    bounded = sooner(stop, deadline)
    attempts = misses = 0
    last_error: str | None = None
    while True:
        if passed(stop):
            return Found(UNKNOWN, None, attempts, last_error or STOPPED_LOOKING)
        attempts += 1
        try:
            order = await before(bounded, find())
        except DeadlinePassed:
            why = STOPPED_LOOKING if passed(stop) else BUDGET_SPENT
            return Found(UNKNOWN, None, attempts, last_error or why)
        except ccxt.OrderNotFound:
            misses += 1
            if misses >= policy.absent_after:
                return Found(ABSENT, None, attempts, last_error)
        except (ccxt.BaseError, ValueError, TypeError, KeyError) as exc:
            last_error = one_line(exc)
        else:
            return Found(PLACED, order, attempts, None)
        if time.monotonic() + policy.interval_sec >= deadline:
            return Found(UNKNOWN, None, attempts, last_error or "not found yet")
        await asyncio.sleep(policy.interval_sec)
