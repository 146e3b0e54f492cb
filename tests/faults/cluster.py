"""A three-node RabbitMQ cluster of the fault suite's own (scripts/rabbit_cluster.sh).

Its nodes listen on 5681-5683 and share nothing with the broker of `make services`.
Helpers here talk to it over AMQP only (no management plugin on these nodes).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from common.amqp import Names, declare_topology
from common.records import DataType
from extractor.broker import ConfirmingPublisher
from tests.faults.harness import ROOT, Message, wait_until

SCRIPT = ROOT / "scripts" / "rabbit_cluster.sh"
NODES = ("a", "b", "c")
PORTS = {"a": 5681, "b": 5682, "c": 5683}
CREDENTIALS = "discogs:discogs"


@dataclass(frozen=True)
class Cluster:
    """The running cluster whose data, logs and cookie live in ``folder``."""

    folder: Path

    def url(self, node: str) -> str:
        return f"amqp://{CREDENTIALS}@127.0.0.1:{PORTS[node]}/"

    def urls(self, *order: str) -> str:
        """``AMQP_URL`` listing the nodes in ``order`` (default a, b, c)."""
        return ",".join(self.url(n) for n in order or NODES)

    @staticmethod
    def address(node: str) -> str:
        """What the services log and report for ``node``: ``host:port``."""
        return f"127.0.0.1:{PORTS[node]}"

    def script(self, *args: str, timeout: float = 240) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout.strip()

    def ctl(self, node: str, *args: str) -> str:
        return self.script("ctl", str(self.folder), node, *args)

    def stop_app(self, node: str) -> None:
        self.ctl(node, "stop_app")

    def kill(self, node: str) -> None:
        self.script("kill", str(self.folder), node)

    def restore(self, node: str) -> None:
        """Bring ``node`` back (after either fault) and wait until all three run."""
        try:
            self.ctl(node, "start_app")
        except subprocess.CalledProcessError:  # its VM is gone (killed): start it anew
            self.script("start", str(self.folder), node)
        wait_until(lambda: self.running() == 3, within=120, what="three nodes running", every=1)

    def running(self) -> int:
        """Nodes running the broker, as the first node that answers sees them."""
        for node in reversed(NODES):
            try:
                return int(self.ctl(node, "eval", "length(rabbit_nodes:all_running())."))
            except (subprocess.CalledProcessError, ValueError):
                continue
        return 0

    def declare(self, node: str, prefix: str, services: Iterable[str]) -> None:
        """Declare the services' topology through ``node`` (quorum queues, led from it)."""
        asyncio.run(_declare(self.url(node), prefix, list(services)))

    def publish(self, node: str, prefix: str, messages: Sequence[Message]) -> None:
        asyncio.run(_publish(self.url(node), prefix, messages))

    def depth(self, node: str, queues: Sequence[str]) -> int:
        """Messages ready in ``queues``, asked of ``node``."""
        return asyncio.run(_depth(self.url(node), queues))


async def _declare(url: str, prefix: str, services: list[str]) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for service in services:
            await declare_topology(channel, Names(prefix, service), delivery_limit=20)


async def _publish(url: str, prefix: str, messages: Sequence[Message]) -> None:
    async with ConfirmingPublisher(url, prefix, name=f"{prefix}-loader") as publisher:
        for data_type, body in messages:
            await publisher.publish(data_type, body)
        await publisher.flush()


async def _depth(url: str, queues: Sequence[str]) -> int:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        total = 0
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count or 0
        return total


def dead_letter_queues(prefix: str, service: str) -> list[str]:
    names = Names(prefix, service)
    return [names.dead_letter_queue(t) for t in DataType]
