"""Extractor settings from environment variables (pydantic-settings).

Built once in ``main()`` and passed down. The broker URL is a ``SecretStr`` and only ever
appears in logs through :func:`common.settings.redact_url`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from common.settings import BrokerSettings, LogFormat, LogLevel, load

__all__ = ["ExtractorSettings", "LogFormat", "LogLevel", "load_settings"]


class ExtractorSettings(BrokerSettings):
    """``AMQP_URL`` (or ``AMQP_URL_FILE``), ``DISCOGS_EXCHANGE_PREFIX``, ``LOG_LEVEL``,
    ``LOG_FORMAT``, ``AMQP_MAX_MESSAGE_BYTES``: the same variables, defaults and checks as
    the consumers'; and the extractor's own ``EXTRACTOR_*``."""

    # A batch message closes at this size (or at --batch-size records), below the limit.
    extractor_max_message_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # Processes that parse, normalise and serialise records; unset: one per core.
    extractor_workers: int | None = Field(None, ge=1, le=256)
    # The manifests of what was published, for the next month's delta; unset: none kept.
    extractor_state_dir: Path | None = None

    @model_validator(mode="after")
    def _cap_below_limit(self) -> Self:
        if self.extractor_max_message_bytes > self.amqp_max_message_bytes:
            raise ValueError(
                f"EXTRACTOR_MAX_MESSAGE_BYTES ({self.extractor_max_message_bytes}) must not be "
                f"above AMQP_MAX_MESSAGE_BYTES ({self.amqp_max_message_bytes}), the largest "
                "message the consumers accept"
            )
        return self

    def workers(self) -> int:
        return self.extractor_workers or os.cpu_count() or 1


def load_settings() -> ExtractorSettings:
    """Settings from the environment; an invalid one is a :class:`SettingsError` (one line)."""
    return load(ExtractorSettings)
