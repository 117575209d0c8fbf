"""The `alerts` section: the Telegram bot and the delivery policy, apart from the notifier that needs a
database, so that reading a config file loads neither psycopg nor an HTTP client."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from arbitrage.config.base import Frozen


class AlertsConfig(Frozen):
    """The Telegram bot and the delivery policy; no token or no chat id means alerts are disabled."""

    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    api_base_url: str = "https://api.telegram.org"
    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base_sec: float = Field(default=0.5, gt=0, le=60)
    backoff_cap_sec: float = Field(default=5.0, gt=0, le=300)
    timeout_sec: float = Field(default=5.0, gt=0, le=60)
    drain_timeout_sec: float = Field(default=3.0, ge=0, le=60)
    queue_size: int = Field(default=256, ge=1, le=100_000)

    @field_validator("telegram_chat_id", mode="before")
    @classmethod
    def _chat_id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
