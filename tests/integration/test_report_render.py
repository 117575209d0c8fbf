"""`report.html` renders in a real browser: headless Chromium takes a screenshot with visible charts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from gates.analyzer import analyze
from gates.report import write_report
from tests.evidence_factory import make_evidence_dir

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip

TRADE_EVENTS = [
    {"tick": 2, "event": "entry", "symbol": "BTC", "premium_pct": 3.4},
    {"tick": 5, "event": "entry", "symbol": "ETH", "premium_pct": 3.2},
    {"tick": 30, "event": "exit", "symbol": "BTC", "premium_pct": 2.1, "pnl_usd": 1.5},
    {"tick": 44, "event": "exit", "symbol": "ETH", "premium_pct": 2.4, "pnl_usd": -0.4},
]


def is_chart_blue(rgb_value: object) -> bool:
    """Close to the report's line colour #0969da, with room for anti-aliasing."""
    if not isinstance(rgb_value, tuple) or len(rgb_value) != 3:
        return False
    r, g, b = rgb_value
    return bool(b > 180 and r < 60 and 80 < g < 140)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_with_charts_in_headless_chromium(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    evidence_dir = make_evidence_dir(
        tmp_path / "run",
        chain_summary={"warnings_count": 0, "warnings": []},
        kpi={
            "trade_events": TRADE_EVENTS,
            "loop_latency_histogram": {"bounds_ms": [0.5, 1.0, 2.5, 5.0], "counts": [10, 80, 25, 4, 1]},
        },
    )
    report = write_report(analyze(evidence_dir))
    screenshot = tmp_path / "report.png"
    done = subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}",
         "--window-size=1400,4000", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(screenshot) as image:
        assert image.size == (1400, 4000)
        rgb = image.convert("RGB")
        colors = rgb.getcolors(maxcolors=1 << 20)
        # Below the verdict and the criteria table, which grows with every criterion.
        chart_band = rgb.crop((0, 500, 1400, 4000)).getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 200, "the page rendered nearly blank"
    assert chart_band is not None and len(chart_band) > 100, "no charts where the charts should be"
    blue = sum(count for count, rgb_value in chart_band if is_chart_blue(rgb_value))
    assert blue > 500, "the chart lines and bars (matplotlib blue #0969da) are not visible"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_trade_table_sorts_by_pnl_in_headless_chromium(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    events = [
        {**e, "trade_id": f"T{i:06d}", "reason": "threshold" if e["event"] == "exit" else None}
        for i, e in enumerate(TRADE_EVENTS)
    ]
    for entry, exit_event in ((0, 2), (1, 3)):
        events[exit_event]["trade_id"] = events[entry]["trade_id"]
    evidence_dir = make_evidence_dir(tmp_path / "run", chain_summary={"warnings_count": 0, "warnings": []},
                                     kpi={"trade_events": events})  # fmt: skip
    page = write_report(analyze(evidence_dir)).read_text()
    click_pnl = "<script>document.querySelectorAll('table.sortable th')[7].click();</script></body>"
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", click_pnl))
    done = subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", clicked.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    order = re.findall(r"<tr[^>]*><td class=\"\" data-v=\"(T\d+)\"", done.stdout)
    assert order == ["T000001", "T000000"], order
    assert 'aria-sort="ascending"' in done.stdout
