"""The kill switch (KIS §2): append-only `system_state` rows in PostgreSQL, the latest row wins.

With no row at all the switch is ACTIVE: live orders are blocked until an operator
deliberately deactivates it with a reason. Every change is one `system_state` row and one
`event_log` row, written in one transaction, so the audit trail can never disagree with the
state. Redis holds a short-lived copy for the order path; an ACTIVE copy is trusted at once,
an INACTIVE one only while fresh, and any failure to know counts as ACTIVE.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

from arbitrage.state import bounded_client
from evidence.ledger_tables import EVENT_LOG, SYSTEM_STATE

log = logging.getLogger("arbitrage.kill_switch")

ACTIVE = "ACTIVE"
INACTIVE = "INACTIVE"
DEFAULT_REASON = "default: no kill switch state recorded"
MAX_TEXT = 500
CACHE_TTL_SEC = 5

_LATEST_SQL = (
    f"SELECT kill_switch, reason, changed_by, ts, run_id FROM {SYSTEM_STATE} ORDER BY id DESC LIMIT 1"
)
_INSERT_STATE_SQL = (
    f"INSERT INTO {SYSTEM_STATE} (kill_switch, reason, changed_by, run_id) VALUES (%s, %s, %s, %s)"
    " RETURNING id, ts"
)
_INSERT_EVENT_SQL = (
    f"INSERT INTO {EVENT_LOG} (run_id, event_type, correlation_id, payload) VALUES (%s, %s, %s, %s)"
)


class KillSwitchError(Exception):
    """The kill switch state could not be read or changed; the message is one operator line."""


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    """The switch as of its latest row; `changed_at` is None for the built-in ACTIVE default."""

    active: bool
    reason: str
    by: str
    changed_at: datetime | None
    run_id: str | None = None

    @property
    def label(self) -> str:
        return ACTIVE if self.active else INACTIVE

    def describe(self) -> str:
        """One line: `ACTIVE since <ts> by <who>: <reason>`, or the default."""
        if self.changed_at is None:
            return f"{self.label} ({self.reason})"
        return f"{self.label} since {self.changed_at.isoformat()} by {self.by}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.label,
            "reason": self.reason,
            "by": self.by,
            "changed_at": None if self.changed_at is None else self.changed_at.isoformat(),
            "run_id": self.run_id,
        }


DEFAULT_STATE = KillSwitchState(active=True, reason=DEFAULT_REASON, by="default", changed_at=None)


def _clean(what: str, text: str) -> str:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ValueError(f"kill switch {what} must not be empty")
    if len(cleaned) > MAX_TEXT:
        raise ValueError(f"kill switch {what} is longer than {MAX_TEXT} characters")
    return cleaned


class KillSwitchCache:
    """The Redis copy of the switch, with explicit timeouts so a dead Redis costs seconds, not a minute."""

    def __init__(self, client: redis.Redis, key_prefix: str = "arb") -> None:
        self._client = client
        self.key = f"{key_prefix}:kill_switch"

    @classmethod
    def connect(cls, url: str, key_prefix: str = "arb", socket_timeout_sec: float = 2.0) -> KillSwitchCache:
        """A client for `url`; raises KillSwitchError when the URL is malformed (it never connects here)."""
        try:
            client = bounded_client(url, socket_timeout_sec)
        except ValueError as exc:
            raise KillSwitchError(f"kill switch cache URL is invalid: {_first_line(exc)}") from None
        return cls(client, key_prefix)

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def put(self, state: KillSwitchState) -> bool:
        try:
            self._client.set(self.key, json.dumps(state.to_json()), ex=CACHE_TTL_SEC)
        except redis.RedisError as exc:
            log.error("kill switch cache write failed: %s", exc)
            return False
        return True

    def get(self) -> str | None:
        """ACTIVE, INACTIVE, or None when absent, expired, unreadable or malformed."""
        try:
            raw = self._client.get(self.key)
        except redis.RedisError:
            return None
        if not isinstance(raw, str):
            return None
        try:
            label = json.loads(raw).get("state")
        except (ValueError, AttributeError):
            return None
        return label if label in (ACTIVE, INACTIVE) else None

    def close(self) -> None:
        self._client.close()


class KillSwitch:
    """Reads and changes the switch over one psycopg connection (autocommit, as the ledger opens it).

    With `reconnect` (e.g. `lambda: ledger.connect(dsn, ...)`), a closed or broken connection is
    replaced before the next statement, so a database restart does not wedge a long run.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        cache: KillSwitchCache | None = None,
        reconnect: Callable[[], psycopg.Connection[Any]] | None = None,
    ) -> None:
        self._conn = conn
        self._cache = cache
        self._reconnect = reconnect
        self._deferred: list[tuple[str, str, str | None]] = []

    def _connection(self) -> psycopg.Connection[Any]:
        if self._reconnect is not None and (self._conn.closed or self._conn.broken):
            try:
                self._conn = self._reconnect()
            except Exception as exc:
                raise KillSwitchError(f"kill switch database unreachable: {_first_line(exc)}") from None
        return self._conn

    def status(self) -> KillSwitchState:
        """The latest row, or the ACTIVE default; raises KillSwitchError when the database cannot say."""
        try:
            with self._connection().cursor() as cur:
                cur.execute(_LATEST_SQL)
                row = cur.fetchone()
        except psycopg.Error as exc:
            raise KillSwitchError(f"kill switch state unreadable: {_first_line(exc)}") from None
        state = (
            DEFAULT_STATE
            if row is None
            else KillSwitchState(row[0] == ACTIVE, row[1], row[2], row[3], row[4])
        )
        if self._cache is not None:
            self._cache.put(state)
        return state

    def blocks_orders(self) -> bool:
        """Fail-closed answer for the order path: True unless the switch is known to be INACTIVE."""
        cached = None if self._cache is None else self._cache.get()
        if cached == ACTIVE:
            return True
        if cached == INACTIVE:
            return False
        try:
            return self.status().active
        except KillSwitchError as exc:
            log.error("%s; treating the kill switch as ACTIVE", exc)
            return True

    def activate(self, reason: str, by: str, run_id: str | None = None) -> KillSwitchState:
        """Append an ACTIVE row (and its event); works whatever the current state is."""
        return self._change(True, reason, by, run_id)

    def activate_or_retry_at_close(self, reason: str, by: str, run_id: str | None = None) -> bool:
        """`activate`; when the database refuses it now (an outage), `close` tries it again, so that
        a stop that sets the switch does not lose it to the outage. False when it is deferred."""
        try:
            self.activate(reason, by, run_id)
        except KillSwitchError as exc:
            log.error("%s (%s); tried again when the run closes", exc, reason)
            self._deferred.append((reason, by, run_id))
            return False
        return True

    def deactivate(self, reason: str, by: str) -> KillSwitchState:
        """Append an INACTIVE row (and its event): the operator's explicit, reasoned release."""
        return self._change(False, reason, by, None)

    def close(self) -> None:
        """Make the activations that had to wait, then close the connection and the cache this
        switch was given."""
        for reason, by, run_id in self._deferred:
            try:
                self.activate(reason, by, run_id)
                log.warning("kill switch activated at close, after the database refused it: %s", reason)
            except KillSwitchError as exc:
                log.error("kill switch still not activated at close: %s (%s)", exc, reason)
        self._deferred.clear()
        self._conn.close()
        if self._cache is not None:
            self._cache.close()

    def _change(self, active: bool, reason: str, by: str, run_id: str | None) -> KillSwitchState:
        reason, by = _clean("reason", reason), _clean("operator name", by)
        label = ACTIVE if active else INACTIVE
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_LATEST_SQL)
                previous = cur.fetchone()
                cur.execute(_INSERT_STATE_SQL, (label, reason, by, run_id))
                inserted = cur.fetchone()
                if inserted is None:
                    raise KillSwitchError("kill switch change was not recorded")
                row_id, changed_at = inserted
                payload = {
                    "state": label,
                    "previous": ACTIVE if previous is None else previous[0],
                    "reason": reason,
                    "by": by,
                    "system_state_id": row_id,
                }
                event = "KILL_SWITCH_ACTIVATED" if active else "KILL_SWITCH_DEACTIVATED"
                cur.execute(_INSERT_EVENT_SQL, (run_id, event, f"kill-switch:{row_id}", Jsonb(payload)))
        except psycopg.Error as exc:
            raise KillSwitchError(f"kill switch change to {label} failed: {_first_line(exc)}") from None
        state = KillSwitchState(active, reason, by, changed_at, run_id)
        if self._cache is not None:
            self._cache.put(state)
        return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
