"""graphinator's settings: the common ones plus Neo4j's."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from common.settings import BatchConfig, CommonSettings

_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


class GraphinatorSettings(CommonSettings):
    batch_env_prefix: ClassVar[str] = "NEO4J"
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_username: str = "neo4j"
    neo4j_password: SecretStr = SecretStr("discogs-pass")
    neo4j_database: str = "neo4j"
    neo4j_batch_size: int = Field(500, gt=0, le=100_000)
    neo4j_batch_flush_interval: float = Field(2.0, gt=0, le=3600)
    neo4j_max_pending: int = Field(5000, gt=0)
    neo4j_max_concurrent_flushes: int = Field(2, gt=0, le=64)
    health_port: int = Field(8001, ge=0, le=65535)

    @field_validator("neo4j_uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        scheme, sep, rest = v.partition("://")
        if not sep or scheme not in _SCHEMES or not rest:
            raise ValueError(f"must be a Neo4j URI with a scheme of {', '.join(_SCHEMES)}")
        return v

    def batch(self) -> BatchConfig:
        return BatchConfig(
            batch_size=self.neo4j_batch_size,
            flush_interval=self.neo4j_batch_flush_interval,
            max_pending=self.neo4j_max_pending,
            max_concurrent_flushes=self.neo4j_max_concurrent_flushes,
        )
