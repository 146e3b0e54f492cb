"""Test-side broker housekeeping through the management API (queues and exchanges by prefix)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.parse
import urllib.request
from typing import Any

from tests import servers


def _api(method: str, path: str) -> Any:
    parts = urllib.parse.urlsplit(servers.AMQP_URL)
    user, password = parts.username or "guest", parts.password or "guest"
    req = urllib.request.Request(f"http://{parts.hostname}:15672/api/{path}", method=method)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def _delete_named_sync(prefix: str) -> None:
    for kind in ("queues", "exchanges"):
        for item in _api("GET", f"{kind}/%2F?columns=name"):
            if item["name"].startswith(prefix):
                name = urllib.parse.quote(item["name"], safe="")
                _api("DELETE", f"{kind}/%2F/{name}")


async def delete_named(prefix: str) -> None:
    await asyncio.to_thread(_delete_named_sync, prefix)


async def queue_names(prefix: str) -> list[str]:
    items = await asyncio.to_thread(_api, "GET", "queues/%2F?columns=name")
    return sorted(i["name"] for i in items if i["name"].startswith(prefix))


def _close_connections_sync(name: str) -> int:
    closed = 0
    for item in _api("GET", "connections?columns=name,client_properties"):
        if (item.get("client_properties") or {}).get("connection_name") == name:
            _api("DELETE", f"connections/{urllib.parse.quote(item['name'], safe='')}")
            closed += 1
    return closed


async def close_connections(name: str, *, within: float = 30) -> int:
    """Force-close (as a broker restart would) every connection that named itself
    ``name`` (``?name=`` in its URL); returns how many. The management API lists a new
    connection only after its next statistics round (5 s), so this waits for one."""
    deadline = time.monotonic() + within
    while not (closed := await asyncio.to_thread(_close_connections_sync, name)):
        if time.monotonic() > deadline:
            return 0
        await asyncio.sleep(0.2)
    return closed
