"""One `sendMessage` call to the Telegram Bot API, judged into an `Outcome`; the bot token never leaves it.

The token is part of the request URL, so every error text that could quote the URL is scrubbed here.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Final

from arbitrage.config.alerts import AlertsConfig
from arbitrage.ops.alert_policy import Outcome

RESPONSE_LIMIT: Final = 65_536


class TelegramBot:
    """Posts texts to one chat; `available` is false without a token or a chat id."""

    def __init__(self, config: AlertsConfig) -> None:
        self._config = config
        self._token = config.telegram_bot_token.get_secret_value() if config.telegram_bot_token else ""

    @property
    def available(self) -> bool:
        """True when a bot token and a chat id are configured."""
        return bool(self._token) and bool(self._config.telegram_chat_id)

    def post(self, text: str) -> Outcome:
        """Send `text`; network and HTTP failures become a failed Outcome, never an exception."""
        url = f"{self._config.api_base_url.rstrip('/')}/bot{self._token}/sendMessage"
        data = json.dumps({"chat_id": self._config.telegram_chat_id, "text": text}).encode("utf-8")
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._config.timeout_sec) as response:
                status, raw = int(response.status), response.read(RESPONSE_LIMIT)
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read(RESPONSE_LIMIT)
            exc.close()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return Outcome(ok=False, error=self.scrub(f"{type(exc).__name__}: {reason}"))
        return judge(status, raw, self.scrub)

    def scrub(self, text: str) -> str:
        """`text` with the bot token replaced by `<token>`."""
        return text.replace(self._token, "<token>") if self._token else text


def judge(status: int, raw: bytes, scrub: Callable[[str], str] = str) -> Outcome:
    """The Outcome of a Bot API answer: ok only for HTTP 200 with `ok: true`; 4xx but 429 is permanent."""
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    if status == 200 and doc.get("ok") is True:
        return Outcome(ok=True, http_status=status)
    description = str(doc.get("description") or f"HTTP {status}")
    params = doc.get("parameters")
    retry_after = params.get("retry_after") if isinstance(params, dict) else None
    permanent = 400 <= status < 500 and status != 429
    return Outcome(
        ok=False,
        http_status=status,
        error=scrub(f"HTTP {status}: {description}"),
        retryable=not permanent,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )
