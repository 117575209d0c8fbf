"""The simulator speaks the venues' dialects: ccxt's own parsers read its answers as the model's books.

A simulator runs in process on a loopback port with a hand-driven clock, and ccxt's unmodified
synchronous `upbit` and `binance` classes fetch from it over real HTTP. Their parsed books must
equal the seeded model's level for level, and every faulted book must still parse.
"""

from __future__ import annotations

import json
import math
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from arbitrage.cli import main
from arbitrage.market.book import OrderBook
from arbitrage.market.ccxt_source import point_at
from arbitrage.market.model import MarketModel
from arbitrage.market.universe import FX_SYMBOL, UNIVERSE
from harness.exchange_sim import dialects
from harness.exchange_sim.command import FAULT_CHOICES
from harness.exchange_sim.control import FAULT_KINDS
from harness.exchange_sim.exchange import ExchangeSim
from harness.exchange_sim.server import SimServer

SEED = 11
SYMBOLS = ("BTC", "ETH", "XRP", "SHIB", "BCH")
DT = 0.5
START = 1_800_000_000.0


class Clock:
    """A wall clock the test moves by hand, so the model tick is known exactly."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def server(clock: Clock) -> Iterator[SimServer]:
    srv = SimServer(ExchangeSim(SEED, SYMBOLS, dt_sec=DT, clock=clock)).start()
    try:
        yield srv
    finally:
        srv.stop()


def _client(cls: Any, url: str, **options: Any) -> Any:
    exchange = cls({"enableRateLimit": False, "timeout": 5000, "options": options})
    point_at(exchange, url)
    return exchange


@pytest.fixture
def upbit(server: SimServer) -> Any:
    return _client(ccxt.upbit, server.url)


@pytest.fixture
def binance(server: SimServer) -> Any:
    return _client(ccxt.binance, server.url, defaultType="spot", fetchMarkets={"types": ["spot"]})


def _control(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{url}/_control/faults", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _levels(raw: list[list[Any]]) -> tuple[tuple[float, float], ...]:
    return tuple((float(p), float(s)) for p, s, *_ in raw)


def _model_at(tick: int) -> MarketModel:
    model = MarketModel(SEED, SYMBOLS, dt_sec=DT)
    for _ in range(tick):
        model.step(0)
    return model


@pytest.mark.parametrize("tick", [0, 1, 7])
def test_books_parse_through_ccxt_level_for_level(tick: int, clock: Clock, upbit: Any, binance: Any) -> None:
    clock.now = START + tick * DT + 0.01
    expected = _model_at(tick).books_at_current(round((START + tick * DT) * 1000))
    upbit_books = upbit.fetch_order_books([f"{s}/KRW" for s in (FX_SYMBOL, *SYMBOLS)])
    model_upbit: dict[str, OrderBook] = {FX_SYMBOL: expected.fx, **expected.upbit}
    for symbol, book in model_upbit.items():
        parsed = upbit_books[f"{symbol}/KRW"]
        assert _levels(parsed["bids"]) == book.bids, symbol
        assert _levels(parsed["asks"]) == book.asks, symbol
        assert parsed["timestamp"] == book.timestamp_ms
    for symbol, book in expected.binance.items():
        parsed = binance.fetch_order_book(f"{symbol}/USDT", 20)
        assert _levels(parsed["bids"]) == book.bids, symbol
        assert _levels(parsed["asks"]) == book.asks, symbol
        assert parsed["nonce"] == dialects.binance_update_id(tick, SYMBOLS.index(symbol))
        assert parsed["timestamp"] is None


def test_binance_limit_and_upbit_count_cut_depth(upbit: Any, binance: Any) -> None:
    assert len(binance.fetch_order_book("BTC/USDT", 5)["bids"]) == 5
    assert len(upbit.fetch_order_books(["BTC/KRW"], 3)["BTC/KRW"]["asks"]) == 3


def test_markets_parse_with_the_venues_precision(upbit: Any, binance: Any) -> None:
    upbit.load_markets()
    binance.load_markets()
    assert set(upbit.symbols) == {f"{s}/KRW" for s in (FX_SYMBOL, *SYMBOLS)}
    assert upbit.market("BTC/KRW")["id"] == "KRW-BTC"
    assert set(binance.symbols) == {f"{s}/USDT" for s in SYMBOLS}
    for symbol in SYMBOLS:
        market = binance.market(f"{symbol}/USDT")
        coin = UNIVERSE[symbol]
        assert (market["id"], market["spot"], market["active"]) == (f"{symbol}USDT", True, True)
        assert market["precision"]["price"] == coin.binance_tick
        assert market["precision"]["amount"] == coin.binance_step
        assert market["limits"]["cost"]["min"] == 5.0


def test_upbit_details_flag_adds_market_event(server: SimServer) -> None:
    with urllib.request.urlopen(f"{server.url}/v1/market/all?isDetails=true", timeout=5) as response:
        listing = json.load(response)
    assert {"market", "korean_name", "english_name", "market_event"} <= set(listing[0])
    assert isinstance(listing[0]["market_event"]["warning"], bool)


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("crossed", lambda b: b["bids"][0][0] > b["asks"][0][0]),
        ("empty", lambda b: b["bids"] == [] and b["asks"] == []),
        ("nan", lambda b: all(math.isnan(p) for p, _ in b["bids"] + b["asks"])),
        ("negative", lambda b: all(p < 0 for p, _ in b["bids"] + b["asks"])),
    ],
)
def test_bad_books_still_parse_through_ccxt(
    fault: str, check: Any, server: SimServer, upbit: Any, binance: Any
) -> None:
    status, _ = _control(server.url, {"faults": [fault], "markets": ["BTC", FX_SYMBOL]})
    assert status == 200
    books = upbit.fetch_order_books(["BTC/KRW", "USDT/KRW", "ETH/KRW"])
    assert check(books["BTC/KRW"]) and check(books["USDT/KRW"])
    assert not check(books["ETH/KRW"])
    assert check(binance.fetch_order_book("BTC/USDT", 20))
    assert not check(binance.fetch_order_book("ETH/USDT", 20))


def test_stale_freezes_prices_and_timestamps(
    clock: Clock, server: SimServer, upbit: Any, binance: Any
) -> None:
    clock.now = START + 3 * DT
    assert _control(server.url, {"faults": ["stale"]})[0] == 200
    before = upbit.fetch_order_books(["BTC/KRW"])["BTC/KRW"], binance.fetch_order_book("BTC/USDT", 20)
    clock.now = START + 40 * DT
    after = upbit.fetch_order_books(["BTC/KRW"])["BTC/KRW"], binance.fetch_order_book("BTC/USDT", 20)
    assert after[0]["timestamp"] == before[0]["timestamp"] == round((START + 3 * DT) * 1000)
    assert (after[0]["bids"], after[1]["bids"], after[1]["nonce"]) == (
        before[0]["bids"],
        before[1]["bids"],
        before[1]["nonce"],
    )
    assert _control(server.url, {"faults": []})[0] == 200
    assert upbit.fetch_order_books(["BTC/KRW"])["BTC/KRW"]["timestamp"] == round((START + 40 * DT) * 1000)


def test_halted_market_is_unlisted_on_upbit_and_invalid_on_binance(
    server: SimServer, upbit: Any, binance: Any
) -> None:
    upbit.load_markets()
    binance.load_markets()
    _control(server.url, {"faults": ["halted"], "markets": ["ETH"]})
    books = upbit.fetch_order_books(["BTC/KRW", "ETH/KRW"])
    assert set(books) == {"BTC/KRW"}
    with pytest.raises(ccxt.BadSymbol):
        binance.fetch_order_book("ETH/USDT", 20)
    listed = {m["symbol"]: m for m in binance.fetch_markets()}
    assert listed["ETH/USDT"]["active"] is False and listed["BTC/USDT"]["active"] is True
    assert "ETH/KRW" not in {m["symbol"] for m in upbit.fetch_markets()}


def test_binance_error_bodies_map_to_ccxt_errors(server: SimServer, binance: Any) -> None:
    binance.load_markets()
    _control(server.url, {"faults": ["rate_limit"], "venues": ["binance"]})
    with pytest.raises(ccxt.DDoSProtection, match="-1003"):
        binance.fetch_order_book("BTC/USDT", 20)
    _control(server.url, {"faults": ["server_error"]})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        binance.fetch_order_book("BTC/USDT", 20)


def _status_and_retry_after(url: str) -> tuple[int, str | None]:
    try:
        with urllib.request.urlopen(f"{url}/api/v3/depth?symbol=BTCUSDT&limit=20", timeout=5) as response:
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


def test_429_and_418_carry_the_retry_after_the_control_api_sets(server: SimServer) -> None:
    assert _control(server.url, {"faults": ["rate_limit"]})[1]["retry_after_sec"] == 60
    assert _status_and_retry_after(server.url) == (429, "60")
    _control(server.url, {"faults": ["ban"], "retry_after_sec": 2.5})
    assert _status_and_retry_after(server.url) == (418, "2.5")
    _control(server.url, {"retry_after_sec": None})
    assert _status_and_retry_after(server.url) == (418, None)
    _control(server.url, {"faults": ["server_error"], "retry_after_sec": 5})
    assert _status_and_retry_after(server.url)[1] is None
    for bad in (-1, "soon", True, 1e9):
        status, body = _control(server.url, {"retry_after_sec": bad})
        assert status == 400 and "retry_after_sec" in body["error"], bad


def test_control_api_counts_requests_and_validates(server: SimServer, binance: Any) -> None:
    binance.load_markets()
    binance.fetch_order_book("BTC/USDT", 20)
    binance.fetch_order_book("ETH/USDT", 20)
    with urllib.request.urlopen(f"{server.url}/_control/stats", timeout=5) as response:
        stats = json.load(response)
    assert stats["requests"] == {"/api/v3/depth": 2, "/api/v3/exchangeInfo": 1}
    assert (stats["faults"], stats["latency_ms"], stats["error_rate"], stats["tick"]) == ([], 0, 0.0, 0)
    status, state = _control(server.url, {"latency_ms": 25, "error_rate": 0.5})
    assert status == 200 and (state["latency_ms"], state["error_rate"], state["faults"]) == (25, 0.5, [])
    for bad in (
        {"faults": ["latency"]},
        {"faults": ["meteor"]},
        {"error_rate": 2},
        {"markets": ["XYZ"]},
        {"x": 1},
    ):
        status, body = _control(server.url, bad)
        assert status == 400 and body["error"], bad


def test_reject_after_is_set_validated_and_cleared(server: SimServer) -> None:
    status, state = _control(server.url, {"reject_after": {"binance": 1}})
    assert status == 200 and state["reject_after"] == {"binance": 1}
    for bad in (["binance"], {"binance": -1}, {"kraken": 1}, {"binance": True}, {"binance": 1.5}):
        status, body = _control(server.url, {"reject_after": bad})
        assert status == 400 and "reject_after" in body["error"], bad
    assert _control(server.url, {"reject_after": None})[1]["reject_after"] == {}


def test_cli_fault_choices_match_the_simulator() -> None:
    assert sorted(FAULT_CHOICES) == sorted(FAULT_KINDS)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["sim", "--port", "-1"], "invalid port '-1'"),
        (["sim", "--port", "70000", "--seed", "1"], "invalid port"),
        (["sim", "--port", "0", "--seed", "x"], "invalid seed"),
        (["sim", "--port", "0", "--seed", "1", "--fault", "meteor"], "invalid choice: 'meteor'"),
        (["sim", "--port", "0", "--seed", "1", "--error-rate", "1.5"], "invalid error rate"),
        (["sim", "--port", "0", "--seed", "1", "--symbols", "BTC,NOPE"], "invalid symbols"),
        (["sim", "--port", "0", "--seed", "1", "--retry-after-sec", "-1"], "invalid Retry-After"),
        (["sim", "--port", "0", "--seed", "1", "--slippage-bps", "-5"], "invalid slippage '-5'"),
        (["sim", "--port", "0", "--seed", "1", "--slippage-bps", "10000"], "invalid slippage '10000'"),
        (["sim", "--port", "0", "--seed", "1", "--slippage-bps", "nan"], "invalid slippage 'nan'"),
    ],
)
def test_bad_sim_flags_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_port_in_use_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["sim", "--port", str(port), "--seed", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err
