"""graphinator's settings: the common ones plus Neo4j's."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from common.settings import BatchConfig, CommonSettings
from graphinator.cypher import SELF_LINKED

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
    # Artists and labels are written one batch at a time; a write takes up to this many of
    # the records that waited meanwhile (never fewer than the batch size).
    neo4j_serial_batch_size: int = Field(2000, gt=0, le=100_000)
    health_port: int = Field(8001, ge=0, le=65535)

    @field_validator("neo4j_uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        scheme, sep, rest = v.partition("://")
        if not sep or scheme not in _SCHEMES or not rest:
            raise ValueError(f"must be a Neo4j URI with a scheme of {', '.join(_SCHEMES)}")
        hosts = rest.split("/", 1)[0].split(",")
        if len(hosts) > 1 and not scheme.startswith("neo4j"):
            raise ValueError("several hosts need a routing scheme (neo4j://, neo4j+s://)")
        if any(not h.strip() for h in hosts):
            raise ValueError("has an empty host in its host list")
        return v

    def neo4j_seed_uri(self) -> str:
        """The URI the driver is given: the first host of a several-host URI."""
        scheme, _, rest = self.neo4j_uri.partition("://")
        hosts, slash, path = rest.partition("/")
        return f"{scheme}://{hosts.split(',')[0].strip()}{slash}{path}"

    def neo4j_seed_hosts(self) -> list[tuple[str, int]]:
        """Every (host, port) of a several-host routing URI: the cluster's seed servers."""
        rest = self.neo4j_uri.partition("://")[2].split("/", 1)[0]
        seeds = []
        for item in (part.strip() for part in rest.split(",")):
            host, colon, port = item.rpartition(":")
            if not colon or host.endswith(":") or item.endswith("]"):  # no port given
                host, port = item, "7687"
            seeds.append((host.strip("[]"), int(port)))
        return seeds

    def batch(self) -> BatchConfig:
        return BatchConfig(
            batch_size=self.neo4j_batch_size,
            flush_interval=self.neo4j_batch_flush_interval,
            max_pending=self.neo4j_max_pending,
            max_concurrent_flushes=self.neo4j_max_concurrent_flushes,
            serial_types=SELF_LINKED,
            serial_batch_size=self.neo4j_serial_batch_size,
        )
