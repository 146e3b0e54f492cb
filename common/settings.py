"""Service settings from environment variables (pydantic-settings).

Built once in ``main()`` and passed down; nothing here is a module-level instance.
Secrets may also be given as ``NAME_FILE`` pointing at a file (Docker secrets); secret
values are ``SecretStr`` and never appear in ``repr``, logs, ``/health`` or ``/metrics``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.records import DataType

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "console", "auto"]
_MAX_PREFETCH = 65535  # AMQP's basic.qos prefetch-count is 16 bits
SECRET_FILES = ("AMQP_URL", "NEO4J_PASSWORD", "POSTGRES_DSN", "POSTGRES_PASSWORD")


class SettingsError(ValueError):
    """Invalid configuration; ``str(e)`` is one line naming the variable and what is allowed."""


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """Tuning of one service's :class:`~common.batching.BatchProcessor`."""

    batch_size: int
    flush_interval: float
    max_pending: int
    max_concurrent_flushes: int
    # Types whose batches are written one at a time (within max_concurrent_flushes overall):
    # their concurrent transactions would lock each other's rows in opposite orders.
    serial_types: frozenset[DataType] = frozenset()
    # The most records one write of a serial type takes of what waited while the one
    # before it ran (never fewer than batch_size): with one write at a time, each
    # transaction's fixed cost is paid once for all of them.
    serial_batch_size: int = 0

    def largest_write(self, data_type: DataType) -> int:
        """The most records one write of ``data_type`` takes of batch messages."""
        if data_type in self.serial_types:
            return max(self.batch_size, self.serial_batch_size)
        return self.batch_size


_CREDENTIALS = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):(?P<pw>.*)@(?P<tail>[^@]*)$"
)


def redact_url(url: str) -> str:
    """``url`` (or a comma-separated list of them) with every password replaced by ``***``.

    Works on the text, not a parsed URL, so raw passwords holding ``#``, ``/`` or ``?``,
    odd ports and IPv6 hosts are all handled: everything up to the last ``@`` is credential.
    """
    return ",".join(_CREDENTIALS.sub(r"\g<head>:***@\g<tail>", part) for part in url.split(","))


class BrokerSettings(BaseSettings):
    """What every program on the broker shares (the consumers and the extractor)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    amqp_url: SecretStr = SecretStr("amqp://discogs:discogs@127.0.0.1:5672/")
    discogs_exchange_prefix: str = Field("discogs", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "auto"
    # The largest message body the consumers accept; the extractor never sends a larger one.
    amqp_max_message_bytes: int = Field(16 * 1024 * 1024, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        for name in SECRET_FILES:
            path = os.environ.get(f"{name}_FILE")
            if path and name.lower() not in values:
                try:
                    values[name.lower()] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as e:
                    raise ValueError(f"{name}_FILE: cannot read {path}: {e.strerror}") from e
        return values

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url(cls, v: SecretStr) -> SecretStr:
        urls = [u.strip() for u in v.get_secret_value().split(",") if u.strip()]
        for url in urls or [""]:
            parts = urlsplit(url)
            try:
                port_ok = parts.port is None or parts.port > 0
            except ValueError:
                port_ok = False
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname or not port_ok:
                raise ValueError("must be amqp://user:pass@host:port/vhost or amqps://...")
        return v

    def amqp_urls(self) -> list[str]:
        """Every broker URL (a comma-separated list names the nodes of a cluster)."""
        return [u.strip() for u in self.amqp_url.get_secret_value().split(",") if u.strip()]


class CommonSettings(BrokerSettings):
    """Settings every consumer shares."""

    # Prefix of the service's batch tuning variables (NEO4J, POSTGRES), for error messages.
    batch_env_prefix: ClassVar[str] = ""

    amqp_prefetch: int | None = Field(None, gt=0, le=65535)
    amqp_delivery_limit: int = Field(20, gt=0)
    health_port: int = Field(8000, ge=0, le=65535)
    shutdown_timeout: float = Field(30.0, gt=0)
    # Seconds between the `progress` log lines (records done, rates, queue depth, ETA).
    progress_interval: float = Field(30.0, gt=0)
    # Processes decoding batch messages (0: a thread of the consumer's own process).
    decode_workers: int = Field(1, ge=0, le=64)
    # Monthly updates: refuse to purge when more than this share of the stored records of a
    # type would be deleted (a truncated or wrong dump).
    purge_veto_fraction: float = Field(0.10, ge=0, le=1)

    @model_validator(mode="after")
    def _pending_holds_a_batch(self) -> Self:
        if type(self).batch is not CommonSettings.batch:
            cfg = self.batch()
            if cfg.max_pending < cfg.batch_size:
                p = self.batch_env_prefix
                raise ValueError(
                    f"{p}_MAX_PENDING ({cfg.max_pending}) must be at least "
                    f"{p}_BATCH_SIZE ({cfg.batch_size})"
                )
        return self

    def batch(self) -> BatchConfig:  # pragma: no cover - overridden by each service
        raise NotImplementedError

    def prefetch(self) -> int:
        """Per-queue prefetch of one-record messages: explicit, or twice the batch size so
        that a batch can fill while another is written."""
        return self.amqp_prefetch or min(2 * self.batch().batch_size, _MAX_PREFETCH)

    def prefetch_warning(self) -> str | None:
        size = self.batch().batch_size
        if self.amqp_prefetch is not None and self.amqp_prefetch < size:
            return (
                f"AMQP_PREFETCH={self.amqp_prefetch} is below the batch size {size}: "
                "batches of single-record messages can never fill and wait for the flush timer"
            )
        return None


S = TypeVar("S", bound=BrokerSettings)


def load(cls: type[S]) -> S:
    """Build settings from the environment, turning errors into one readable line."""
    try:
        return cls()
    except ValidationError as e:
        raise SettingsError(_describe(e)) from e
    except ValueError as e:
        raise SettingsError(str(e)) from e


def _describe(error: ValidationError) -> str:
    lines = []
    for err in error.errors(include_url=False, include_input=False):
        loc = "_".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "invalid setting: " + "; ".join(lines)
