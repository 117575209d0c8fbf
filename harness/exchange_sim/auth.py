"""How the simulator checks credentials: Binance's HMAC signature and Upbit's JWT, as the venues do.

A live executor's signing is proven only if the simulator refuses what the venues refuse: Binance
verifies the `X-MBX-APIKEY` header and a hex HMAC-SHA256 `signature` over the query string plus
the body, within the `recvWindow`; Upbit verifies an HS256/HS512 JWT (checked with PyJWT) whose
payload carries the access key, a nonce never used before and the SHA512 `query_hash` of the
request's parameters. A refusal is an `AuthError` carrying the venue's status and error body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import jwt
from jwt.algorithms import HMACAlgorithm

from harness.exchange_sim import dialects as d

BINANCE_TEST_KEY = "sim-binance-key"
BINANCE_TEST_SECRET = "sim-binance-secret"
UPBIT_TEST_ACCESS = "sim-upbit-access"
UPBIT_TEST_SECRET = "sim-upbit-secret"
DEFAULT_RECV_WINDOW_MS = 5000
UPBIT_JWT_ALGORITHMS = ("HS256", "HS512")
"""The signing algorithms Upbit accepts (ccxt signs with HS256 unless told otherwise)."""
UPBIT_BAD_QUERY = "Jwt 토큰의 query 정보가 올바르지 않습니다."


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


def _split_signature(raw_query: str, raw_body: str) -> tuple[list[str], str]:
    """The `signature` values found, and the signed payload: query then body, signature left out."""
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
    return signatures, "".join(parts)


def _check_timestamp(params: Mapping[str, str], now_ms: int) -> None:
    stamp, window = params.get("timestamp", ""), params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
    if not stamp.isdigit() or not window.isdigit():
        msg = "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        raise AuthError(400, d.binance_error(-1102, msg))
    if int(stamp) > now_ms + 1000 or now_ms - int(stamp) > int(window):
        raise AuthError(
            400, d.binance_error(-1021, "Timestamp for this request is outside of the recvWindow.")
        )


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
    signatures, payload = _split_signature(raw_query, raw_body)
    if len(signatures) != 1 or not signatures[0]:
        msg = "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
        raise AuthError(400, d.binance_error(-1102, msg))
    if not hmac.compare_digest(signatures[0].lower(), binance_signature(keys.binance_secret, payload)):
        raise AuthError(400, d.binance_error(-1022, "Signature for this request is not valid."))
    params = dict(parse_qsl(raw_query)) | dict(parse_qsl(raw_body))
    params.pop("signature", None)
    _check_timestamp(params, now_ms)
    return params


def upbit_query_hash(params: Iterable[tuple[str, str]]) -> str:
    """SHA512 hex of the unescaped query string, as Upbit documents for `query_hash`."""
    return hashlib.sha512(unquote(urlencode(list(params), quote_via=quote)).encode()).hexdigest()


class _VenueHmac(HMACAlgorithm):
    """HMAC as the venue verifies it: the secret is the venue's to issue, so its length is not judged.

    PyJWT warns about HMAC secrets shorter than the digest; the simulator's test secrets are short
    on purpose (recognizable, never real), and a warning per request would only be noise.
    """

    def check_key_length(self, key: bytes) -> str | None:
        return None


def _upbit_jws() -> jwt.PyJWS:
    jws = jwt.PyJWS(algorithms=[])
    jws.register_algorithm("HS256", _VenueHmac(HMACAlgorithm.SHA256))
    jws.register_algorithm("HS512", _VenueHmac(HMACAlgorithm.SHA512))
    return jws


_UPBIT_JWS = _upbit_jws()


def verify_upbit_jwt(secret: str, token: str) -> dict[str, Any]:
    """The JWT's payload when its HS256/HS512 signature matches `secret`; raises ValueError."""
    try:
        payload = _UPBIT_JWS.decode(token, secret, algorithms=list(UPBIT_JWT_ALGORITHMS))
        claims = json.loads(payload)
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise ValueError(f"refused token: {exc}") from None
    if not isinstance(claims, dict):
        raise ValueError("the token's payload is not a JSON object")
    return claims


def upbit_refusal(name: str, message: str) -> AuthError:
    """Upbit's 401 with its error name and (Korean) message."""
    return AuthError(401, d.upbit_error(name, message))


def upbit_claims(keys: SimKeys, authorization: str, fresh_nonce: Callable[[str], bool]) -> dict[str, Any]:
    """The claims of a request's `Authorization: Bearer <JWT>` once token, key and nonce check out.

    `fresh_nonce(nonce)` records the nonce and says whether it was new; raises AuthError.
    """
    if not authorization.startswith("Bearer "):
        raise upbit_refusal("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
    try:
        claims = verify_upbit_jwt(keys.upbit_secret, authorization[len("Bearer ") :])
    except ValueError:
        raise upbit_refusal("jwt_verification", "Jwt 토큰 검증에 실패했습니다.") from None
    if claims.get("access_key") != keys.upbit_access:
        raise upbit_refusal("invalid_access_key", "잘못된 엑세스 키입니다.")
    nonce = str(claims.get("nonce") or "")
    if not fresh_nonce(nonce):
        raise upbit_refusal("nonce_used", "이미 요청한 nonce값이 다시 사용되었습니다.")
    return claims


def check_upbit_query(claims: Mapping[str, Any], params: list[tuple[str, str]]) -> None:
    """Refuse unless the claims' `query_hash` (SHA512) covers exactly `params`; raises AuthError."""
    if params and (
        claims.get("query_hash_alg", "SHA512") != "SHA512"
        or not hmac.compare_digest(str(claims.get("query_hash", "")), upbit_query_hash(params))
    ):
        raise upbit_refusal("invalid_query_payload", UPBIT_BAD_QUERY)
