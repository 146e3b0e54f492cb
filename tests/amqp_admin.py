"""Test-side broker housekeeping through the management API (queues and exchanges by prefix)."""

from __future__ import annotations

import asyncio
import base64
import json
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
