"""The run registry as preflight reads it, from a real Redis: every registered run, its own fields."""

from __future__ import annotations

import redis

from arbitrage.state import RunState


def test_the_registry_holds_every_run_with_its_own_fields(redis_url: str, redis_key_prefix: str) -> None:
    state = RunState(redis_url, redis_key_prefix, 5.0)
    try:
        assert state.registry() == {}
        for n in range(12):
            state.register(f"smoke_{n:02d}", {"status": "running", "pid": 1000 + n})
        state.set_status("smoke_03", "ended", exit_code=0)
        registry = state.registry()
    finally:
        state.close()
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        members: set[str] = client.smembers(f"{redis_key_prefix}:runs")  # type: ignore[assignment]
        stored = {run: client.hgetall(f"{redis_key_prefix}:run:{run}") for run in members}
    finally:
        client.close()
    assert registry == stored
    assert sorted(registry) == [f"smoke_{n:02d}" for n in range(12)]
    assert registry["smoke_03"] == {"status": "ended", "pid": "1003", "exit_code": "0"}
    assert registry["smoke_11"] == {"status": "running", "pid": "1011"}
