"""Extractor settings from environment variables (pydantic-settings).

Built once in ``main()`` and passed down. The broker URL is a ``SecretStr`` and only ever
appears in logs through :func:`common.settings.redact_url`.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import SettingsError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "console", "auto"]


class ExtractorSettings(BaseSettings):
    """``AMQP_URL``, ``DISCOGS_EXCHANGE_PREFIX``, ``LOG_LEVEL``, ``LOG_FORMAT``."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    amqp_url: SecretStr = SecretStr("amqp://discogs:discogs@127.0.0.1:5672/")
    discogs_exchange_prefix: str = Field("discogs", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "auto"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url(cls, v: SecretStr) -> SecretStr:
        parts = urlsplit(v.get_secret_value())
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must be amqp://user:pass@host:port/vhost or amqps://...")
        return v


def load_settings() -> ExtractorSettings:
    """Settings from the environment; an invalid one is a :class:`SettingsError` (one line)."""
    try:
        return ExtractorSettings()
    except ValidationError as e:
        problems = [
            f"{'_'.join(str(p) for p in err['loc']).upper()}: "
            + err["msg"].removeprefix("Value error, ")
            for err in e.errors(include_url=False, include_input=False)
        ]
        raise SettingsError("invalid setting: " + "; ".join(problems)) from e
