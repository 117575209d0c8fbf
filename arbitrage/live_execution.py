"""Live execution: real ccxt market orders on Upbit and Binance, placed only while armed.

Same contract as `PaperExecutor`: entries place the Binance leg first and the Upbit leg
second, and a refused second leg is unwound at once with an opposite market order on Binance,
so no one-legged position is left open. Every fill is what the venue answered: quantity,
average price (cost / filled), fee in the venue's quote currency and the venue's order id.

The kill switch gates exposure: `blocks_orders()` is asked before each entry leg, and a
blocked entry places nothing (or unwinds its first leg). Unwinds and exits only reduce
exposure, so they are never blocked: a guard that trips sets the switch and then flattens.

An exit that fails raises `LiveExitError` (carrying the leg that did fill); the position must
then stay open for a retry. A network error or timeout on an order's create call is ambiguous (the
venue may have filled it): the order is looked up by its client order id (`order_lookup`), and a
found order is booked with its real fill, an absent one is a refusal. One whose outcome stays
unknown raises `OrderOutcomeUnknown`: no entry is placed after it, no exit on its symbol (a retry
could double it), and `on_lookup` is told so that the run can stop and be reconciled. So does an
order the venue accepted without a fill (Upbit answers every market order so, Binance one its
matching engine has not yet filled) whose fill could not be learnt within the fill timeout (polls
failing, or the order still open): the venue may fill it yet, so it is not a refusal.

Once the run is stopping (`stop_deadline` gives a time), no entry is opened, and no order waits past
that deadline: an order not sent by then is not sent (a refusal), and one whose answer, lookup or
fill has not come by then has an unknown outcome, so that a slow venue cannot hold the stop past
its budget. Second legs, unwinds and exits still go out until the deadline.

Each order is recorded by the run's `OrderTrail` before it is sent and once its fate is known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import Any

import ccxt

from arbitrage.config import StrategyConfig
from arbitrage.config.live import DEFAULT_FILL_TIMEOUT_SEC
from arbitrage.execution import LegFailure, LegFill, PairFill, Rejected
from arbitrage.live_orders import (
    LiveExitError,
    LiveOrderError,
    OrderOutcomeUnknown,
    leg_from_order,
    opposite,
    sides,
)
from arbitrage.market.backoff import RateLimits
from arbitrage.market.book import MarketSnapshot, Side
from arbitrage.market.ccxt_source import BINANCE_QUOTE, UPBIT_QUOTE, VenuePair
from arbitrage.ops.live_arm import LiveKeys
from arbitrage.order_lookup import (
    PLACED,
    UNKNOWN,
    Deadline,
    DeadlinePassed,
    Find,
    LookupPolicy,
    Resolution,
    before,
    is_ambiguous,
    no_deadline,
    one_line,
    passed,
    resolve,
)
from arbitrage.order_trail import OrderTrail
from arbitrage.strategy import EntryIntent, ExitIntent, Quote

log = logging.getLogger("arbitrage.live_execution")

DEFAULT_TIMEOUT_SEC = 10.0
FILL_POLL_SEC = 0.2
KILL_SWITCH_REASON = "kill switch active: order not placed"
OUTCOME_UNKNOWN = "outcome_unknown"
STOPPING_REASON = "the run is stopping: no new position"
NOT_SENT_AT_STOP = "not sent: the run is stopping and its deadline for the venues has passed"
NOT_RECORDED = "not sent: the order could not be recorded durably first (ledger journal)"
NO_ANSWER_AT_STOP = "no answer before the stop's deadline"
FILL_UNKNOWN_AT_STOP = "placed; its fill was not known before the stop's deadline"
FILL_UNKNOWN = "placed; its fill was not known within {timeout:g} s"
UNHEDGED = "unhedged"


class LiveExecutor:
    """Places the legs of each intent as market orders through ccxt's async clients.

    `keys` are the armed credentials (never logged); `blocks_orders` is the kill switch's
    order-path check; `exchange_url` points both venues at `arbitrage sim`. `listings` (as
    `CcxtSource.listings()` returns) skips loading markets over the network. `rate_limits`, shared
    with the market source, refuses every order to a venue that is backed off after a 429/418
    (a refused order is a `LiveOrderError`, so an entry is rejected or unwound and an exit retried).
    `lookup` bounds the look-ups of an ambiguous order; `on_lookup` hears every resolution, and
    `on_unhedged` every first leg whose unwind was refused (open exposure no position holds).
    `trail` records each order before it is sent and once its fate is known (`order_trail`).
    """

    def __init__(
        self,
        config: StrategyConfig,
        keys: LiveKeys,
        blocks_orders: Callable[[], bool],
        *,
        exchange_url: str | None = None,
        timeout_sec: float = DEFAULT_TIMEOUT_SEC,
        fill_timeout_sec: float = DEFAULT_FILL_TIMEOUT_SEC,
        listings: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        rate_limits: RateLimits | None = None,
        lookup: LookupPolicy | None = None,
        on_lookup: Callable[[Resolution], object] | None = None,
        on_unhedged: Callable[[str, LegFill, str], object] | None = None,
        stop_deadline: Deadline = no_deadline,
        trail: OrderTrail | None = None,
    ) -> None:
        self.config = config
        self._trail = trail or OrderTrail()
        self._deadline = stop_deadline
        self._lookup = lookup or LookupPolicy()
        self._on_lookup = on_lookup
        self.unknown: list[Resolution] = []
        """Orders whose outcome stayed unknown: entries stop, and exits on their symbols."""
        self._on_unhedged = on_unhedged
        self.unhedged: list[LegFill] = []
        """First legs whose unwind was refused: entries stop."""
        self._blocks = blocks_orders
        self._fill_policy = LookupPolicy(budget_sec=fill_timeout_sec, interval_sec=FILL_POLL_SEC)
        credentials = {
            "upbit": (keys.upbit_access_key.get_secret_value(), keys.upbit_secret_key.get_secret_value()),
            "binance": (keys.binance_api_key.get_secret_value(), keys.binance_api_secret.get_secret_value()),
        }
        self._venues = VenuePair(timeout_sec, exchange_url, credentials, listings, rate_limits)
        self.upbit: Any
        self.binance: Any
        self.upbit, self.binance = self._venues.upbit, self._venues.binance

    def close(self) -> None:
        """Close both clients' HTTP sessions and the event loop."""
        self._venues.close()

    def balances(self) -> dict[str, dict[str, float]]:
        """Both venues' total balance per asset: what `arbitrage reconcile` measures the run's change from."""
        from arbitrage.reconcile.venues import account_totals

        return {
            "upbit": self._venues.run(account_totals(self.upbit)),
            "binance": self._venues.run(account_totals(self.binance)),
        }

    def _run(self, coro: Coroutine[Any, Any, LegFill]) -> LegFill:
        return self._venues.run(coro)

    def _below_minimum(self, quote: Quote) -> str | None:
        minimums = self.config.min_order
        upbit_krw, binance_usdt = quote.qty * quote.upbit_vwap_krw, quote.qty * quote.binance_vwap_usdt
        if upbit_krw < minimums.upbit_krw:
            return f"upbit notional {upbit_krw:.0f} KRW < minimum {minimums.upbit_krw:.0f} KRW"
        if binance_usdt < minimums.binance_usdt:
            return f"binance notional {binance_usdt:.2f} USDT < minimum {minimums.binance_usdt:.2f} USDT"
        return None

    @property
    def venue_wait_ms(self) -> float:
        """Time spent so far waiting on the venues for orders and fills (ccxt's rate limiter included)."""
        return self._venues.waited_ms

    def enter(self, intent: EntryIntent, snapshot: MarketSnapshot) -> PairFill | LegFailure | Rejected:
        """Open both legs; Rejected when nothing filled, LegFailure (with the unwind) when one did."""
        quote = intent.quote
        too_small = self._below_minimum(quote)
        if too_small is not None:
            return Rejected(quote, too_small)
        if self.unknown:
            return Rejected(quote, self._unknown_line(), OUTCOME_UNKNOWN)
        if self.unhedged:
            ids = ", ".join(f"{leg.venue} {leg.order_id}" for leg in self.unhedged)
            return Rejected(quote, f"one-legged exposure ({ids}): reconcile before trading on", UNHEDGED)
        if self._deadline() is not None:
            return Rejected(quote, STOPPING_REASON, "stopping")
        if self._blocks():
            return Rejected(quote, KILL_SWITCH_REASON, "kill_switch")
        upbit_side, binance_side = sides(quote, opening=True)
        try:
            first = self._run(self._binance_order(quote.symbol, binance_side, quote.qty))
        except OrderOutcomeUnknown as exc:
            return Rejected(quote, str(exc), OUTCOME_UNKNOWN)
        except LiveOrderError as exc:
            return Rejected(quote, str(exc), "refused")
        if self._blocks():
            reason = KILL_SWITCH_REASON
        else:
            try:
                second = self._run(
                    self._upbit_order(quote.symbol, upbit_side, first.qty, quote.upbit_vwap_krw)
                )
                return PairFill(quote, second, first)
            except LiveOrderError as exc:
                reason = str(exc)
        try:
            unwind: LegFill | None = self._run(
                self._binance_order(quote.symbol, opposite(first.side), first.qty)
            )
        except LiveOrderError as exc:
            unwind = None
            if not isinstance(exc, OrderOutcomeUnknown):
                self.unhedged.append(first)
                if self._on_unhedged is not None:
                    self._on_unhedged(quote.symbol, first, str(exc))
            log.error("unwind of %s %s failed: %s", quote.symbol, first.order_id, exc)
        return LegFailure(quote, first, unwind, "upbit", reason)

    def exit(
        self, intent: ExitIntent, entry: PairFill | None = None, binance_closed: LegFill | None = None
    ) -> PairFill:
        """Close both legs, sizing each from `entry`'s filled legs when given; raises LiveExitError.

        `binance_closed` is the Binance exit leg an earlier attempt filled: only the Upbit leg is
        placed then, since sending the Binance leg again would open the opposite position there.
        """
        quote = intent.quote
        upbit_side, binance_side = sides(quote, opening=False)
        binance_qty = entry.binance.qty if entry is not None else quote.qty
        upbit_qty = entry.upbit.qty if entry is not None else quote.qty
        if any(r.symbol == quote.symbol for r in self.unknown):
            blocked = "binance" if binance_closed is None else "upbit"
            raise LiveExitError(blocked, f"no exit on {quote.symbol}: {self._unknown_line()}", binance_closed)
        if binance_closed is not None:
            binance = binance_closed
        else:
            try:
                binance = self._run(self._binance_order(quote.symbol, binance_side, binance_qty))
            except LiveOrderError as exc:
                raise LiveExitError("binance", str(exc), None) from exc
        try:
            upbit = self._run(self._upbit_order(quote.symbol, upbit_side, upbit_qty, quote.upbit_vwap_krw))
        except LiveOrderError as exc:
            raise LiveExitError("upbit", str(exc), binance) from exc
        return PairFill(quote, upbit, binance)

    def _unknown_line(self) -> str:
        ids = ", ".join(f"{r.venue} {r.symbol} {r.client_order_id}" for r in self.unknown)
        return f"order outcome unknown ({ids}): reconcile before trading on"

    async def _place(
        self, venue: str, symbol: str, side: Side, amount: float, client_id: str,
        create: Callable[[], Coroutine[Any, Any, dict[str, Any]]], find: Find,
    ) -> Mapping[str, Any]:  # fmt: skip
        """The venue's order: as `create` answered it, or found by client order id after an
        ambiguous error; raises LiveOrderError (not placed) or OrderOutcomeUnknown."""
        if passed(self._deadline):
            raise LiveOrderError(venue, client_id, NOT_SENT_AT_STOP)
        if not self._trail.sent(venue, symbol, side, amount, client_id):
            raise LiveOrderError(venue, client_id, NOT_RECORDED)
        try:
            return await before(self._deadline, create())
        except DeadlinePassed:
            error = NO_ANSWER_AT_STOP
        except ccxt.BaseError as exc:
            if not is_ambiguous(exc):
                raise LiveOrderError(venue, client_id, one_line(exc)) from exc
            error = one_line(exc)
        log.info("%s order %s: %s; looking it up by client order id", venue, client_id, error)
        found = await resolve(find, self._lookup, self._deadline)
        order_id = None if found.order is None else str(found.order.get("id"))
        resolution = Resolution(
            venue, symbol, side, amount, client_id, error, found.outcome, found.attempts, found.last_error,
            order_id,
        )  # fmt: skip
        log.info("%s order %s resolved as %s after %d lookups", venue, client_id, found.outcome,
                    found.attempts)  # fmt: skip
        if found.outcome == UNKNOWN:
            raise self._outcome_unknown(resolution)
        if self._on_lookup is not None:
            self._on_lookup(resolution)
        if found.outcome == PLACED and found.order is not None:
            return found.order
        raise LiveOrderError(venue, client_id, f"{error}; not placed ({found.attempts} lookups found none)")

    def _outcome_unknown(self, resolution: Resolution) -> OrderOutcomeUnknown:
        """Remember the order and tell `on_lookup`; the error for the caller to raise."""
        self.unknown.append(resolution)
        if self._on_lookup is not None:
            self._on_lookup(resolution)
        return OrderOutcomeUnknown(resolution)

    async def _binance_order(self, symbol: str, side: Side, qty: float) -> LegFill:
        return await self._trail.traced("binance", partial(self._binance_fill, symbol, side, qty))

    async def _binance_fill(self, symbol: str, side: Side, qty: float, client_id: str) -> LegFill:
        market = f"{symbol}/{BINANCE_QUOTE}"
        client = self.binance

        async def find() -> dict[str, Any]:
            order = await client.fetch_order(None, market, {"origClientOrderId": client_id})
            return await self._with_binance_fees(order, market)

        try:
            await before(self._deadline, client.load_markets())
            amount = float(client.amount_to_precision(market, qty))
            params = {"clientOrderId": client_id}
            placed = await self._place(
                "binance", symbol, side, amount, client_id,
                lambda: client.create_order(market, "market", side, amount, None, params), find,
            )  # fmt: skip
            order = await self._settled("binance", symbol, side, amount, client_id, placed, market)
            leg = leg_from_order("binance", side, symbol, BINANCE_QUOTE, order)
        except LiveOrderError:
            raise
        except DeadlinePassed:
            raise LiveOrderError("binance", client_id, NOT_SENT_AT_STOP) from None
        except (ccxt.BaseError, ValueError, TypeError, KeyError) as exc:
            raise LiveOrderError("binance", client_id, one_line(exc)) from exc
        log.info(
            "binance %s %.8f %s filled at %.8f (order %s)", side, leg.qty, market, leg.vwap, leg.order_id
        )
        return leg

    async def _with_binance_fees(self, order: dict[str, Any], market: str) -> dict[str, Any]:
        """A looked-up Binance order with its fees, which only its trades state."""
        if float(order.get("filled") or 0.0) > 0.0:
            trades = await self.binance.fetch_order_trades(order["id"], market)
            order = {**order, "fee": None, "fees": [t["fee"] for t in trades if t.get("fee")]}
        return order

    async def _upbit_order(self, symbol: str, side: Side, qty: float, price_krw: float) -> LegFill:
        """A market buy spends `qty * price_krw` KRW (Upbit's `ord_type=price`); a sell sells `qty`."""
        return await self._trail.traced("upbit", partial(self._upbit_fill, symbol, side, qty, price_krw))

    async def _upbit_fill(
        self, symbol: str, side: Side, qty: float, price_krw: float, client_id: str
    ) -> LegFill:
        market = f"{symbol}/{UPBIT_QUOTE}"
        client = self.upbit
        params: dict[str, Any] = {"clientOrderId": client_id}

        async def find() -> dict[str, Any]:
            raw = await client.privateGetOrder({"identifier": client_id})
            found: dict[str, Any] = client.parse_order(raw)
            return found

        try:
            await before(self._deadline, client.load_markets())
            amount = float(client.amount_to_precision(market, qty))
            if side == "buy":
                params["cost"] = qty * price_krw
            placed = await self._place(
                "upbit", symbol, side, params.get("cost", amount), client_id,
                lambda: client.create_order(market, "market", side, amount, None, params), find,
            )  # fmt: skip
            order = await self._settled(
                "upbit", symbol, side, params.get("cost", amount), client_id, placed, market
            )
            leg = leg_from_order("upbit", side, symbol, UPBIT_QUOTE, order)
        except LiveOrderError:
            raise
        except DeadlinePassed:
            raise LiveOrderError("upbit", client_id, NOT_SENT_AT_STOP) from None
        except (ccxt.BaseError, ValueError, TypeError, KeyError) as exc:
            raise LiveOrderError("upbit", client_id, one_line(exc)) from exc
        log.info("upbit %s %.8f %s filled at %.2f (order %s)", side, leg.qty, market, leg.vwap, leg.order_id)
        return leg

    async def _settled(
        self, venue: str, symbol: str, side: Side, amount: float, client_id: str,
        placed: Mapping[str, Any], market: str,
    ) -> Mapping[str, Any]:  # fmt: skip
        """The placed order once the venue has settled it: as answered when that is closed, else polled.

        Upbit answers every market order as accepted ("wait"), and Binance can answer one before its
        matching engine has filled it (NEW, nothing executed). The order is placed either way, so it
        is polled by its id within the fill timeout (and the stop's deadline) until it is no longer
        open; a fill not known by then is an unknown outcome, since taking it for a refusal would
        leave a fill the venue may still make out of the ledger.
        """
        if placed.get("status") == "closed":
            return placed
        placed_id = str(placed["id"])
        settled = await resolve(self._closed(venue, placed_id, market), self._fill_policy, self._deadline)
        if settled.outcome == PLACED and settled.order is not None:
            return settled.order
        why = FILL_UNKNOWN_AT_STOP if passed(self._deadline) else FILL_UNKNOWN
        error = why.format(timeout=self._fill_policy.budget_sec)
        raise self._outcome_unknown(
            Resolution(venue, symbol, side, amount, client_id, error, UNKNOWN, settled.attempts,
                       settled.last_error, placed_id)
        )  # fmt: skip

    def _closed(self, venue: str, order_id: str, market: str) -> Find:
        """A lookup of a placed order by its id that finds it only once it is no longer open."""
        client = self.binance if venue == "binance" else self.upbit

        async def closed() -> dict[str, Any]:
            order: dict[str, Any] = await client.fetch_order(order_id, market)
            if order.get("status") in (None, "open"):
                raise ValueError(f"still open (status {order.get('status')!r})")
            return await self._with_binance_fees(order, market) if venue == "binance" else order

        return closed
