"""tableinator's settings: the common ones plus PostgreSQL's."""

from __future__ import annotations

from typing import ClassVar

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, field_validator

from common.settings import BatchConfig, CommonSettings
from tableinator.sql import REBUILD_WORKERS


class TableinatorSettings(CommonSettings):
    batch_env_prefix: ClassVar[str] = "POSTGRES"
    # Either a full DSN (libpq URL or key=value, several hosts allowed) or the parts below.
    postgres_dsn: SecretStr | None = None
    postgres_host: str = "127.0.0.1"
    postgres_port: int = Field(5432, gt=0, le=65535)
    postgres_user: str = "discogs"
    postgres_password: SecretStr = SecretStr("discogs")
    postgres_database: str = "discogs"
    postgres_sslmode: str = Field(
        "prefer", pattern=r"^(disable|allow|prefer|require|verify-ca|verify-full)$"
    )
    postgres_batch_size: int = Field(500, gt=0, le=100_000)
    postgres_batch_flush_interval: float = Field(2.0, gt=0, le=3600)
    postgres_max_pending: int = Field(5000, gt=0)
    postgres_max_concurrent_flushes: int = Field(2, gt=0, le=64)
    # Bulk-load mode (drop secondary indexes, rebuild after file_complete): auto = when the
    # table is empty at start; true = always; false = never (the default: the consumer,
    # not index upkeep, bounds a load, so a rebuild at the end only adds time).
    postgres_bulk_load: str = Field("false", pattern=r"^(auto|true|false)$")
    health_port: int = Field(8002, ge=0, le=65535)

    @field_validator("postgres_bulk_load", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    def conninfo(self) -> str:
        """The libpq connection string (holds the password: never log it)."""
        if self.postgres_dsn is not None:
            return self.postgres_dsn.get_secret_value()
        return make_conninfo(
            host=self.postgres_host,
            port=self.postgres_port,
            user=self.postgres_user,
            password=self.postgres_password.get_secret_value(),
            dbname=self.postgres_database,
            sslmode=self.postgres_sslmode,
        )

    def pool_size(self) -> int:
        """One connection per concurrent flush, one for schema and maintenance work, and one
        per index built at once when a bulk load ends (so flushes of other types go on)."""
        return self.postgres_max_concurrent_flushes + 1 + REBUILD_WORKERS

    def batch(self) -> BatchConfig:
        return BatchConfig(
            batch_size=self.postgres_batch_size,
            flush_interval=self.postgres_batch_flush_interval,
            max_pending=self.postgres_max_pending,
            max_concurrent_flushes=self.postgres_max_concurrent_flushes,
        )
