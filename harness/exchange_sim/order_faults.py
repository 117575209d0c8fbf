"""Order faults of the simulator: the outcomes a live executor cannot see, produced for real.

A venue can book an order and never deliver the answer (the connection drops after the matching
engine took it, or the answer arrives after the client gave up), and it can lose a request before
booking it; a client sees the same network error in both cases. The executor must then ask the
venue by the order's client order id, and that lookup can fail too. A venue can also accept an
order before it has filled it, so that only polling the order tells its fill, and it can keep an
order request unanswered for as long as it likes. Five fault kinds make each case happen on the
simulator's own signed routes:

- "lost_reply": an order (Binance `POST /api/v3/order`, Upbit `POST /v1/orders`) is booked and
  filled, then the connection is closed without an answer;
- "lost_order": an order request is dropped unanswered before it is booked;
- "lookup_down": an order lookup (Binance `GET /api/v3/order`, Upbit `GET /v1/order`) is
  answered 503 by the load balancer, so the outcome stays unknown;
- "late_fill": a Binance order is booked and filled, and answered as its matching engine had not
  yet filled it (status NEW, nothing executed, no fills); lookups show it filled. Upbit answers
  every market order that way already ("wait");
- "held_order": an order request is held unanswered and unbooked while the fault lasts (at most
  `exchange.HOLD_MAX_SEC`), then dropped: an engine can be caught with an order under way.

Other signed requests (balances, lists of orders, fills) are not touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Final

from harness.exchange_sim import dialects as d

ORDER_FAULTS: Final = ("lost_reply", "lost_order", "lookup_down", "late_fill", "held_order")
BINANCE_ORDER_ROUTE: Final = ("POST", "/api/v3/order")
ORDER_ROUTES: Final = frozenset({BINANCE_ORDER_ROUTE, ("POST", "/v1/orders")})
LOOKUP_ROUTES: Final = frozenset({("GET", "/api/v3/order"), ("GET", "/v1/order")})
LOOKUP_DOWN_HTML: Final = d.SERVER_ERROR_HTML.format(code=503, reason="Service Temporarily Unavailable")


def order_fault(
    active: Collection[str],
    method: str,
    path: str,
    answer: Callable[[], d.Reply],
    count: Callable[[str], None],
    hold: Callable[[str], None],
) -> d.Reply | None:
    """The answer to a signed request under the active order faults; None drops the connection.

    `answer` serves the request for real (booking an order); `count` records each fault applied;
    `hold` returns once the named fault is cleared (or its hold has lasted long enough).
    """
    route = (method, path)
    if route in ORDER_ROUTES and "held_order" in active:
        count("held_order")
        hold("held_order")
        return None
    if route in ORDER_ROUTES and "lost_order" in active:
        count("lost_order")
        return None
    if route in LOOKUP_ROUTES and "lookup_down" in active:
        count("lookup_down")
        return d.html_reply(503, LOOKUP_DOWN_HTML)
    reply = answer()
    if route in ORDER_ROUTES and "lost_reply" in active and reply.status < 300:
        count("lost_reply")
        return None
    if route == BINANCE_ORDER_ROUTE and "late_fill" in active and reply.status < 300:
        count("late_fill")
        return _not_yet_filled(reply)
    return reply


def _not_yet_filled(reply: d.Reply) -> d.Reply:
    """A Binance order answer as it reads before the matching engine has filled the order."""
    doc = json.loads(reply.body)
    doc.update(
        {"status": "NEW", "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000", "fills": []}
    )
    return d.json_reply(reply.status, doc, reply.headers)
