"""The collector pause of `arbitrage.collector`: off while the command loads, back on (with what
loading made frozen) for the run, and never turned on by `resume` for a caller that had it off.

Each check runs in a fresh interpreter, so that this process's collector is left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
from arbitrage import collector
seen = {}
if CALLER_DISABLED:
    gc.disable()
collector.pause()
seen["paused"] = gc.isenabled()
collector.resume()
seen["resumed"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count()
collector.resume()
seen["frozen_again"] = gc.get_freeze_count()
print(json.dumps(seen))
"""


def probe(caller_disabled: bool) -> dict[str, object]:
    """What the collector looked like after pause, after resume and after a second resume."""
    code = _PROBE.replace("CALLER_DISABLED", str(caller_disabled))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    seen: dict[str, object] = json.loads(done.stdout)
    return seen


def test_the_pause_ends_with_the_collector_on_and_the_loaded_objects_frozen() -> None:
    seen = probe(caller_disabled=False)
    assert seen["paused"] is False
    assert seen["resumed"] is True
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 0
    assert seen["frozen_again"] == seen["frozen"], "a second resume froze again"


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    seen = probe(caller_disabled=True)
    assert seen == {"paused": False, "resumed": False, "frozen": 0, "frozen_again": 0}
