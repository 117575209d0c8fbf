"""The simulator's control API: what it does wrong right now, and how a test changes that.

- `GET /_control/stats`: `requests` served per route, the active `faults`, `latency_ms`,
  `error_rate`, `markets`, `venues`, `retry_after_sec`, the model `tick`, `faulted` answers per
  fault kind, and from the signed API `private_requests` per "METHOD /path", `orders`,
  `reject_orders` and `reject_after`.
- `POST /_control/faults`: `{"faults": [...], "latency_ms": n, "error_rate": p, "markets": [...] | null,
  "venues": [...] | null, "retry_after_sec": s | null}` replaces the fault settings named (missing
  keys keep their values) and returns the new state like stats; `"reject_orders": [venue...]` makes
  venues refuse orders, and `"reject_after": {venue: n}` lets each named venue accept n more orders
  and then refuse every one (a refusal between the legs of one round trip). `markets` limits book
  faults to those base symbols ("USDT" is Upbit's KRW-USDT); `venues` limits every fault to
  "upbit" or "binance".

A bad update is refused whole with a 400 naming the key, the value and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from harness.exchange_sim import dialects as d
from harness.exchange_sim.order_faults import ORDER_FAULTS

VENUE_FAULTS: Final = ("rate_limit", "ban", "server_error", "timeout", "bad_json")
"""Faults that replace a whole answer of a venue."""
FAULT_KINDS: Final = (*VENUE_FAULTS, *d.BOOK_FAULTS, *ORDER_FAULTS)
VENUES: Final = ("upbit", "binance")
CONTROL_KEYS: Final = (
    "faults", "latency_ms", "error_rate", "markets", "venues", "reject_orders", "reject_after",
    "retry_after_sec",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FaultState:
    """What the simulator does wrong right now. `markets`/`venues` of None mean every one."""

    faults: frozenset[str] = frozenset()
    latency_ms: float = 0.0
    error_rate: float = 0.0
    markets: frozenset[str] | None = None
    venues: frozenset[str] | None = None
    retry_after_sec: float | None = d.BAN_SECONDS

    def hits(self, venue: str) -> bool:
        """Whether the faults apply to `venue` at all."""
        return self.venues is None or venue in self.venues

    def book_faults(self, venue: str, symbol: str) -> tuple[str, ...]:
        """The book faults active for one market of one venue, in the order they are applied."""
        if not self.hits(venue) or (self.markets is not None and symbol not in self.markets):
            return ()
        return tuple(f for f in d.BOOK_FAULTS if f in self.faults)

    def to_json(self) -> dict[str, Any]:
        """The settings as the control API shows them."""
        latency: float | int = int(self.latency_ms) if self.latency_ms.is_integer() else self.latency_ms
        return {
            "faults": sorted(self.faults),
            "latency_ms": latency,
            "error_rate": self.error_rate,
            "markets": None if self.markets is None else sorted(self.markets),
            "venues": None if self.venues is None else sorted(self.venues),
            "retry_after_sec": self.retry_after_sec,
        }


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{what} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def names(value: Any, what: str, known: Iterable[str]) -> frozenset[str] | None:
    """A list of known names as a set (None stays None); raises ValueError naming `what`."""
    if value is None:
        return None
    allowed = set(known)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be null or a list of strings, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(allowed)}")
    return frozenset(value)


def counts(value: Any, what: str, known: Iterable[str]) -> dict[str, int] | None:
    """A mapping of known names to counts >= 0 (None stays None); raises ValueError naming `what`."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value.values()
    ):
        raise ValueError(f"{what} must be null or an object of counts >= 0, got {value!r}")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(known)}")
    return dict(value)


def _fault_kinds(raw: Any) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        raise ValueError(f"faults must be a list of strings, got {raw!r}")
    bad = sorted(set(raw) - set(FAULT_KINDS))
    if bad:
        hint = " (latency is set with latency_ms)" if "latency" in bad else ""
        raise ValueError(f"unknown fault kinds {bad}{hint}; known: {list(FAULT_KINDS)}")
    return frozenset(raw)


def _retry_after(raw: Any) -> float | None:
    return None if raw is None else _number(raw, "retry_after_sec", 0.0, d.MAX_RETRY_AFTER_SEC)


def updated(state: FaultState, update: Mapping[str, Any], markets: Iterable[str]) -> FaultState:
    """`state` with the settings named in `update` replaced (the order refusals aside); raises ValueError.

    `markets` are the base symbols the simulator serves, which `markets` may name.
    """
    unknown_keys = sorted(set(update) - {*CONTROL_KEYS})
    if unknown_keys:
        raise ValueError(f"unknown keys {unknown_keys}")
    parsers: dict[str, Callable[[Any], Any]] = {
        "faults": _fault_kinds,
        "latency_ms": lambda v: _number(v, "latency_ms", 0.0, 600_000.0),
        "error_rate": lambda v: _number(v, "error_rate", 0.0, 1.0),
        "markets": lambda v: names(v, "markets", markets),
        "venues": lambda v: names(v, "venues", VENUES),
        "retry_after_sec": _retry_after,
    }
    changes = {key: parse(update[key]) for key, parse in parsers.items() if key in update}
    return replace(state, **changes)


def object_body(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (empty means {}); raises ValueError."""
    update = json.loads(body or b"{}")
    if not isinstance(update, dict):
        raise ValueError("the body must be a JSON object")
    return update


class Controlled(Protocol):
    """What the control routes drive: the simulator's stats and its fault settings."""

    def stats(self) -> dict[str, Any]: ...

    def configure(self, update: Mapping[str, Any]) -> dict[str, Any]: ...


def _stats(sim: Controlled, body: bytes) -> d.Reply:
    return d.json_reply(200, sim.stats())


def _faults(sim: Controlled, body: bytes) -> d.Reply:
    try:
        return d.json_reply(200, sim.configure(object_body(body)))
    except ValueError as exc:
        return d.json_reply(400, {"error": str(exc)})


CONTROL_ROUTES: Final[Mapping[tuple[str, str], Callable[[Controlled, bytes], d.Reply]]] = {
    ("GET", "/_control/stats"): _stats,
    ("POST", "/_control/faults"): _faults,
}


def control(sim: Controlled, method: str, path: str, body: bytes) -> d.Reply:
    """Answer one request to `/_control/...`."""
    route = CONTROL_ROUTES.get((method, path))
    if route is None:
        return d.json_reply(404, {"error": f"no control route {method} {path}"})
    return route(sim, body)
