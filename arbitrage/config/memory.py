"""The engine's memory limits: the one place their numbers live.

D98 names two limits on the engine's resident memory, and each setting that judges memory takes
its default from here:

- `MEMORY_LIMIT_MB` (500 MB), D98 §4.2's code-level limit: above it the guard
  (`guards.max_memory_mb`) ends the run with `GUARD_MEMORY` and activates the kill switch, and the
  resource monitor (`sysmon.max_rss_mb`) reports ERROR.
- `MEMORY_OPERATING_MB` (300 MB), D98 §3.2's operating limit: the anomaly table's memory row
  (`anomaly.memory.threshold`) and the resource monitor's WARN level (`sysmon.warn_rss_mb`).

The operating limit sits below the code-level one on purpose: on a live run the anomaly row trips
first, while there is still headroom to stop cleanly, and the guard is the backstop that ends any
run, paper or live, that the table does not judge (the table judges paper runs only when
`anomaly.paper` is set).
"""

from __future__ import annotations

from typing import Final

MEMORY_LIMIT_MB: Final = 500.0
MEMORY_OPERATING_MB: Final = 300.0
