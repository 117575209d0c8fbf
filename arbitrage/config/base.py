"""The base every configuration section stands on, and the bounds several sections share.

Every section is frozen, so a validated config cannot drift while a run reads it, and forbids
unknown keys, so a misspelled key is an error instead of a silently ignored setting.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

PG_INT_MAX: Final = 2_147_483_647
"""The largest value a PostgreSQL `integer` column holds (ticks, seeds)."""
MAX_RUN_SECONDS: Final = 30 * 86_400.0
"""The longest run or hold any setting may ask for."""


class Frozen(BaseModel):
    """A configuration section: immutable once validated, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
