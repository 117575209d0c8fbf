"""The simulator's signature and JWT checks, against values published by Binance and jwt.io.

If these checks accepted anything, the live executor's end-to-end tests would prove nothing
about signing; so each check is shown to accept the reference value and refuse a near miss.
"""

from __future__ import annotations

import pytest
from ccxt.base.exchange import Exchange

from harness.exchange_sim.auth import (
    AuthError,
    SimKeys,
    binance_signature,
    upbit_query_hash,
    verify_binance,
    verify_upbit_jwt,
)

BINANCE_DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BINANCE_DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
BINANCE_DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
"""The HMAC-SHA256 example of Binance's spot API documentation ("SIGNED endpoint examples")."""
DOC_NOW_MS = 1499827319559 + 200
TAMPERED = BINANCE_DOC_QUERY.replace("price=0.1", "price=0.2")

JWT_IO_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
JWT_IO_SECRET = "your-256-bit-secret"
"""jwt.io's HS256 example token and its secret."""

DOC_KEYS = SimKeys(binance_key=BINANCE_DOC_KEY, binance_secret=BINANCE_DOC_SECRET)


def test_binance_signature_matches_the_documented_example() -> None:
    assert binance_signature(BINANCE_DOC_SECRET, BINANCE_DOC_QUERY) == BINANCE_DOC_SIGNATURE


def test_verify_binance_accepts_the_documented_request_in_body_or_query() -> None:
    signed = f"{BINANCE_DOC_QUERY}&signature={BINANCE_DOC_SIGNATURE}"
    from_body = verify_binance(DOC_KEYS, BINANCE_DOC_KEY, "", signed, DOC_NOW_MS)
    from_query = verify_binance(DOC_KEYS, BINANCE_DOC_KEY, signed, "", DOC_NOW_MS)
    assert from_body == from_query
    assert from_body["symbol"] == "LTCBTC" and "signature" not in from_body


def test_verify_binance_signs_query_then_body_concatenated() -> None:
    query, body = BINANCE_DOC_QUERY.split("quantity=")
    signed_body = f"quantity={body}&signature={BINANCE_DOC_SIGNATURE}"
    params = verify_binance(DOC_KEYS, BINANCE_DOC_KEY, query, signed_body, DOC_NOW_MS)
    assert (params["symbol"], params["quantity"]) == ("LTCBTC", "1")
    with pytest.raises(AuthError) as refused:
        verify_binance(DOC_KEYS, BINANCE_DOC_KEY, query.replace("BUY", "SELL"), signed_body, DOC_NOW_MS)
    assert refused.value.body["code"] == -1022


@pytest.mark.parametrize(
    ("api_key", "payload", "now_ms", "status", "code"),
    [
        (None, f"{BINANCE_DOC_QUERY}&signature={BINANCE_DOC_SIGNATURE}", DOC_NOW_MS, 401, -2014),
        ("other-key", f"{BINANCE_DOC_QUERY}&signature={BINANCE_DOC_SIGNATURE}", DOC_NOW_MS, 401, -2015),
        (BINANCE_DOC_KEY, BINANCE_DOC_QUERY, DOC_NOW_MS, 400, -1102),
        (BINANCE_DOC_KEY, f"{TAMPERED}&signature={BINANCE_DOC_SIGNATURE}", DOC_NOW_MS, 400, -1022),
        (BINANCE_DOC_KEY, f"{BINANCE_DOC_QUERY}&signature={BINANCE_DOC_SIGNATURE}", DOC_NOW_MS + 6000, 400,
         -1021),
    ],
)  # fmt: skip
def test_verify_binance_refuses_with_the_venue_error(
    api_key: str | None, payload: str, now_ms: int, status: int, code: int
) -> None:
    with pytest.raises(AuthError) as refused:
        verify_binance(DOC_KEYS, api_key, "", payload, now_ms)
    assert (refused.value.status, refused.value.body["code"]) == (status, code)


def test_upbit_jwt_accepts_the_jwt_io_example() -> None:
    claims = verify_upbit_jwt(JWT_IO_SECRET, JWT_IO_TOKEN)
    assert claims == {"sub": "1234567890", "name": "John Doe", "iat": 1516239022}


@pytest.mark.parametrize(
    ("secret", "token"),
    [
        ("your-256-bit-secreT", JWT_IO_TOKEN),
        (JWT_IO_SECRET, JWT_IO_TOKEN[:-2] + "5d"),
        (JWT_IO_SECRET, JWT_IO_TOKEN.replace("eyJzdWIiOiIxMjM0NTY3ODkw", "eyJzdWIiOiIxMjM0NTY3ODkx")),
        (JWT_IO_SECRET, "not-a-token"),
    ],
)
def test_upbit_jwt_refuses_a_wrong_secret_or_a_tampered_token(secret: str, token: str) -> None:
    with pytest.raises(ValueError):
        verify_upbit_jwt(secret, token)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_upbit_jwt_accepts_what_ccxt_signs(algorithm: str) -> None:
    payload = {
        "access_key": "sim-upbit-access",
        "nonce": "n-1",
        "query_hash": "ab",
        "query_hash_alg": "SHA512",
    }
    token = Exchange.jwt(payload, b"sim-upbit-secret", algorithm)
    assert verify_upbit_jwt("sim-upbit-secret", token) == payload
    with pytest.raises(ValueError):
        verify_upbit_jwt("sim-upbit-secreT", token)


def test_upbit_query_hash_equals_ccxts_over_the_unescaped_query() -> None:
    params = {
        "market": "KRW-BTC",
        "side": "bid",
        "ord_type": "price",
        "price": "259,098",
        "identifier": "a b",
    }
    expected = Exchange.hash(Exchange.encode(Exchange.rawencode(params)), "sha512")
    assert upbit_query_hash(params.items()) == expected
    assert upbit_query_hash(reversed(params.items())) != expected
