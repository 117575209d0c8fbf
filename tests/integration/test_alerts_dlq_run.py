"""A run whose alerts cannot be delivered is a failed run (D77-4): the harness reports DLQ > 0.

The real engine sends its run alerts to a loopback Telegram Bot API that answers 500; after
its retries every alert is dead-lettered, recorded in `alert_deliveries`, and counted in kpi.json.
"""

from __future__ import annotations

import psycopg
import pytest

from harness.assertions import assert_no_dead_letters
from harness.engine import EngineLauncher
from tests.support.fake_telegram import FakeTelegram

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "123456:dlq-test-token"


@pytest.mark.allow_log("ERROR", r"^alert \S+ \((RUN_START|RUN_STOP)\) dead-lettered after 2 attempt\(s\)")
def test_undeliverable_alerts_reach_the_dlq_and_fail_the_run(
    engine: EngineLauncher, postgres_dsn: str
) -> None:
    with FakeTelegram(TOKEN, status=500) as bot:
        env = {
            "ARB_ALERTS__TELEGRAM_BOT_TOKEN": TOKEN,
            "ARB_ALERTS__TELEGRAM_CHAT_ID": "42",
            "ARB_ALERTS__API_BASE_URL": bot.base_url,
            "ARB_ALERTS__MAX_ATTEMPTS": "2",
            "ARB_ALERTS__BACKOFF_BASE_SEC": "0.05",
        }
        run = engine(env=env).start(["--ticks", "200", "--seed", "7"])
        run.wait(timeout=90)
        attempts = len(bot.texts())
    kpi = run.evidence.kpi
    assert kpi is not None
    assert kpi["alerts"]["dlq_count"] == 2, kpi["alerts"]
    assert attempts == 4, "RUN_START and RUN_STOP, two attempts each"
    with pytest.raises(AssertionError, match=r"alerts: 2 alert\(s\) of run .* reached the DLQ \(limit 0\)"):
        assert_no_dead_letters(run.evidence)
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM alert_deliveries WHERE run_id = %s GROUP BY status ORDER BY status",
            (run.run_id,),
        ).fetchall()
    assert rows == [("DLQ", 2), ("RETRY", 2)]
    assert TOKEN not in "\n".join(run.logs)
