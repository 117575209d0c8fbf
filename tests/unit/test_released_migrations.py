"""A released migration never changes: databases that earlier engines built and upgrade tests rebuild
(`tests/support/legacy_schema.py`) depend on each one's SQL staying as it shipped."""

from __future__ import annotations

import hashlib

from arbitrage.schema.migrations import MIGRATIONS, SCHEMA_VERSION

RELEASED = {
    1: ("ledger", "4f8c282e6f9620b9773fa0c62183628b2cdb7ea4e17af494b05c814e7575337f"),
    2: ("append_only", "58d0da33674433136a48d67dfce0b28a48908cb26c4d6ff4ed04da8bcc9a1547"),
    3: ("run_owner_and_event_uid", "9d0f9da85efc7bc6e5143ed4302634c3e59914c21fe71d3624881ffb90c5b494"),
    4: ("upbit_qty", "3628376896d6c7fd059c4714216fe7673c93ff92cb4a76a9064d2a72aa64242c"),
    5: ("alerts_and_arms", "91874d8b82f2189022e8ebd87c9a5c8b82b0a7fda743c1728bec45d8df5e0794"),
    6: ("event_kinds_by_run", "722bc998f88bb37a1d8ee05f5132a45df7c38737d4ffe4ed7d431231a824dd35"),
}
"""Version -> (name, sha256 of its SQL) as released. A new migration is added here once it ships."""


def test_every_released_migration_is_unchanged() -> None:
    shipped = {
        migration.version: (migration.name, hashlib.sha256(migration.sql.encode()).hexdigest())
        for migration in MIGRATIONS
        if migration.version in RELEASED
    }
    assert shipped == RELEASED


def test_migrations_are_numbered_in_order_and_none_released_is_missing() -> None:
    assert [migration.version for migration in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    assert set(RELEASED) <= {migration.version for migration in MIGRATIONS}
