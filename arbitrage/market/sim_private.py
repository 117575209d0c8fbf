"""The simulator's private (signed) API: Binance and Upbit market orders, filled against the model.

A live executor must be exercised end to end without a real venue, so the simulator checks
credentials the way the venues do and answers with their real bodies: Binance verifies the
`X-MBX-APIKEY` header and an HMAC-SHA256 `signature` over the query string plus the body;
Upbit verifies an HS256/HS512 JWT whose payload carries the access key, a fresh nonce and the
SHA512 `query_hash` of the request parameters. Every private request, accepted or refused, is
counted per route, so a test can assert that a refused run sent none.

Routes: Binance `POST /api/v3/order` (MARKET fills at once, FULL response with fills; LIMIT rests
open); Upbit `POST /v1/orders` (`ord_type` "price" buys for a KRW amount, "market" sells a volume,
both answered in state "wait" like the venue; "limit" rests open). The signed reads (balances,
orders, fills, lookup by client order id) are answered by `sim_account`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from arbitrage.market import sim_account as acct
from arbitrage.market import sim_dialects as d
from arbitrage.market.book import OrderBook
from arbitrage.market.sim_account import SimOrder
from arbitrage.market.universe import FX_SYMBOL, UNIVERSE

BINANCE_TEST_KEY = "sim-binance-key"
BINANCE_TEST_SECRET = "sim-binance-secret"
UPBIT_TEST_ACCESS = "sim-upbit-access"
UPBIT_TEST_SECRET = "sim-upbit-secret"
BINANCE_FEE = Decimal("0.001")
UPBIT_FEE = Decimal("0.0005")
UPBIT_MIN_TOTAL_KRW = Decimal(5000)
BINANCE_MIN_NOTIONAL = Decimal(5)
DEFAULT_RECV_WINDOW_MS = 5000
KST = timezone(timedelta(hours=9))
EIGHT = Decimal("0.00000001")

BookOf = Callable[[str, str], OrderBook | None]
"""(venue, base symbol) -> the current unfaulted book, or None for an unknown market."""

_JWT_ALGS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}
_PRIVATE_ROUTES = frozenset(
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


@dataclass(frozen=True, slots=True)
class SimKeys:
    """The credentials the simulator accepts: fixed, recognizable test values by default."""

    binance_key: str = BINANCE_TEST_KEY
    binance_secret: str = BINANCE_TEST_SECRET
    upbit_access: str = UPBIT_TEST_ACCESS
    upbit_secret: str = UPBIT_TEST_SECRET


class AuthError(Exception):
    """A refused credential: the venue's HTTP status and error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body))
        self.status = status
        self.body = body


def binance_signature(secret: str, payload: str) -> str:
    """Binance's signature: hex HMAC-SHA256 of the signed parameters with the API secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def verify_binance(
    keys: SimKeys, api_key: str | None, raw_query: str, raw_body: str, now_ms: int
) -> dict[str, str]:
    """The request's parameters once key, signature and timestamp check out; raises AuthError.

    The signed payload is the query string concatenated with the body, without `signature`.
    """
    if not api_key:
        raise AuthError(401, d.binance_error(-2014, "API-key format invalid."))
    if not hmac.compare_digest(api_key, keys.binance_key):
        raise AuthError(401, d.binance_error(-2015, "Invalid API-key, IP, or permissions for action."))
    signatures: list[str] = []
    parts: list[str] = []
    for raw in (raw_query, raw_body):
        kept = []
        for pair in raw.split("&") if raw else []:
            if pair.startswith("signature="):
                signatures.append(pair[len("signature=") :])
            else:
                kept.append(pair)
        parts.append("&".join(kept))
    if len(signatures) != 1 or not signatures[0]:
        msg = "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
        raise AuthError(400, d.binance_error(-1102, msg))
    expected = binance_signature(keys.binance_secret, "".join(parts))
    if not hmac.compare_digest(signatures[0].lower(), expected):
        raise AuthError(400, d.binance_error(-1022, "Signature for this request is not valid."))
    params = dict(parse_qsl(raw_query)) | dict(parse_qsl(raw_body))
    params.pop("signature", None)
    stamp, window = params.get("timestamp", ""), params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
    if not stamp.isdigit() or not window.isdigit():
        msg = "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        raise AuthError(400, d.binance_error(-1102, msg))
    if int(stamp) > now_ms + 1000 or now_ms - int(stamp) > int(window):
        raise AuthError(
            400, d.binance_error(-1021, "Timestamp for this request is outside of the recvWindow.")
        )
    return params


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def upbit_query_hash(params: Iterable[tuple[str, str]]) -> str:
    """SHA512 hex of the unescaped query string, as Upbit documents for `query_hash`."""
    return hashlib.sha512(unquote(urlencode(list(params), quote_via=quote)).encode()).hexdigest()


def verify_upbit_jwt(secret: str, token: str) -> dict[str, Any]:
    """The JWT's payload when its HS256/HS512 signature matches `secret`; raises ValueError."""
    try:
        head, payload, signature = token.split(".")
        header = json.loads(_b64decode(head))
        claims = json.loads(_b64decode(payload))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"malformed token: {exc}") from None
    algorithm = _JWT_ALGS.get(str(header.get("alg")) if isinstance(header, dict) else "")
    if algorithm is None or not isinstance(claims, dict):
        raise ValueError("unsupported algorithm or payload")
    digest = hmac.new(secret.encode(), f"{head}.{payload}".encode(), algorithm).digest()
    if not hmac.compare_digest(signature, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()):
        raise ValueError("signature mismatch")
    return claims


def _upbit_refusal(name: str, message: str) -> AuthError:
    return AuthError(401, d.upbit_error(name, message))


def _dec(value: Decimal) -> str:
    return format(value.quantize(EIGHT).normalize(), "f")


def _walk(
    levels: Iterable[tuple[float, float]], qty: Decimal | None, cost: Decimal | None
) -> list[tuple[Decimal, Decimal]]:
    """Consume levels for a base `qty` or a quote `cost`; [(price, qty)] per level touched."""
    fills: list[tuple[Decimal, Decimal]] = []
    for price_f, size_f in levels:
        price, size = Decimal(repr(price_f)), Decimal(repr(size_f))
        if qty is not None:
            take = min(size, qty)
            qty -= take
        else:
            assert cost is not None
            take = min(size, (cost / price).quantize(EIGHT, rounding="ROUND_DOWN"))
            cost -= take * price
        if take > 0:
            fills.append((price, take))
        if (qty is not None and qty <= 0) or (cost is not None and cost < price * EIGHT):
            break
    return fills


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
        self._nonces: set[str] = set()
        self._ids = itertools.count(1_000_001)

    def claim(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        """Whether the request is private (a private route or carrying credentials); counts it if so."""
        private = (method, path) in _PRIVATE_ROUTES or "x-mbx-apikey" in headers or "authorization" in headers
        if private:
            with self._lock:
                self.requests[f"{method} {path}"] += 1
        return private

    def set_rejects(self, venues: frozenset[str]) -> None:
        with self._lock:
            self.reject_orders = venues

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "private_requests": dict(sorted(self.requests.items())),
                "orders": [o.to_json() for o in self.orders],
                "reject_orders": sorted(self.reject_orders),
            }

    def handle(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes
    ) -> d.Reply:
        """Authenticate and answer one private request (counted already by `claim`)."""
        now_ms = round(self._clock() * 1000.0)
        try:
            if path.startswith("/v1/"):
                return self._upbit(method, path, raw_query, headers, body, now_ms)
            params = verify_binance(
                self.keys, headers.get("x-mbx-apikey"), raw_query, body.decode(errors="replace"), now_ms
            )
        except AuthError as exc:
            return d.json_reply(exc.status, exc.body)
        if method == "GET":
            with self._lock:
                orders = list(self.orders)
            return acct.binance_read(path, params, orders, BINANCE_FEE, now_ms)
        if (method, path) != ("POST", "/api/v3/order"):
            return d.json_reply(404, d.binance_error(-1000, "Not found."))
        return self._binance_order(params, now_ms)

    # -- Binance ---------------------------------------------------------------------------
    def _binance_order(self, params: Mapping[str, str], now_ms: int) -> d.Reply:
        by_id = {d.binance_symbol(s): s for s in UNIVERSE}
        symbol = by_id.get(params.get("symbol", ""))
        book = None if symbol is None else self._book_of("binance", symbol)
        if symbol is None or book is None:
            return d.json_reply(400, d.binance_error(-1121, "Invalid symbol."))
        side = params.get("side", "")
        if side not in ("BUY", "SELL"):
            return d.json_reply(400, d.binance_error(-1100, "Illegal characters found in parameter 'side'."))
        kind = params.get("type")
        if kind not in ("MARKET", "LIMIT"):
            return d.json_reply(400, d.binance_error(-1116, "Invalid orderType."))
        try:
            qty = Decimal(params.get("quantity", ""))
            limit = Decimal(params["price"]) if kind == "LIMIT" else None
        except (InvalidOperation, KeyError):
            return d.json_reply(
                400, d.binance_error(-1100, "Illegal characters found in parameter 'quantity'.")
            )
        step = Decimal(repr(UNIVERSE[symbol].binance_step))
        if qty <= 0 or qty % step != 0:
            return d.json_reply(400, d.binance_error(-1013, "Filter failure: LOT_SIZE"))
        if "binance" in self.reject_orders:
            return d.json_reply(
                400, d.binance_error(-2010, "Account has insufficient balance for requested action.")
            )
        fills = [] if limit is not None else _walk(book.asks if side == "BUY" else book.bids, qty, None)
        executed = sum((q for _, q in fills), Decimal(0))
        cost = sum((p * q for p, q in fills), Decimal(0))
        if (cost if limit is None else qty * limit) < BINANCE_MIN_NOTIONAL:
            return d.json_reply(400, d.binance_error(-1013, "Filter failure: NOTIONAL"))
        order = SimOrder(
            "binance", symbol, side.lower(), executed, cost, cost * BINANCE_FEE, str(next(self._ids)),
            tuple(fills), dict(params), now_ms, params.get("newClientOrderId") or uuid.uuid4().hex[:22],
            open=limit is not None, limit_price=limit, orig_qty=qty,
        )  # fmt: skip
        self._keep(order)
        doc = acct.binance_order_doc(order)
        doc.update({"transactTime": now_ms, "fills": acct.binance_fill_docs(order, BINANCE_FEE)})
        return d.json_reply(200, doc)

    def _keep(self, order: SimOrder) -> None:
        with self._lock:
            self.orders.append(order)

    # -- Upbit -----------------------------------------------------------------------------
    def _upbit_params(self, method: str, raw_query: str, body: bytes) -> list[tuple[str, str]]:
        if method == "GET":
            return parse_qsl(raw_query, keep_blank_values=True)
        doc = json.loads(body or b"{}")
        if not isinstance(doc, dict):
            raise _upbit_refusal("invalid_query_payload", "Jwt 토큰의 query 정보가 올바르지 않습니다.")
        return [(k, "true" if v is True else "false" if v is False else str(v)) for k, v in doc.items()]

    def _upbit(
        self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes, now_ms: int
    ) -> d.Reply:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise _upbit_refusal("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
        try:
            claims = verify_upbit_jwt(self.keys.upbit_secret, auth[len("Bearer ") :])
        except ValueError:
            raise _upbit_refusal("jwt_verification", "Jwt 토큰 검증에 실패했습니다.") from None
        if claims.get("access_key") != self.keys.upbit_access:
            raise _upbit_refusal("invalid_access_key", "잘못된 엑세스 키입니다.")
        nonce = str(claims.get("nonce") or "")
        with self._lock:
            reused = not nonce or nonce in self._nonces
            self._nonces.add(nonce)
        if reused:
            raise _upbit_refusal("nonce_used", "이미 요청한 nonce값이 다시 사용되었습니다.")
        try:
            params = self._upbit_params(method, raw_query, body)
        except ValueError:
            raise _upbit_refusal(
                "invalid_query_payload", "Jwt 토큰의 query 정보가 올바르지 않습니다."
            ) from None
        if params and (
            claims.get("query_hash_alg", "SHA512") != "SHA512"
            or not hmac.compare_digest(str(claims.get("query_hash", "")), upbit_query_hash(params))
        ):
            raise _upbit_refusal("invalid_query_payload", "Jwt 토큰의 query 정보가 올바르지 않습니다.")
        if (method, path) == ("POST", "/v1/orders"):
            return self._upbit_order(dict(params), now_ms)
        if method == "GET":
            with self._lock:
                orders = list(self.orders)
            return acct.upbit_read(path, dict(params), orders, _upbit_order_doc)
        return d.json_reply(404, d.upbit_error(404, "Not Found"))

    def _upbit_order(self, params: Mapping[str, str], now_ms: int) -> d.Reply:
        known = {d.upbit_market_code(s): s for s in (FX_SYMBOL, *UNIVERSE)}
        symbol = known.get(params.get("market", ""))
        book = None if symbol is None else self._book_of("upbit", symbol)
        if symbol is None or book is None:
            return d.json_reply(404, d.upbit_error("market_does_not_exist", "마켓 정보가 없습니다."))
        side, ord_type = params.get("side"), params.get("ord_type")
        try:
            if side == "bid" and ord_type == "price" and "volume" not in params:
                spend = Decimal(params["price"])
                fills = _walk(book.asks, None, spend)
                minimum, error = spend, "under_min_total_bid"
            elif side in ("bid", "ask") and ord_type == "limit":
                limit, volume = Decimal(params["price"]), Decimal(params["volume"])
                fills, minimum, error = [], limit * volume, f"under_min_total_{side}"
            elif side == "ask" and ord_type == "market" and "price" not in params:
                fills = _walk(book.bids, Decimal(params["volume"]), None)
                minimum, error = (
                    Decimal(params["volume"]) * Decimal(repr(book.best_bid)),
                    "under_min_total_ask",
                )
            else:
                return d.json_reply(
                    400, d.upbit_error("validation_error", "side, ord_type, price or volume invalid")
                )
        except (KeyError, InvalidOperation):
            return d.json_reply(400, d.upbit_error(400, d.UPBIT_MISSING_PARAMETER))
        if minimum < UPBIT_MIN_TOTAL_KRW:
            return d.json_reply(400, d.upbit_error(error, "최소주문금액 이상으로 주문해주세요"))
        if "upbit" in self.reject_orders:
            asset = "KRW" if side == "bid" else symbol
            return d.json_reply(
                400, d.upbit_error(f"insufficient_funds_{side}", f"주문가능한 금액({asset})이 부족합니다.")
            )
        executed = sum((q for _, q in fills), Decimal(0))
        cost = sum((p * q for p, q in fills), Decimal(0))
        resting = ord_type == "limit"
        order = SimOrder(
            "upbit", symbol, "buy" if side == "bid" else "sell", executed, cost, cost * UPBIT_FEE,
            str(uuid.uuid4()), tuple(fills), dict(params), now_ms, params.get("identifier", ""),
            open=resting, limit_price=Decimal(params["price"]) if resting else None,
            orig_qty=Decimal(params["volume"]) if "volume" in params else None,
        )  # fmt: skip
        self._keep(order)
        return d.json_reply(201, _upbit_order_doc(order, done=False))


def _kst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).astimezone(KST).isoformat(timespec="seconds")


def _upbit_order_doc(order: SimOrder, done: bool) -> dict[str, Any]:
    """Upbit's order: as accepted ("wait", nothing executed yet) or looked up ("done", with trades)."""
    buy = order.side == "buy"
    req = order.request
    limit = order.limit_price is not None
    doc: dict[str, Any] = {
        "uuid": order.id, "side": "bid" if buy else "ask", "ord_type": req.get("ord_type"),
        "price": req.get("price") if buy or limit else None, "state": "done" if done else "wait",
        "market": d.upbit_market_code(order.symbol), "created_at": _kst(order.created_ms),
        "volume": None if buy and not limit else req.get("volume"),
        "remaining_volume": "0" if done or (buy and not limit) else req.get("volume"),
        "executed_funds": _dec(order.cost) if done else "0",
        "reserved_fee": _dec(order.fee), "remaining_fee": "0" if done else _dec(order.fee),
        "paid_fee": _dec(order.fee) if done else "0", "locked": "0" if done else _dec(order.cost + order.fee),
        "executed_volume": _dec(order.qty) if done else "0", "prevented_volume": "0", "prevented_locked": "0",
        "trades_count": len(order.fills) if done else 0,
    }  # fmt: skip
    if "identifier" in req:
        doc["identifier"] = req["identifier"]
    if done:
        doc["trades"] = [
            {"market": doc["market"], "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{order.id}/{k}")),
             "price": _dec(p), "volume": _dec(q), "funds": _dec(p * q), "trend": "up" if buy else "down",
             "created_at": doc["created_at"], "side": doc["side"]}
            for k, (p, q) in enumerate(order.fills)
        ]  # fmt: skip
    return doc
