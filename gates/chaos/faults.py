"""How each fault kind strikes a rig and is cleared again, applied from outside the engine.

`strike(rig, fault)` and `clear(rig, fault)` return one short detail for the run's timeline
(what was really done: how many backends froze, how many connections were reset...).
`reset(rig)` puts every part back to healthy between runs. Every kind of
`gates.chaos.model.LIVE_FAULT_KINDS` (the paper kinds and the order kinds) has an entry here;
`tests/chaos/test_rig.py` checks each effect.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Final

from arbitrage.ledger import APPLICATION_NAME
from gates.chaos.disk import fill_to_enospc
from gates.chaos.model import EXCHANGE_SIM_FAULT, LIVE_FAULT_KINDS, ORDER_SIM_FAULT, Fault
from gates.chaos.rig import Rig

__all__ = [
    "ACTIONS", "EXCHANGE_LATENCY_MS", "NET_FAULTS", "PG_NET_DELAY_MS",
    "FaultError", "Rig", "clear", "reset", "strike",
]  # fmt: skip

EXCHANGE_LATENCY_MS: Final = 3000
"""`exchange-latency`: every answer of the simulator this much later (past a fetcher's patience)."""
PG_NET_DELAY_MS: Final = 250
"""`pg-net-delay`: each chunk between the engine and PostgreSQL this much later."""

Action = Callable[[Rig], str]


class FaultError(Exception):
    """A fault cannot be applied on this rig (unknown kind, or unavailable here: the reason)."""


def _nothing(_: Rig) -> str:
    return ""


def _signal(sig: signal.Signals) -> Action:
    def send(rig: Rig) -> str:
        engine = rig.engine
        if engine is None:
            return "no engine"
        if engine.poll() is not None:
            return f"engine already exited ({engine.returncode})"
        engine.send_signal(sig)
        return f"{sig.name} to pid {engine.pid}"

    return send


def _pg_terminate(rig: Rig) -> str:
    if not rig.pg.running:
        return "postgres is down: no backend to terminate"
    return f"terminated {rig.pg.terminate_backends(APPLICATION_NAME)} backend(s)"


def _pg_stop(rig: Rig) -> str:
    rig.pg.stop()
    return "postgres stopped"


def _pg_start(rig: Rig) -> str:
    rig.pg.start()
    return "postgres started"


def _pg_freeze(rig: Rig) -> str:
    if not rig.pg.running:
        return "postgres is down: no backend to freeze"
    pids = rig.pg.freeze_backends(APPLICATION_NAME)
    return f"froze {len(pids)} backend(s)"


def _pg_thaw(rig: Rig) -> str:
    rig.pg.thaw()
    return "backends thawed"


NET_FAULTS: Final[dict[str, tuple[str, str]]] = {
    "pg-net-reset": ("pg", "reset"),
    "pg-net-blackhole": ("pg", "blackhole"),
    "pg-net-delay": ("pg", "delay"),
    "redis-net-blackhole": ("redis", "blackhole"),
}
"""Each network kind's proxy and mode. Two may overlap in one run, so a proxy's mode follows the
set of its kinds in effect (blackhole over delay over pass); a reset is instantaneous."""


def _effective_mode(rig: Rig, which: str) -> str:
    modes = {NET_FAULTS[kind][1] for kind in rig.active_net_faults if NET_FAULTS[kind][0] == which}
    return next((mode for mode in ("blackhole", "delay") if mode in modes), "pass")


def _net(kind: str, on: bool) -> Action:
    which, mode = NET_FAULTS[kind]

    def apply(rig: Rig) -> str:
        proxy = rig.pg_proxy if which == "pg" else rig.redis_proxy
        reset = proxy.set_mode("reset") if on and mode == "reset" else 0
        if mode != "reset" and on:
            rig.active_net_faults.add(kind)
        elif mode != "reset":
            rig.active_net_faults.discard(kind)
        effective = _effective_mode(rig, which)
        reset += proxy.set_mode(effective, PG_NET_DELAY_MS if effective == "delay" else 0)
        suffix = f" {PG_NET_DELAY_MS} ms" if effective == "delay" else ""
        return f"{which} proxy {effective}{suffix}" + (f", reset {reset} connection(s)" if reset else "")

    return apply


def _redis_freeze(rig: Rig) -> str:
    if not rig.redis.running:
        return "redis is down: nothing to freeze"
    rig.redis.freeze()
    return f"redis pid {rig.redis.pid} stopped (SIGSTOP)"


def _redis_thaw(rig: Rig) -> str:
    rig.redis.thaw()
    return "redis continued"


def _redis_kill(rig: Rig) -> str:
    if not rig.redis.running:
        return "redis is down already"
    pid = rig.redis.pid
    rig.redis.kill()
    return f"redis pid {pid} killed"


def _redis_start(rig: Rig) -> str:
    rig.redis.start()
    return f"redis restarted (pid {rig.redis.pid})"


def _exchange(kind: str, on: bool) -> Action:
    name = {**EXCHANGE_SIM_FAULT, **ORDER_SIM_FAULT}[kind]

    def toggle(rig: Rig) -> str:
        current = set(rig.sim.stats()["faults"])
        wanted = current | {name} if on else current - {name}
        state = rig.sim.configure({"faults": sorted(wanted)})
        return f"sim faults {state['faults']}"

    return toggle


def _refuse_orders(on: bool) -> Action:
    def toggle(rig: Rig) -> str:
        state = rig.sim.configure({"reject_orders": ["binance", "upbit"] if on else []})
        return f"sim refuses orders of {state['reject_orders'] or 'no venue'}"

    return toggle


def _latency(ms: int) -> Action:
    def set_latency(rig: Rig) -> str:
        state = rig.sim.configure({"latency_ms": ms})
        return f"sim latency {state['latency_ms']} ms"

    return set_latency


def _fill(rig: Rig) -> str:
    if rig.disk_full_unavailable is not None:
        raise FaultError(rig.disk_full_unavailable)
    written = fill_to_enospc(rig.filler)
    return f"evidence disk filled ({written / 2**20:.1f} MiB more)"


def _free(rig: Rig) -> str:
    existed = rig.filler.exists()
    rig.filler.unlink(missing_ok=True)
    return "filler removed" if existed else ""


ACTIONS: Final[dict[str, tuple[Action, Action]]] = {
    "sigterm": (_signal(signal.SIGTERM), _nothing),
    "sigkill": (_signal(signal.SIGKILL), _nothing),
    "pg-terminate": (_pg_terminate, _nothing),
    "pg-restart": (_pg_stop, _pg_start),
    "pg-freeze": (_pg_freeze, _pg_thaw),
    "redis-freeze": (_redis_freeze, _redis_thaw),
    "redis-kill": (_redis_kill, _redis_start),
    **{kind: (_net(kind, True), _net(kind, False)) for kind in NET_FAULTS},
    **{kind: (_exchange(kind, True), _exchange(kind, False)) for kind in EXCHANGE_SIM_FAULT},
    **{kind: (_exchange(kind, True), _exchange(kind, False)) for kind in ORDER_SIM_FAULT},
    "order-refused": (_refuse_orders(True), _refuse_orders(False)),
    "exchange-latency": (_latency(EXCHANGE_LATENCY_MS), _latency(0)),
    "disk-full": (_fill, _free),
}
"""Each fault kind's (strike, clear)."""


def _actions(kind: str) -> tuple[Action, Action]:
    try:
        return ACTIONS[kind]
    except KeyError:
        raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(LIVE_FAULT_KINDS)}") from None


def strike(rig: Rig, fault: Fault) -> str:
    """Apply `fault` to the rig now; return what was done, for the timeline."""
    return _actions(fault.kind)[0](rig)


def clear(rig: Rig, fault: Fault) -> str:
    """Undo `fault` (nothing for signals and `pg-terminate`); return what was done."""
    return _actions(fault.kind)[1](rig)


def reset(rig: Rig) -> list[str]:
    """Put every part back to healthy between runs: an engine left over is killed, PostgreSQL's
    backends thawed and the server started, Redis thawed and started, both proxies to `pass`, the
    simulator's faults cleared and the filler removed. Steps that fail are reported, not raised,
    so one broken part does not hide the others; an empty list means all is healthy."""
    steps: list[tuple[str, Callable[[], object]]] = [
        ("engine", rig.stop_engine),
        ("postgres thaw", rig.pg.thaw),
        ("postgres start", rig.pg.start),
        ("redis thaw", rig.redis.thaw),
        ("redis start", rig.redis.start),
        ("network faults", rig.active_net_faults.clear),
        ("postgres proxy", lambda: rig.pg_proxy.set_mode("pass")),
        ("redis proxy", lambda: rig.redis_proxy.set_mode("pass")),
        ("exchange sim", rig.sim.clear),
        ("disk filler", lambda: rig.filler.unlink(missing_ok=True)),
    ]
    problems: list[str] = []
    for name, step in steps:
        try:
            step()
        except Exception as exc:
            problems.append(f"{name}: {exc}")
    return problems
