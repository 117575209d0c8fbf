"""Live state in Redis: the heartbeat key with a TTL and the run registry.

Redis is never on the trading loop's critical path: the heartbeat is written from the
watcher's thread, and the registry only at start and stop. Timeouts and retries are set
explicitly, because with the client's defaults one call against a dead Redis can block for
about a minute.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

log = logging.getLogger("arbitrage.state")


class StateUnavailable(Exception):
    """Redis cannot be reached; the message is one operator line."""


def describe_url(url: str) -> str:
    """Where a Redis URL points, without credentials: for error lines."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if rest else url


def bounded_client(url: str, socket_timeout_sec: float) -> redis.Redis:
    """A client whose every call gives up within about two socket timeouts (one retry).

    Raises ValueError for a malformed URL; it does not connect until first used.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_sec,
        socket_connect_timeout=socket_timeout_sec,
        retry=Retry(ConstantBackoff(0.1), 1),
        health_check_interval=0,
        decode_responses=True,
    )


class RunState:
    """Heartbeat key and run registry for one engine run."""

    def __init__(self, url: str, key_prefix: str = "arb", socket_timeout_sec: float = 2.0) -> None:
        self._url = url
        self.prefix = key_prefix
        try:
            self._client = bounded_client(url, socket_timeout_sec)
        except ValueError as exc:
            raise StateUnavailable(f"redis URL {describe_url(url)!r} is invalid: {exc}") from None

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def ping(self) -> None:
        """Raise StateUnavailable unless Redis answers now."""
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise StateUnavailable(f"redis unreachable at {describe_url(self._url)}: {exc}") from None

    def register(self, run_id: str, fields: dict[str, Any]) -> None:
        """Add the run to the registry (run_id -> status, pid, started_at, ...)."""
        try:
            pipe = self._client.pipeline()
            pipe.hset(self.key("run", run_id), mapping={k: str(v) for k, v in fields.items()})
            pipe.sadd(self.key("runs"), run_id)
            pipe.execute()
        except redis.RedisError as exc:
            raise StateUnavailable(f"redis refused the run registration: {exc}") from None

    def set_status(self, run_id: str, status: str, **extra: Any) -> bool:
        """Update the registry entry; a failure is logged, never raised."""
        try:
            fields = {"status": status, **extra}
            self._client.hset(self.key("run", run_id), mapping={k: str(v) for k, v in fields.items()})
        except redis.RedisError as exc:
            log.error("redis registry update failed for %s: %s", run_id, exc)
            return False
        return True

    def beat(self, run_id: str, payload: dict[str, Any], ttl_sec: int) -> bool:
        """Write the heartbeat key with a TTL, so a dead engine's key expires by itself."""
        try:
            self._client.set(self.key("heartbeat", run_id), json.dumps(payload), ex=ttl_sec)
        except redis.RedisError as exc:
            log.warning("redis heartbeat write failed for %s: %s", run_id, exc)
            return False
        return True

    def registry(self) -> dict[str, dict[str, str]]:
        """Every registered run and its fields (for preflight and the harness), in two round trips
        however many runs the registry holds."""
        members: set[str] = self._client.smembers(self.key("runs"))  # type: ignore[assignment]
        run_ids = sorted(members)
        pipe = self._client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hgetall(self.key("run", run_id))
        fields: list[dict[str, str]] = pipe.execute()
        return dict(zip(run_ids, fields, strict=True))

    def close(self) -> None:
        self._client.close()
