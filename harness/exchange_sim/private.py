"""The simulator's private (signed) API: authenticate, then place orders or read the account.

A live executor must be exercised end to end without a real venue, so the simulator checks
credentials the way the venues do (`auth`), places orders against the model (`orders`) and
answers the signed reads (balances, orders, fills, lookup by client order id) from the orders it
kept (`account`). Every private request, accepted or refused, is counted per route, so a test can
assert that a refused run sent none.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from harness.exchange_sim import account as acct
from harness.exchange_sim import auth
from harness.exchange_sim import dialects as d
from harness.exchange_sim.account import SimOrder
from harness.exchange_sim.auth import AuthError, SimKeys
from harness.exchange_sim.orders import (
    BINANCE_FEE,
    BookOf,
    Placement,
    binance_order,
    upbit_order,
    upbit_order_doc,
)

PRIVATE_ROUTES: Final = frozenset(
    {
        ("POST", "/api/v3/order"),
        ("POST", "/api/v3/order/test"),
        ("GET", "/api/v3/order"),
        ("GET", "/api/v3/account"),
        ("GET", "/api/v3/openOrders"),
        ("GET", "/api/v3/allOrders"),
        ("GET", "/api/v3/myTrades"),
        ("POST", "/v1/orders"),
        ("GET", "/v1/order"),
        ("GET", "/v1/orders/chance"),
        ("GET", "/v1/accounts"),
        ("GET", "/v1/orders/open"),
        ("GET", "/v1/orders/closed"),
    }
)
"""Routes that are private whether or not the request carries credentials."""


def _upbit_params(method: str, raw_query: str, body: bytes) -> list[tuple[str, str]]:
    """The parameters Upbit's `query_hash` covers: the query of a GET, the JSON body of a POST."""
    if method == "GET":
        return parse_qsl(raw_query, keep_blank_values=True)
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise auth.upbit_refusal("invalid_query_payload", auth.UPBIT_BAD_QUERY)
    return [(k, "true" if v is True else "false" if v is False else str(v)) for k, v in doc.items()]


class PrivateApi:
    """Signed endpoints of both venues; counts every private request and keeps every order."""

    def __init__(self, keys: SimKeys, book_of: BookOf, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self._book_of = book_of
        self._clock = clock
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.orders: list[SimOrder] = []
        self.reject_orders: frozenset[str] = frozenset()
        self.accepts_left: dict[str, int] = {}
        """Venues that accept this many more orders, then refuse every one (`reject_after`)."""
        self._nonces: set[str] = set()
        self._ids = itertools.count(1_000_001)

    def claim(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        """Whether the request is private (a private route or carrying credentials); counts it if so."""
        private = (method, path) in PRIVATE_ROUTES or "x-mbx-apikey" in headers or "authorization" in headers
        if private:
            with self._lock:
                self.requests[f"{method} {path}"] += 1
        return private

    def set_rejects(self, venues: frozenset[str]) -> None:
        """Make these venues refuse every order (as for an empty balance); the others accept again."""
        with self._lock:
            self.reject_orders = venues

    def set_reject_after(self, accepts: Mapping[str, int]) -> None:
        """Let each named venue accept that many more orders and then refuse every one."""
        with self._lock:
            self.accepts_left = dict(accepts)

    def stats(self) -> dict[str, Any]:
        """The control API's view: private requests per route, every order kept, refusing venues."""
        with self._lock:
            return {
                "private_requests": dict(sorted(self.requests.items())),
                "orders": [o.to_json() for o in self.orders],
                "reject_orders": sorted(self.reject_orders),
                "reject_after": dict(sorted(self.accepts_left.items())),
            }

    def handle(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes
    ) -> d.Reply:
        """Authenticate and answer one private request (counted already by `claim`)."""
        now_ms = round(self._clock() * 1000.0)
        try:
            if path.startswith("/v1/"):
                return self._upbit(method, path, raw_query, headers, body, now_ms)
            return self._binance(method, path, raw_query, headers, body, now_ms)
        except AuthError as exc:
            return d.json_reply(exc.status, exc.body)

    def _kept(self) -> list[SimOrder]:
        with self._lock:
            return list(self.orders)

    def _keep(self, placed: Placement) -> d.Reply:
        if placed.order is not None:
            with self._lock:
                self.orders.append(placed.order)
        return placed.reply

    def _refuses(self, venue: str) -> bool:
        """Whether this order is refused; called once per order, since it counts `reject_after` down."""
        with self._lock:
            if venue in self.reject_orders:
                return True
            left = self.accepts_left.get(venue)
            if left is None:
                return False
            self.accepts_left[venue] = max(0, left - 1)
            return left == 0

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _fresh_nonce(self, nonce: str) -> bool:
        with self._lock:
            fresh = bool(nonce) and nonce not in self._nonces
            self._nonces.add(nonce)
        return fresh

    def _binance(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes, now_ms: int
    ) -> d.Reply:
        api_key, raw_body = headers.get("x-mbx-apikey"), body.decode(errors="replace")
        params = auth.verify_binance(self.keys, api_key, raw_query, raw_body, now_ms)
        if method == "GET":
            return acct.binance_read(path, params, self._kept(), BINANCE_FEE, now_ms)
        if (method, path) != ("POST", "/api/v3/order"):
            return d.json_reply(404, d.binance_error(-1000, "Not found."))
        placed = binance_order(params, self._book_of, self._refuses("binance"), self._next_id, now_ms)
        return self._keep(placed)

    def _upbit(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes, now_ms: int
    ) -> d.Reply:
        claims = auth.upbit_claims(self.keys, headers.get("authorization", ""), self._fresh_nonce)
        params = _upbit_params(method, raw_query, body)
        auth.check_upbit_query(claims, params)
        if (method, path) == ("POST", "/v1/orders"):
            return self._keep(upbit_order(dict(params), self._book_of, self._refuses("upbit"), now_ms))
        if method == "GET":
            return acct.upbit_read(path, dict(params), self._kept(), upbit_order_doc)
        return d.json_reply(404, d.upbit_error(404, "Not Found"))
