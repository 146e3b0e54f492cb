"""Extractor settings from environment variables (pydantic-settings).

Built once in ``main()`` and passed down. The broker URL is a ``SecretStr`` and only ever
appears in logs through :func:`common.settings.redact_url`.
"""

from __future__ import annotations

from common.settings import BrokerSettings, LogFormat, LogLevel, load

__all__ = ["ExtractorSettings", "LogFormat", "LogLevel", "load_settings"]


class ExtractorSettings(BrokerSettings):
    """``AMQP_URL`` (or ``AMQP_URL_FILE``), ``DISCOGS_EXCHANGE_PREFIX``, ``LOG_LEVEL``,
    ``LOG_FORMAT``: the same variables, defaults and checks as the consumers'."""


def load_settings() -> ExtractorSettings:
    """Settings from the environment; an invalid one is a :class:`SettingsError` (one line)."""
    return load(ExtractorSettings)
