"""A deterministic, seeded model of the Upbit/Binance market the paper engine trades against.

It exists so runs without network access still see realistic books: Binance mids follow a
geometric random walk, KRW/USDT mean-reverts around its level, and each coin's Korean premium
is a mean-reverting common factor plus a per-coin factor. Only the seed drives the random
stream, so the same seed gives the same prices whatever the wall clock says.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Sequence

from arbitrage.market.book import MarketSnapshot, OrderBook
from arbitrage.market.universe import (
    FX_SYMBOL,
    UNIVERSE,
    UPBIT_USDT_KRW_TICK,
    Coin,
    tick_decimals,
    upbit_krw_tick,
)

MIN_LEVELS = 15
"""Fewest levels per side a model may publish; the engine walks depth and needs room."""
SECONDS_PER_YEAR = 365.0 * 24.0 * 3600.0

PREMIUM_MEAN_PCT = 2.2
"""Default level the premium reverts to, in percent: below the strategy's default entry (3 %) by
more than it is above its exit (2 %), so a position entered on a spike is usually closed by the
strategy within seconds rather than left to the stop-time flatten."""
PREMIUM_SIGMA_PCT = 0.7
"""Default stationary standard deviation of a coin of `PREMIUM_REFERENCE_VOL` volatility, in percent."""
PREMIUM_REFERENCE_VOL = 0.70
"""Annualized volatility at which a coin's premium has exactly `premium_sigma_pct`; a coin's premium
dispersion scales with its volatility (BTC's premium is steadier than a small alt's)."""
PREMIUM_HALF_LIFE_SEC = 5.0
"""Default half-life of the per-coin premium factor."""
PREMIUM_COMMON_VAR_SHARE = 0.25
"""Fraction of the premium's stationary variance carried by the factor all coins share."""
PREMIUM_COMMON_HALF_LIFE_MULT = 1.0
"""The common factor reverts this many times slower than the per-coin factor (as fast, by default:
a slow common regime held every coin's position open together until the stop-time flatten)."""

FX_SIGMA_KRW = 3.0
FX_HALF_LIFE_SEC = 600.0
"""KRW/USDT is an OU process: stationary sigma in KRW and half-life in seconds."""

SPREAD_REDRAW_PROB = 0.2
"""Chance per tick that a coin's Upbit spread (in ticks) is drawn again."""
UPBIT_MAX_REL_SPREAD = 0.0025
"""Upbit spreads wider than this relative to price collapse to a single tick."""
LEVEL_REFRESH_PER_TICK = 2
"""Levels per book side whose resting size is redrawn each tick."""
UPBIT_DEPTH_RATIO = 0.6
"""Upbit books rest this fraction of Binance's quote size per level."""
LADDER_CACHE_SIZE = 256
"""Upbit price ladders kept for reuse, across all models in the process. Each holds about 1.6 KB,
and a long run visits ever more of them as prices wander: 4,096 grew a run's memory by about 9 MB
over its first hour (what a soak reads as a leak). With 256, a top10 model step took 297 against
292 µs of CPU (medians), and the tick-floor bench moved by under 10 % either way."""
MIN_LEVEL_USD = 2_000.0
MAX_LEVEL_USD = 60_000.0
"""Mean quote size at the best level and (for the deepest coin) the last level, before +-40% noise."""


def _ou(half_life_sec: float, sigma: float, dt_sec: float) -> tuple[float, float]:
    """Exact one-step decay and noise scale of an OU process with the given stationary sigma."""
    decay = math.exp(-math.log(2.0) * dt_sec / half_life_sec)
    return decay, sigma * math.sqrt(1.0 - decay * decay)


def _krw_grid_ladder(start: float, count: int, up: bool) -> list[float]:
    """Successive Upbit KRW grid prices from `start` (on the grid), crossing price bands exactly."""
    out = [start]
    p = start
    for _ in range(count - 1):
        if up:
            p = p + upbit_krw_tick(p)
        else:
            tick = upbit_krw_tick(p)
            q = p - tick
            lower = upbit_krw_tick(q)
            p = p - lower if lower < tick else q
        p = round(p, tick_decimals(upbit_krw_tick(p)))
        out.append(p)
    return out


Ladder = tuple[float, ...]
"""One side's prices, best first."""


def upbit_price_ladders(target_mid: float, spread_ticks: int, levels: int) -> tuple[Ladder, Ladder]:
    """Upbit bid and ask price ladders (best first) on the KRW grid, centred near `target_mid`.

    Spreads wider than `UPBIT_MAX_REL_SPREAD` of the price collapse to one tick, as they do on
    coins whose price unit is already coarse. Ladders reaching into a neighbouring price band
    switch to that band's unit.
    """
    t = upbit_krw_tick(target_mid)
    if spread_ticks > 1 and spread_ticks * t > UPBIT_MAX_REL_SPREAD * target_mid:
        spread_ticks = 1
    nb = round(target_mid / t - spread_ticks / 2.0)
    return _grid_ladders(t, nb, nb + spread_ticks, levels)


@functools.lru_cache(maxsize=LADDER_CACHE_SIZE)
def _grid_ladders(t: float, nb: int, na: int, levels: int) -> tuple[Ladder, Ladder]:
    """The ladders whose best bid is `nb` ticks of `t` and best ask `na`: prices move a few ticks
    per step, so most steps find their ladders here rather than rounding them again."""
    depth = levels - 1
    if nb > depth and upbit_krw_tick((nb - depth) * t) == t and upbit_krw_tick((na + depth) * t) == t:
        if t >= 1.0:
            return tuple((nb - k) * t for k in range(levels)), tuple((na + k) * t for k in range(levels))
        dec = tick_decimals(t)
        return (
            tuple(round((nb - k) * t, dec) for k in range(levels)),
            tuple(round((na + k) * t, dec) for k in range(levels)),
        )
    ask_tick = upbit_krw_tick(na * t)
    best_ask = round(math.ceil(na * t / ask_tick - 1e-9) * ask_tick, tick_decimals(ask_tick))
    return (
        tuple(_krw_grid_ladder(round(nb * t, tick_decimals(t)), levels, up=False)),
        tuple(_krw_grid_ladder(best_ask, levels, up=True)),
    )


def _decimal_grid(tick: float) -> tuple[int, int]:
    """(q, scale) with `tick` == q / scale exactly in decimal, so that price number m of the grid,
    `round(m * tick, decimals)`, is the integer quotient `m * q / scale`: the same float (both are
    the float nearest the decimal), without rounding through a decimal string per price."""
    scale = 10 ** tick_decimals(tick)
    return round(tick * scale), scale


class MarketModel:
    """Seeded price process producing one `MarketSnapshot` per step of `dt_sec` model time.

    The model's premium is defined against the mids of the books it publishes: Upbit's mid is
    (1 + premium) x KRW-USDT book mid x Binance book mid, rounded onto Upbit's grid. Per-coin
    premium factors start at a stationary draw and the common factor at zero, so even a short
    run sees premia on both sides of the mean rather than one seed-wide regime.
    """

    def __init__(
        self,
        seed: int,
        symbols: Sequence[str],
        *,
        dt_sec: float = 0.5,
        levels: int = 20,
        premium_mean_pct: float = PREMIUM_MEAN_PCT,
        premium_sigma_pct: float = PREMIUM_SIGMA_PCT,
        premium_half_life_sec: float = PREMIUM_HALF_LIFE_SEC,
        krw_per_usdt: float = 1380.0,
    ) -> None:
        unknown = [s for s in symbols if s not in UNIVERSE]
        if unknown:
            raise ValueError(f"symbols not in the universe: {unknown}")
        if len(set(symbols)) != len(symbols) or not symbols:
            raise ValueError("symbols must be a non-empty list without duplicates")
        if levels < MIN_LEVELS:
            raise ValueError(f"levels must be >= {MIN_LEVELS}, got {levels}")
        if not dt_sec > 0.0 or not premium_half_life_sec > 0.0 or premium_sigma_pct < 0.0:
            raise ValueError("dt_sec and premium_half_life_sec must be > 0, premium_sigma_pct >= 0")
        self.tick = 0
        self.dt_sec = dt_sec
        self.levels = levels
        self.symbols: tuple[str, ...] = tuple(symbols)
        self._coins: tuple[Coin, ...] = tuple(UNIVERSE[s] for s in symbols)
        self._rng = random.Random(seed)
        self._ks = range(levels)
        self._fx_mean = krw_per_usdt
        self._premium_mean = premium_mean_pct / 100.0
        sigma = premium_sigma_pct / 100.0
        self._common_decay, self._common_sd = _ou(
            premium_half_life_sec * PREMIUM_COMMON_HALF_LIFE_MULT,
            sigma * math.sqrt(PREMIUM_COMMON_VAR_SHARE),
            dt_sec,
        )
        idio_sigma = [
            sigma * math.sqrt(1.0 - PREMIUM_COMMON_VAR_SHARE) * c.vol_annual / PREMIUM_REFERENCE_VOL
            for c in self._coins
        ]
        self._idio_decay = _ou(premium_half_life_sec, 1.0, dt_sec)[0]
        self._idio_sd = [_ou(premium_half_life_sec, s, dt_sec)[1] for s in idio_sigma]
        self._fx_decay, self._fx_sd = _ou(FX_HALF_LIFE_SEC, FX_SIGMA_KRW, dt_sec)
        self._ret_sd = [c.vol_annual * math.sqrt(dt_sec / SECONDS_PER_YEAR) for c in self._coins]
        self._step_dec = [tick_decimals(c.binance_step) for c in self._coins]
        self._bn_grid = [_decimal_grid(c.binance_tick) for c in self._coins]

        g = self._rng.gauss
        self._fx_dev = g(0.0, FX_SIGMA_KRW)
        self._common = 0.0
        self._idio = [g(0.0, s) for s in idio_sigma]
        self._mid = [c.ref_usd * math.exp(g(0.0, 0.01)) for c in self._coins]
        self._spread = [self._draw_spread(c) for c in self._coins]
        self._sizes: list[list[list[float]]] = [
            [self._level_sizes(i, venue) for venue in (0, 0, 1, 1)] for i in range(len(self._coins))
        ]
        self._fx_sizes = [[self._fx_size(k) for k in self._ks] for _ in range(2)]

    def _draw_spread(self, coin: Coin) -> int:
        lo, hi = coin.upbit_spread_ticks
        return lo + int(self._rng.random() * (hi - lo + 1))

    def _size(self, i: int, venue: int, k: int) -> float:
        """Resting base-unit size at depth `k`: venue 0 is Upbit, 1 is Binance."""
        coin = self._coins[i]
        depth = coin.depth * (UPBIT_DEPTH_RATIO if venue == 0 else 1.0)
        usd = MIN_LEVEL_USD + (MAX_LEVEL_USD - MIN_LEVEL_USD) * depth * k / (self.levels - 1)
        base = usd * (0.6 + 0.8 * self._rng.random()) / self._mid[i]
        if venue == 0:
            return round(base, 8)
        step = coin.binance_step
        return round(max(1, round(base / step)) * step, self._step_dec[i])

    def _level_sizes(self, i: int, venue: int) -> list[float]:
        return [self._size(i, venue, k) for k in self._ks]

    def _fx_size(self, k: int) -> float:
        return round((5_000.0 + 8_000.0 * k) * (0.6 + 0.8 * self._rng.random()), 2)

    def premium_pct(self, symbol: str) -> float:
        """The model's current true mid premium for `symbol`, in percent."""
        i = self.symbols.index(symbol)
        return 100.0 * (self._premium_mean + self._common + self._idio[i])

    def step(self, now_ms: int | None = None) -> MarketSnapshot:
        """Advance one tick of model time and return the books stamped `now_ms` (default: now)."""
        rng = self._rng
        g = rng.gauss
        rand = rng.random
        levels = self.levels
        self.tick += 1
        self._fx_dev = self._fx_dev * self._fx_decay + self._fx_sd * g(0.0, 1.0)
        self._common = self._common * self._common_decay + self._common_sd * g(0.0, 1.0)
        idio_decay, idio_sd = self._idio_decay, self._idio_sd
        for i, coin in enumerate(self._coins):
            self._mid[i] *= math.exp(self._ret_sd[i] * g(0.0, 1.0))
            self._idio[i] = self._idio[i] * idio_decay + idio_sd[i] * g(0.0, 1.0)
            if rand() < SPREAD_REDRAW_PROB:
                self._spread[i] = self._draw_spread(coin)
            for side, sizes in enumerate(self._sizes[i]):
                for _ in range(LEVEL_REFRESH_PER_TICK):
                    k = int(rand() * levels)
                    sizes[k] = self._size(i, side // 2, k)
        for sizes in self._fx_sizes:
            k = int(rand() * levels)
            sizes[k] = self._fx_size(k)
        return self.books_at_current(int(time.time() * 1000) if now_ms is None else now_ms)

    def books_at_current(self, now_ms: int) -> MarketSnapshot:
        """The books for the current state without advancing the model, stamped `now_ms`."""
        ks = self._ks
        fx_tick = UPBIT_USDT_KRW_TICK
        fx_n = round((self._fx_mean + self._fx_dev) / fx_tick - 0.5)
        fx_bid_sizes, fx_ask_sizes = self._fx_sizes
        fx = OrderBook(
            venue="upbit",
            symbol=FX_SYMBOL,
            quote="KRW",
            bids=tuple(zip([(fx_n - k) * fx_tick for k in ks], fx_bid_sizes, strict=True)),
            asks=tuple(zip([(fx_n + 1 + k) * fx_tick for k in ks], fx_ask_sizes, strict=True)),
            timestamp_ms=now_ms,
        )
        fx_mid = (fx_n + 0.5) * fx_tick
        levels = self.levels
        grids = self._bn_grid
        upbit: dict[str, OrderBook] = {}
        binance: dict[str, OrderBook] = {}
        for i, coin in enumerate(self._coins):
            ub_bid_sz, ub_ask_sz, bn_bid_sz, bn_ask_sz = self._sizes[i]
            t = coin.binance_tick
            n = math.floor(self._mid[i] / t)
            q, scale = grids[i]
            bn_bids = [m / scale for m in range(n * q, (n - levels) * q, -q)]
            bn_asks = [m / scale for m in range((n + 1) * q, (n + 1 + levels) * q, q)]
            binance[coin.symbol] = OrderBook(
                venue="binance",
                symbol=coin.symbol,
                quote="USDT",
                bids=tuple(zip(bn_bids, bn_bid_sz, strict=True)),
                asks=tuple(zip(bn_asks, bn_ask_sz, strict=True)),
                timestamp_ms=now_ms,
            )
            target = (1.0 + self._premium_mean + self._common + self._idio[i]) * fx_mid * (n + 0.5) * t
            ub_bids, ub_asks = upbit_price_ladders(target, self._spread[i], levels)
            upbit[coin.symbol] = OrderBook(
                venue="upbit",
                symbol=coin.symbol,
                quote="KRW",
                bids=tuple(zip(ub_bids, ub_bid_sz, strict=True)),
                asks=tuple(zip(ub_asks, ub_ask_sz, strict=True)),
                timestamp_ms=now_ms,
            )
        return MarketSnapshot(tick=self.tick, fx=fx, upbit=upbit, binance=binance)
