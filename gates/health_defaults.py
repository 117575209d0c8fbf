"""The liveness check's default limits, apart from the check itself.

`arbitrage healthcheck`'s flags show them in their help, and building the command line must not
load the evidence models the check reads runs with.
"""

from __future__ import annotations

from typing import Final

DEFAULT_MAX_AGE_SECONDS: Final = 65.0
"""The oldest heartbeat a live engine may have left (a minute's beat and some slack)."""
DEFAULT_STALL_BEATS: Final = 3
"""Beats over which an unchanged loop_count means a stuck trading loop."""
