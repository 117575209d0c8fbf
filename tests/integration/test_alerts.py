"""Alert delivery against a loopback Telegram Bot API, with every attempt in real PostgreSQL."""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from arbitrage.config import AlertsConfig
from arbitrage.ops.alerts import RUN_START, RUN_STOP, WATCHDOG_CRITICAL, Notifier
from arbitrage.schema.migrate import migrate
from arbitrage.services import ServiceEndpoints
from tests.support.engine_process import wait_for
from tests.support.fake_telegram import FakeTelegram
from tests.support.ports import refused_port
from tests.support.records import Records

pytestmark = pytest.mark.integration

TOKEN = "123456:TEST-token-never-logged"
CHAT = "-1001234"


@pytest.fixture(scope="module")
def dsn(server: ServiceEndpoints) -> str:
    return server.postgres_dsn


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
        yield conn


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN) as fake:
        yield fake


def config(base_url: str, **overrides: Any) -> AlertsConfig:
    settings: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "telegram_chat_id": CHAT,
        "api_base_url": base_url,
        "max_attempts": 3,
        "backoff_base_sec": 0.01,
        "backoff_cap_sec": 0.05,
        "timeout_sec": 5.0,
    }
    settings.update(overrides)
    return AlertsConfig.model_validate(settings)


def rows(db: psycopg.Connection[Any], run_id: str) -> list[tuple[str, str, str, int, int | None, str | None]]:
    with db.cursor() as cur:
        cur.execute(
            "SELECT alert_id, event, status, attempt, http_status, error FROM alert_deliveries"
            " WHERE run_id = %s ORDER BY id",
            (run_id,),
        )
        return cur.fetchall()


def wait_rows(db: psycopg.Connection[Any], run_id: str, count: int) -> None:
    """Wait, with a deadline, until the notifier has recorded `count` attempts."""
    wait_for(lambda: len(rows(db, run_id)) >= count, 30.0, f"{count} alert_deliveries rows")


def started(cfg: AlertsConfig, dsn: str) -> tuple[Notifier, Records]:
    records = Records()
    notifier = Notifier(cfg, f"smoke_test_{secrets.token_hex(4)}", dsn, logger=records.logger)
    notifier.start()
    return notifier, records


def test_schema_setup_is_idempotent(db: psycopg.Connection[Any]) -> None:
    migrate(db)
    migrate(db)
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'alert_deliveries'")
        assert cur.fetchone() == (1,)


def test_answered_alerts_are_sent_once_each_and_recorded_as_sent(
    dsn: str, db: psycopg.Connection[Any], telegram: FakeTelegram
) -> None:
    notifier, _ = started(config(telegram.base_url), dsn)
    try:
        for event in (RUN_START, WATCHDOG_CRITICAL, RUN_STOP):
            notifier.notify(event, f"{event.lower()} detail")
        assert notifier.drain(timeout=30.0)
    finally:
        notifier.close()
    got = rows(db, notifier.run_id)
    assert [(event, status, attempt, http) for _, event, status, attempt, http, _ in got] == [
        (RUN_START, "SENT", 1, 200),
        (WATCHDOG_CRITICAL, "SENT", 1, 200),
        (RUN_STOP, "SENT", 1, 200),
    ]
    assert [r.chat_id for r in telegram.received] == [CHAT] * 3
    assert telegram.texts()[0] == f"[arbitrage] RUN_START run={notifier.run_id}\nrun_start detail"
    summary = notifier.summary()
    assert summary["notifier_available"] is True
    assert (summary["sent_count"], summary["dlq_count"], summary["retry_count"]) == (3, 0, 0)


def test_a_failing_api_is_retried_then_each_alert_is_dead_lettered(
    dsn: str, db: psycopg.Connection[Any], telegram: FakeTelegram
) -> None:
    telegram.answer(500)
    notifier, records = started(config(telegram.base_url, max_attempts=3), dsn)
    try:
        first = notifier.notify(RUN_START, "start")
        second = notifier.notify(RUN_STOP, "stop")
        assert notifier.drain(timeout=30.0)
    finally:
        notifier.close()
    got = rows(db, notifier.run_id)
    for alert_id in (first, second):
        mine = [(status, attempt, http) for aid, _, status, attempt, http, _ in got if aid == alert_id]
        assert mine == [("RETRY", 1, 500), ("RETRY", 2, 500), ("DLQ", 3, 500)]
    assert all(error == "HTTP 500: Internal Server Error" for *_, error in got)
    assert len(telegram.received) == 6
    assert notifier.dlq_count == 2
    assert notifier.summary()["retry_count"] == 4
    assert len(records.at(logging.ERROR)) == 2
    assert all(TOKEN not in message for message in records.messages())


def test_too_many_requests_waits_for_retry_after_then_succeeds(
    dsn: str, db: psycopg.Connection[Any], telegram: FakeTelegram
) -> None:
    telegram.answer(429)
    telegram.retry_after = 2
    notifier, _ = started(config(telegram.base_url, backoff_base_sec=0.01, backoff_cap_sec=10.0), dsn)
    try:
        notifier.notify(RUN_START, "start")
        assert telegram.wait_for(1, timeout=30.0)
        telegram.answer(200)
        assert notifier.drain(timeout=30.0)
    finally:
        notifier.close()
    got = rows(db, notifier.run_id)
    assert [(status, attempt, http) for _, _, status, attempt, http, _ in got] == [
        ("RETRY", 1, 429),
        ("SENT", 2, 200),
    ]
    assert got[0][5] == "HTTP 429: Too Many Requests: retry after 2"
    first, second = telegram.received
    assert second.at - first.at >= 2.0


def test_a_rejected_token_is_dead_lettered_without_retrying(
    dsn: str, db: psycopg.Connection[Any], telegram: FakeTelegram
) -> None:
    notifier, records = started(
        config(telegram.base_url, telegram_bot_token="999:wrong-secret", max_attempts=5), dsn
    )
    try:
        notifier.notify(RUN_START, "start")
        assert notifier.drain(timeout=30.0)
    finally:
        notifier.close()
    assert [(s, a, h, e) for _, _, s, a, h, e in rows(db, notifier.run_id)] == [
        ("DLQ", 1, 401, "HTTP 401: Unauthorized")
    ]
    assert len(telegram.received) == 1
    assert all("wrong-secret" not in message for message in records.messages())


def test_an_unreachable_api_is_retried_and_dead_lettered(dsn: str, db: psycopg.Connection[Any]) -> None:
    notifier, _ = started(config(f"http://127.0.0.1:{refused_port()}", max_attempts=2), dsn)
    try:
        notifier.notify(RUN_START, "start")
        assert notifier.drain(timeout=30.0)
    finally:
        notifier.close()
    got = rows(db, notifier.run_id)
    assert [(status, attempt, http) for _, _, status, attempt, http, _ in got] == [
        ("RETRY", 1, None),
        ("DLQ", 2, None),
    ]
    assert all(error is not None and "refused" in error.lower() for *_, error in got)
    assert all(TOKEN not in (error or "") for *_, error in got)


def test_an_alert_still_backing_off_at_close_is_dead_lettered(
    dsn: str, db: psycopg.Connection[Any], telegram: FakeTelegram
) -> None:
    telegram.answer(500)
    notifier, _ = started(config(telegram.base_url, backoff_base_sec=30.0, backoff_cap_sec=30.0), dsn)
    notifier.notify(RUN_STOP, "stop")
    wait_rows(db, notifier.run_id, 1)
    assert not notifier.drain(timeout=0.05)
    # A stop budget of 1 s, not 0: the dead letter is written under that bound as the thread leaves
    # its backoff (with 0 s the insert could be cut), and on a loaded machine that can be after
    # close() has given up waiting for the thread (and counted the alert as dead-lettered already).
    notifier.close(timeout=1.0)
    wait_rows(db, notifier.run_id, 2)
    got = rows(db, notifier.run_id)
    assert [(status, attempt) for _, _, status, attempt, _, _ in got] == [("RETRY", 1), ("DLQ", 1)]
    assert got[1][5] == "shutdown during backoff; HTTP 500: Internal Server Error"
    assert notifier.summary()["dlq_count"] == 1
    assert notifier.summary()["pending"] == 0


def test_an_attempt_hanging_past_the_stop_budget_is_abandoned_as_dead_lettered(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        notifier, records = started(
            config(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_sec=60.0), dsn
        )
        notifier.notify(RUN_STOP, "stop")
        assert not notifier.drain(timeout=0.05)
        notifier.close(timeout=0.1)
        summary = notifier.summary()
    assert summary["dlq_count"] == 1
    assert (summary["sent_count"], summary["pending"]) == (0, 0)
    assert records.at(logging.ERROR) == ["1 alert(s) still undelivered 0.1s into shutdown: dead-lettered"]
    wait_rows(db, notifier.run_id, 1)
    assert [(s, a) for _, _, s, a, _, _ in rows(db, notifier.run_id)] == [("DLQ", 1)]
    assert notifier.summary()["dlq_count"] == 1, "an abandoned alert is counted once"
    assert len(records.at(logging.ERROR)) == 1


def test_a_full_queue_and_a_closed_notifier_dead_letter_instead_of_blocking(
    dsn: str, db: psycopg.Connection[Any], telegram: FakeTelegram
) -> None:
    telegram.answer(500)
    notifier, records = started(
        config(telegram.base_url, queue_size=1, backoff_base_sec=30.0, backoff_cap_sec=30.0), dsn
    )
    first = notifier.notify(RUN_START, "start")
    wait_rows(db, notifier.run_id, 1)
    second = notifier.notify(WATCHDOG_CRITICAL, "critical")
    # A stop budget of 1 s, not 0: the backing-off alert's dead letter is written under that bound,
    # and with 0 s a loaded machine cut the insert ("no answer from PostgreSQL within 0s").
    notifier.close(timeout=1.0)
    notifier.notify(RUN_STOP, "stop")
    got = rows(db, notifier.run_id)
    assert [(aid, status, attempt) for aid, _, status, attempt, _, _ in got] == [
        (first, "RETRY", 1),
        (first, "DLQ", 1),
        (second, "DLQ", 0),
    ]
    assert got[2][5] == "alert queue full (1 pending)"
    assert notifier.dlq_count == 3
    assert len(records.at(logging.ERROR)) == 3
    assert len(telegram.received) == 1


def test_without_a_bot_alerts_are_recorded_as_disabled_and_never_dead_lettered(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    notifier, records = started(AlertsConfig(), dsn)
    try:
        notifier.notify(RUN_START, "start")
        notifier.notify(RUN_STOP, "stop")
        assert notifier.drain(timeout=30.0)
    finally:
        notifier.close()
    assert [(status, attempt) for _, _, status, attempt, _, _ in rows(db, notifier.run_id)] == [
        ("DISABLED", 0),
        ("DISABLED", 0),
    ]
    summary = notifier.summary()
    assert summary["notifier_available"] is False
    assert (summary["dlq_count"], summary["disabled_count"]) == (0, 2)
    assert records.at(logging.ERROR) == []
