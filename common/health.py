"""A small HTTP endpoint: ``/health`` (JSON, 200 or 503) and ``/metrics`` (Prometheus).

Served by asyncio's own server: two read-only routes need no web framework. Nothing
secret is ever in either body: only counters and states.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from common.lifecycle import AsyncResource

log = structlog.get_logger(__name__)

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]
Refresh = Callable[[], Awaitable[None]]


class HealthServer(AsyncResource):
    """Serves health and metrics on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        check: HealthCheck,
        registry: CollectorRegistry,
        refresh: Refresh | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._check = check
        self._registry = registry
        self._refresh = refresh
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("health server listening", host=self._host, port=self.port)

    async def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            status, ctype, body = await self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError) as e:
            log.debug("health request dropped", error=repr(e))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/health":
            ok, detail = self._check()
            body = orjson.dumps({"status": "ok" if ok else "unavailable", **detail})
            return ("200 OK" if ok else "503 Service Unavailable"), "application/json", body
        if path == "/metrics":
            if self._refresh is not None:
                await self._refresh()
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return "404 Not Found", "text/plain", b"not found\n"
