"""Venue back-pressure: how long to leave a venue alone after it answers 429 or 418.

A venue that rate-limits (429) or bans (418) the engine must not be asked again until the
wait is over: asking during a ban is what turns a short limit into a long IP ban. Each venue
has its own state. The wait is `base_sec * factor**(n-1)` for the n-th consecutive limit,
capped at `max_sec`; a Retry-After the venue sent takes precedence, up to the same cap. One
usable answer from the venue once its wait is over resets the count.

`RateLimits` is shared by everything that talks to the venues (the market source and the live
executor run on different threads), so it is thread-safe. It only decides and counts; the
callers refuse to send while `wait_left(venue)` is above 0.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from arbitrage.config.rate_limit import RateLimitConfig

LIMIT_STATUSES = frozenset({418, 429})
"""HTTP statuses that mean "back off": 429 too many requests, 418 the IP ban that follows."""


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP-date); None when absent or unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(text).timestamp() - now_epoch
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header's value by case-insensitive name, as HTTP names are."""
    wanted = name.lower()
    for key, value in (headers or {}).items():
        if str(key).lower() == wanted:
            return str(value)
    return None


class Backoff(NamedTuple):
    """What one 429/418 answer did: the wait now left, and whether it started a new back-off."""

    wait_sec: float
    started: bool


@dataclass(slots=True)
class _Venue:
    level: int = 0
    until: float = 0.0
    hits: int = 0
    backoffs: int = 0
    refused: int = 0
    imposed_sec: float = 0.0
    longest_sec: float = 0.0
    last_status: int | None = None
    last_retry_after_sec: float | None = None


class RateLimits:
    """Per-venue back-off state and its totals, shared by the source and the executor."""

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        venues: Iterable[str] = ("upbit", "binance"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or RateLimitConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._venues = {venue: _Venue() for venue in venues}

    def on_limited(self, venue: str, status: int, retry_after_sec: float | None) -> Backoff:
        """Record a 429/418 answer: the venue is left alone for the returned `wait_sec`.

        An answer that arrives while the venue is already waited on came from a request sent
        before the wait began (nothing is sent during it): it is counted and may lengthen the
        wait, but does not raise the exponent, so one round of concurrent requests is one step.
        """
        with self._lock:
            v = self._venues[venue]
            now = self._clock()
            v.hits += 1
            v.last_status = status
            v.last_retry_after_sec = retry_after_sec
            waiting = v.until > now
            if not waiting:
                v.level += 1
                v.backoffs += 1
            wait = self.config.wait_for(v.level, retry_after_sec)
            until = now + wait
            if until > v.until:
                v.imposed_sec += until - max(v.until, now)
                v.until = until
            v.longest_sec = max(v.longest_sec, wait)
            return Backoff(v.until - now, not waiting)

    def on_answer(self, venue: str) -> None:
        """A usable answer: once the wait is over, the next limit starts again from `base_sec`."""
        with self._lock:
            v = self._venues[venue]
            if v.until <= self._clock():
                v.level = 0

    def wait_left(self, venue: str) -> float:
        """Seconds until `venue` may be asked again; 0 when it may be asked now."""
        with self._lock:
            return max(self._venues[venue].until - self._clock(), 0.0)

    def refuse(self, venue: str) -> float:
        """Count a request not sent because of the wait; returns the wait left (0: send it after all)."""
        with self._lock:
            v = self._venues[venue]
            left = max(v.until - self._clock(), 0.0)
            if left > 0.0:
                v.refused += 1
            return left

    def hits_total(self) -> int:
        """429/418 answers from every venue so far: what the anomaly table's rate-limit row counts."""
        with self._lock:
            return sum(v.hits for v in self._venues.values())

    def last_status(self, venue: str) -> int | None:
        """The status of the venue's latest 429/418, None if it never sent one."""
        with self._lock:
            return self._venues[venue].last_status

    def longest_wait(self) -> float:
        """The longest wait left over all venues: what the engine is held back by right now."""
        with self._lock:
            now = self._clock()
            return max((max(v.until - now, 0.0) for v in self._venues.values()), default=0.0)

    def kpi(self) -> dict[str, dict[str, Any]]:
        """Per venue: limits answered, back-offs started, requests refused, and the seconds waited.

        `wait_seconds` is the time the venue has been left alone so far; `wait_left_seconds`
        is what remains of the current wait when the run ends.
        """
        with self._lock:
            now = self._clock()
            out: dict[str, dict[str, Any]] = {}
            for name, v in self._venues.items():
                left = max(v.until - now, 0.0)
                out[name] = {
                    "hits": v.hits,
                    "backoffs": v.backoffs,
                    "refused_requests": v.refused,
                    "wait_seconds": round(v.imposed_sec - left, 3),
                    "wait_left_seconds": round(left, 3),
                    "longest_wait_seconds": round(v.longest_sec, 3),
                    "last_status": v.last_status,
                    "last_retry_after_sec": v.last_retry_after_sec,
                }
            return out
