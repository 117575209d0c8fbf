"""The alert delivery policy and tally, without a network or a database: backoff, give-up, counts."""

from __future__ import annotations

import json

import pytest

from arbitrage.config.alerts import AlertsConfig
from arbitrage.ops.alert_policy import DeliveryCounts, DeliveryPolicy, Outcome, Step
from arbitrage.ops.telegram import judge

FAILED = Outcome(ok=False, http_status=500, error="HTTP 500: Internal Server Error")


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    policy = DeliveryPolicy(max_attempts=10, backoff_base_sec=0.5, backoff_cap_sec=5.0)
    assert [policy.backoff(attempt) for attempt in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_lengthens_a_wait_but_never_past_the_cap() -> None:
    policy = DeliveryPolicy(max_attempts=5, backoff_base_sec=0.5, backoff_cap_sec=5.0)
    assert policy.backoff(1, retry_after=2.0) == 2.0
    assert policy.backoff(3, retry_after=1.0) == 2.0, "a shorter Retry-After does not shorten the backoff"
    assert policy.backoff(1, retry_after=60.0) == 5.0


def test_failed_attempts_are_retried_with_the_schedule_then_given_up_after_max_attempts() -> None:
    policy = DeliveryPolicy(max_attempts=4, backoff_base_sec=0.25, backoff_cap_sec=10.0)
    steps = [policy.after(attempt, FAILED) for attempt in range(1, 5)]
    assert steps == [Step("RETRY", 0.25), Step("RETRY", 0.5), Step("RETRY", 1.0), Step("DLQ")]


def test_a_single_attempt_policy_never_retries() -> None:
    policy = DeliveryPolicy(max_attempts=1, backoff_base_sec=1.0, backoff_cap_sec=1.0)
    assert policy.after(1, FAILED) == Step("DLQ")


@pytest.mark.parametrize(
    ("outcome", "stopping", "expected"),
    [
        (Outcome(ok=True, http_status=200), False, Step("SENT")),
        (Outcome(ok=True, http_status=200), True, Step("SENT")),
        (Outcome(ok=False, http_status=401, error="HTTP 401", retryable=False), False, Step("DLQ")),
        (FAILED, True, Step("DLQ")),
        (Outcome(ok=False, http_status=429, retry_after=3.0), False, Step("RETRY", 3.0)),
    ],
)
def test_the_step_after_the_first_attempt(outcome: Outcome, stopping: bool, expected: Step) -> None:
    policy = DeliveryPolicy(max_attempts=3, backoff_base_sec=0.5, backoff_cap_sec=5.0)
    assert policy.after(1, outcome, stopping=stopping) == expected


def test_the_policy_comes_from_the_alerts_section() -> None:
    config = AlertsConfig(max_attempts=7, backoff_base_sec=0.1, backoff_cap_sec=2.5)
    assert DeliveryPolicy.from_config(config) == DeliveryPolicy(7, 0.1, 2.5)


def test_counts_follow_each_status_and_failing_tracks_the_latest_finished_alert() -> None:
    counts = DeliveryCounts()
    for status in ("RETRY", "RETRY", "DLQ", "DISABLED"):
        counts.add(status)
    assert (counts.retried, counts.dead_lettered, counts.disabled, counts.sent) == (2, 1, 1, 0)
    assert counts.failing
    counts.add("SENT")
    assert (counts.sent, counts.failing) == (1, False)
    counts.add("DLQ", 3)
    counts.add_record_failure()
    assert (counts.dead_lettered, counts.record_failures, counts.failing) == (4, 1, True)


def test_counting_no_stuck_alerts_leaves_the_tally_as_it_was() -> None:
    counts = DeliveryCounts()
    counts.add("DLQ", 0)
    assert counts == DeliveryCounts()


def test_a_bot_api_answer_is_judged_ok_only_with_ok_true() -> None:
    assert judge(200, json.dumps({"ok": True}).encode()) == Outcome(ok=True, http_status=200)
    refused = judge(200, json.dumps({"ok": False, "description": "Bad"}).encode())
    assert (refused.ok, refused.error) == (False, "HTTP 200: Bad")


def test_client_errors_but_429_are_permanent_and_retry_after_is_read() -> None:
    unauthorized = judge(401, b'{"ok": false, "description": "Unauthorized"}')
    assert (unauthorized.retryable, unauthorized.error) == (False, "HTTP 401: Unauthorized")
    limited = judge(429, b'{"ok": false, "parameters": {"retry_after": 4}}')
    assert (limited.retryable, limited.retry_after, limited.error) == (True, 4.0, "HTTP 429: HTTP 429")
    assert judge(502, b"<html>bad gateway</html>").retryable


def test_a_judged_error_is_scrubbed() -> None:
    answer = b'{"description": "boom at /bot123:secret/sendMessage"}'
    outcome = judge(500, answer, lambda text: text.replace("123:secret", "<token>"))
    assert outcome.error == "HTTP 500: boom at /bot<token>/sendMessage"
