"""The fault suite's machinery: real consumer subprocesses, publishing, store snapshots.

Everything here talks to the real servers of `make services`. Waits are polls of a
condition with a deadline (:func:`wait_until`), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import psycopg
from neo4j import Driver, GraphDatabase
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.generate import generate
from common.amqp import Names, declare_topology
from common.records import DataType, Record
from common.settling import REASON_HEADER
from extractor.broker import ConfirmingPublisher
from extractor.envelopes import batch_body, data_body, extraction_complete_body, file_complete_body
from extractor.xmlparse import DumpFile, iter_records
from tests import servers

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
SAMPLES = ROOT / "data" / "samples"
SERVICES_SH = ROOT / "scripts" / "services.sh"
VERSION = "20260101"
SERVICES = ("graphinator", "tableinator")
# The consumer that writes each store, as the reliability table names them.
_SERVICE_OF_STORE = {"postgres": "tableinator", "neo4j": "graphinator"}
NODE_LABEL = {
    DataType.ARTISTS: "Artist",
    DataType.LABELS: "Label",
    DataType.MASTERS: "Master",
    DataType.RELEASES: "Release",
}
# Log events of a message or record leaving for the dead-letter queue (one per poison).
DEAD_LETTER_EVENTS = frozenset({"message dead-lettered", "record dead-lettered", "record rejected"})


class Timeout(AssertionError):
    """A condition the suite waited for did not happen in time."""


def wait_until(
    predicate: Callable[[], bool], *, within: float, what: str, every: float = 0.2
) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise Timeout(f"not within {within:.0f}s: {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------ data


@cache
def samples(data_type: DataType) -> tuple[Record, ...]:
    """The 1,000 records of the bundled sample dump of ``data_type``."""
    path = SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz"
    return tuple(iter_records(DumpFile.from_path(path)))


def synthetic(data_type: DataType, n: int, *, seed: int = 7) -> list[Record]:
    """``n`` generated records with ids far above the samples' (no collision)."""
    return list(generate(data_type, n, seed=seed, first_id=900_000_001, id_space=n))


@dataclass
class Dataset:
    """The valid records a case publishes, per type, in publishing order."""

    records: dict[DataType, list[Record]]

    @classmethod
    def sample(cls, per_type: int = 1000, *, extra_releases: int = 0) -> Dataset:
        out = {t: list(samples(t)[:per_type]) for t in DataType}
        if extra_releases:
            out[DataType.RELEASES] += synthetic(DataType.RELEASES, extra_releases)
        return cls(out)

    def expected(self) -> dict[DataType, dict[str, Record]]:
        """What the stores must hold: per type and id, the last published version."""
        return {t: {r.id: r for r in rs} for t, rs in self.records.items()}

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.expected().values())


Message = tuple[DataType, bytes]


def stream(dataset: Dataset, *, batch: int = 0, version: str = VERSION) -> list[Message]:
    """Data messages (or batch messages of ``batch`` records), type by type."""
    out: list[Message] = []
    for data_type, records in dataset.records.items():
        if batch:
            for i in range(0, len(records), batch):
                out.append((data_type, batch_body(data_type, version, records[i : i + batch])))
        else:
            out.extend((data_type, data_body(version, r)) for r in records)
    return out


def completions(dataset: Dataset, *, version: str = VERSION) -> list[Message]:
    """file_complete then extraction_complete for every type of ``dataset``."""
    out: list[Message] = []
    counts = {t: len(rs) for t, rs in dataset.records.items()}
    for data_type, n in counts.items():
        name = f"discogs_{version}_{data_type.value}.xml.gz"
        out.append((data_type, file_complete_body(data_type, name, version, n)))
    body = extraction_complete_body(version, datetime.now(UTC), counts)
    out.extend((t, body) for t in counts)
    return out


def shuffled(messages: Sequence[Message], seed: int) -> list[Message]:
    out = list(messages)
    random.Random(seed).shuffle(out)
    return out


# ------------------------------------------------------------------------ broker


def mgmt(method: str, path: str, body: object = None, *, url: str = servers.AMQP_URL) -> Any:
    """One call to RabbitMQ's management API as the test user."""
    parts = urllib.parse.urlsplit(url)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://{parts.hostname}:15672/api/{path}", data=data, method=method
    )
    token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=15) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def delete_broker_objects(prefix: str) -> None:
    """Delete every queue and exchange whose name starts with ``prefix``."""
    for kind in ("queues", "exchanges"):
        with contextlib.suppress(urllib.error.URLError, OSError):
            for item in mgmt("GET", f"{kind}/%2F?columns=name"):
                if item["name"].startswith(prefix):
                    name = urllib.parse.quote(item["name"], safe="")
                    with contextlib.suppress(urllib.error.URLError):
                        mgmt("DELETE", f"{kind}/%2F/{name}")


async def _declare(prefix: str, services: Iterable[str]) -> None:
    connection = await aio_pika.connect(servers.AMQP_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        for service in services:
            await declare_topology(channel, Names(prefix, service), delivery_limit=20)


def declare(prefix: str, services: Iterable[str]) -> None:
    """Declare the services' queues (as they would), so a producer may run before them."""
    asyncio.run(_declare(prefix, list(services)))


async def _publish(prefix: str, messages: Sequence[Message]) -> None:
    async with ConfirmingPublisher(servers.AMQP_URL, prefix) as publisher:
        for data_type, body in messages:
            await publisher.publish(data_type, body)
        await publisher.flush()


def publish(prefix: str, messages: Sequence[Message]) -> None:
    """Publish ``messages`` in order, confirmed, to the ``{prefix}-{type}`` exchanges."""
    asyncio.run(_publish(prefix, messages))


async def _queue_counts(names: Sequence[str]) -> dict[str, int]:
    connection = await aio_pika.connect(servers.AMQP_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        out = {}
        for name in names:
            q = await channel.declare_queue(name, passive=True)
            out[name] = q.declaration_result.message_count or 0
        return out


def ready_counts(names: Sequence[str]) -> dict[str, int]:
    """Messages ready (not delivered) in each named queue."""
    return asyncio.run(_queue_counts(names))


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    reason: str
    size: int
    body_head: bytes


async def _drain_dlq(names: Sequence[str]) -> list[DeadLetter]:
    connection = await aio_pika.connect(servers.AMQP_URL, timeout=10)
    out = []
    async with connection:
        channel = await connection.channel()
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(fail=False, timeout=10)) is not None:
                reason = (message.headers or {}).get(REASON_HEADER)
                out.append(
                    DeadLetter(
                        name,
                        reason.decode() if isinstance(reason, bytes) else str(reason),
                        len(message.body),
                        message.body[:200],
                    )
                )
                await message.ack()
    return out


def drain_dead_letters(prefix: str, service: str) -> list[DeadLetter]:
    """Take every message out of ``service``'s four dead-letter queues."""
    names = Names(prefix, service)
    return asyncio.run(_drain_dlq([names.dead_letter_queue(t) for t in DataType]))


def dead_letter_depth(prefix: str, service: str) -> int:
    names = Names(prefix, service)
    return sum(ready_counts([names.dead_letter_queue(t) for t in DataType]).values())


# ------------------------------------------------------------------------ stores


@contextlib.contextmanager
def fresh_database(admin_dsn: str = servers.POSTGRES_ADMIN_DSN, **params: str) -> Iterator[str]:
    """A new empty PostgreSQL database (its DSN, optionally with other params), dropped after."""
    name = f"faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        owner = params.get("user")
        if owner:
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )
        else:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsn = conninfo_to_dict(admin_dsn)
        dsn.update({"dbname": name, **params})
        yield make_conninfo(**dsn)  # type: ignore[arg-type]
    finally:
        drop_database(name, admin_dsn)


def drop_database(name: str, admin_dsn: str = servers.POSTGRES_ADMIN_DSN) -> None:
    deadline = time.monotonic() + 120  # PostgreSQL may be restarting after an outage case
    while True:
        try:
            with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def neo4j_driver() -> Driver:
    return GraphDatabase.driver(servers.NEO4J_URI, auth=servers.NEO4J_AUTH)


SENTINEL = "FaultSuiteSentinel"


def clear_graph() -> None:
    """Delete every node and relationship (constraints stay: graphinator recreates them),
    then leave a sentinel node: if it is gone at the end, someone else emptied the graph."""
    with neo4j_driver() as driver, driver.session() as session:
        session.run(
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
        ).consume()
        session.run(f"CREATE (:{SENTINEL})").consume()


def graph_interfered() -> bool:
    """Whether the sentinel of :func:`clear_graph` vanished (another suite cleared the graph)."""
    with neo4j_driver() as driver:
        records, _, _ = driver.execute_query(f"MATCH (n:{SENTINEL}) RETURN count(n) AS c")
    return int(records[0]["c"]) == 0


@dataclass
class StoreState:
    """What one store holds of one type: id -> hash, plus how many rows/nodes in all."""

    hashes: dict[str, str]
    rows: int
    texts: dict[str, object] = field(default_factory=dict)  # id -> data (PG) or name/title


def pg_state(dsn: str) -> dict[DataType, StoreState]:
    out = {}
    with psycopg.connect(dsn) as conn:
        for data_type in DataType:
            table = sql.Identifier(data_type.value)
            rows = conn.execute(sql.SQL("SELECT data_id, hash, data FROM {}").format(table))
            fetched = rows.fetchall()
            out[data_type] = StoreState(
                {r[0]: r[1] for r in fetched}, len(fetched), {r[0]: r[2] for r in fetched}
            )
    return out


def graph_state() -> dict[DataType, StoreState]:
    out = {}
    with neo4j_driver() as driver:
        for data_type, label in NODE_LABEL.items():
            records, _, _ = driver.execute_query(
                f"MATCH (n:{label}) WHERE n.placeholder = false "  # label: fixed list above
                "RETURN n.id AS id, n.hash AS hash, coalesce(n.title, n.name) AS text"
            )
            out[data_type] = StoreState(
                {str(r["id"]): r["hash"] for r in records},
                len(records),
                {str(r["id"]): r["text"] for r in records},
            )
    return out


def graph_fingerprint() -> tuple[list[str], list[str]]:
    """Every node (labels and properties) and relationship, as sorted strings."""
    with neo4j_driver() as driver:
        nodes, _, _ = driver.execute_query(
            f"MATCH (n) WHERE NOT n:{SENTINEL} RETURN labels(n) AS l, properties(n) AS p"
        )
        rels, _, _ = driver.execute_query(
            "MATCH (a)-[r]->(b) RETURN type(r) AS t, properties(r) AS p, "
            "labels(a) AS la, coalesce(a.id, a.name) AS a, labels(b) AS lb, "
            "coalesce(b.id, b.name) AS b"
        )
    n = sorted(orjson.dumps([r["l"], r["p"]], option=orjson.OPT_SORT_KEYS).decode() for r in nodes)
    e = sorted(
        orjson.dumps(
            [r["t"], r["p"], r["la"], r["a"], r["lb"], r["b"]], option=orjson.OPT_SORT_KEYS
        ).decode()
        for r in rels
    )
    return n, e


def graph_duplicates() -> int:
    """Nodes sharing a key with another node of their label (must be 0)."""
    total = 0
    with neo4j_driver() as driver:
        for label in [*NODE_LABEL.values(), "Genre", "Style"]:  # fixed list
            key = "name" if label in ("Genre", "Style") else "id"
            records, _, _ = driver.execute_query(
                f"MATCH (n:{label}) RETURN count(n) - count(DISTINCT n.{key}) AS d"
            )
            total += int(records[0]["d"])
    return total


@dataclass
class Tally:
    """One store's result for one case."""

    published: int
    stored: int
    lost: int
    duplicated: int
    mismatched: int
    unexpected: int

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched or self.unexpected)


def tally(
    expected: dict[DataType, dict[str, Record]],
    state: dict[DataType, StoreState],
    *,
    content: Callable[[Record, object], bool],
    extra_duplicates: int = 0,
) -> Tally:
    published = stored = lost = dup = mismatched = unexpected = 0
    for data_type, want in expected.items():
        have = state[data_type]
        published += len(want)
        stored += have.rows
        dup += have.rows - len(have.hashes)
        unexpected += len(set(have.hashes) - set(want))
        for ident, record in want.items():
            if ident not in have.hashes:
                lost += 1
            elif have.hashes[ident] != record.stored_hash or not content(record, have.texts[ident]):
                mismatched += 1
    return Tally(published, stored, lost, dup + extra_duplicates, mismatched, unexpected)


def pg_content(record: Record, data: object) -> bool:
    return data == record.data


def graph_content(record: Record, text: object) -> bool:
    want = record.data.get("title", record.data.get("name"))
    return want is None or text == str(want)


# ------------------------------------------------------------------------ consumers


def consumer_env(service: str, prefix: str, *, dsn: str | None = None) -> dict[str, str]:
    env = {
        "AMQP_URL": servers.AMQP_URL,
        "DISCOGS_EXCHANGE_PREFIX": prefix,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    if service == "graphinator":
        env |= {
            "NEO4J_URI": servers.NEO4J_URI,
            "NEO4J_USERNAME": servers.NEO4J_AUTH[0],
            "NEO4J_PASSWORD": servers.NEO4J_AUTH[1],
        }
    elif dsn is not None:
        env["POSTGRES_DSN"] = dsn
    return env


_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONHASHSEED", "TMPDIR")


def inherited_env() -> dict[str, str]:
    """What a child process keeps of this one's environment."""
    return {k: os.environ[k] for k in _INHERITED if k in os.environ}


@dataclass
class Consumer:
    """One consumer service run as a real subprocess (``.venv/bin/<service>``)."""

    service: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    exit_codes: list[int] = field(default_factory=list)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = inherited_env() | self.env | {"HEALTH_PORT": str(self.port)}
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / self.service)], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> tuple[int, bytes] | None:
        """``(status, body)`` of ``GET path`` on the health port, or None if not answering."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None

    def health(self) -> dict[str, Any] | None:
        got = self.get("/health")
        if got is None:
            return None
        try:
            return json.loads(got[1])  # type: ignore[no-any-return]
        except json.JSONDecodeError:
            return None

    def committed(self) -> int:
        h = self.health()
        if not h:
            return 0
        return sum(int(s["written"]) + int(s["unchanged"]) for s in h["types"].values())

    def wait_consuming(self, within: float = 90) -> None:
        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"{self.service} exited early: {self.tail()}")
            h = self.health()
            return bool(h and h.get("status") == "ok")

        wait_until(ready, within=within, what=f"{self.service} consuming")

    def wait_complete(self, types: Iterable[DataType], within: float = 120) -> None:
        """Until this process has handled ``extraction_complete`` of every type in ``types``
        (it does so only after every record before it has committed)."""
        wanted = [t.value for t in types]

        def done() -> bool:
            if not self.running:
                raise AssertionError(f"{self.service} exited: {self.tail()}")
            h = self.health()
            return bool(h) and all(h["types"][t]["extraction_complete"] for t in wanted)  # type: ignore[index]

        wait_until(done, within=within, what=f"{self.service} extraction_complete of {wanted}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, within: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=within)
        self.exit_codes.append(code)
        return code

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    def stop(self, within: float = 45) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not exit. None if it was not running."""
        if not self.running:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.wait_exit(within)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise

    def rss_kb(self) -> int:
        """Resident set size now (VmRSS), in kB; 0 if unavailable."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = {"event": line, "level": "raw"}
            out.append(obj if isinstance(obj, dict) else {"event": line, "level": "raw"})
        return out

    def events(self, *names: str, level: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.logs()
            if e.get("event") in names and (level is None or e.get("level") == level)
        ]

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.text().splitlines()[-n:])


def in_mid_load(consumers: Sequence[Consumer], total: int, low: float, high: float) -> float:
    """Wait until every consumer committed between ``low`` and ``high`` of ``total``
    records; returns the fraction committed by the slowest. Fails if one runs past ``high``
    (the fault would no longer be mid-load)."""

    def reached() -> bool:
        done = [c.committed() for c in consumers]
        if any(d > high * total for d in done):
            raise AssertionError(f"load ran past {high:.0%} before the fault: {done}/{total}")
        return all(d >= low * total for d in done)

    wait_until(reached, within=120, what=f"{low:.0%} of {total} records committed", every=0.05)
    return min(c.committed() for c in consumers) / total


# ------------------------------------------------------------------------ servers


def other_pytests() -> list[str]:
    """Command lines of pytest processes that are not this one or one of its ancestors."""
    mine = set()
    pid = os.getpid()
    while pid > 1:
        mine.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    out = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True, check=False)
    lines = []
    for line in out.stdout.splitlines():
        pid_text, _, cmd = line.partition(" ")
        if pid_text.isdigit() and int(pid_text) not in mine:
            lines.append(cmd)
    return lines


def wait_for_quiet(limit: float = 600, log: Callable[[str], None] | None = None) -> float:
    """Before stopping a server: wait (2 s polls, up to ``limit``) until no other pytest runs.
    Returns the seconds waited; proceeds anyway after ``limit``."""
    log = log or _stderr
    started = time.monotonic()
    others = other_pytests()
    if others:
        log(f"waiting for other test runs before a server restart: {others}")
    while others and time.monotonic() - started < limit:
        time.sleep(2)
        others = other_pytests()
    if others:
        log(f"proceeding after {limit:.0f}s although these still run: {others}")
    return time.monotonic() - started


def _stderr(text: str) -> None:
    sys.stderr.write(f"[faults] {text}\n")


@contextlib.contextmanager
def server_down(server: str) -> Iterator[None]:
    """Stop ``server`` (rabbitmq, postgres, neo4j) for the body; always bring it back up
    and wait for its readiness. Waits first until no other pytest runs."""
    wait_for_quiet()
    services(f"down-{server}")
    try:
        yield
    finally:
        services(f"up-{server}")


def services(action: str) -> None:
    """``scripts/services.sh <action>`` (up-* waits for the server's readiness)."""
    subprocess.run(["bash", str(SERVICES_SH), action], check=True, timeout=300, cwd=ROOT)


# ------------------------------------------------------------------------ results


@dataclass
class Case:
    """One case's isolated resources: a unique exchange prefix, a log folder, consumers."""

    name: str
    prefix: str
    logs: Path
    consumers: list[Consumer] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def consumer(self, service: str, env: dict[str, str], tag: str = "") -> Consumer:
        c = Consumer(service, env, self.logs / f"{service}{tag}.log")
        self.consumers.append(c)
        return c

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


@dataclass
class Reliability:
    """Rows of the reliability table, one per case and store."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        case: str,
        store: str,
        t: Tally,
        *,
        dead_lettered: int = 0,
        seconds: float = 0.0,
        note: str = "",
    ) -> None:
        self.rows.append(
            {
                "case": case,
                "store": store,
                "published": t.published,
                "stored": t.stored,
                "lost": t.lost,
                "duplicated": t.duplicated,
                "mismatched": t.mismatched,
                "unexpected": t.unexpected,
                "dead_lettered": dead_lettered,
                "seconds": round(seconds, 1),
                "note": note,
            }
        )

    def check(
        self,
        case: Case,
        expected: dict[DataType, dict[str, Record]],
        *,
        dsn: str | None = None,
        graph: bool = False,
        dead_lettered: dict[str, int] | None = None,
        note: str = "",
    ) -> dict[str, Tally]:
        """Compare each store with ``expected``, record the rows, fail on any difference."""
        dead = dead_lettered or {}
        got: dict[str, Tally] = {}
        if dsn is not None:
            got["postgres"] = tally(expected, pg_state(dsn), content=pg_content)
        if graph:
            assert not graph_interfered(), (
                "another test run emptied the shared graph during this case (the sentinel "
                "node is gone): the result says nothing; rerun when no other suite runs"
            )
            got["neo4j"] = tally(
                expected, graph_state(), content=graph_content, extra_duplicates=graph_duplicates()
            )
        for store, counted in got.items():
            self.add(
                case.name,
                store,
                counted,
                dead_lettered=dead.get(_SERVICE_OF_STORE[store], 0),
                seconds=case.seconds,
                note=note,
            )
        bad = {store: t for store, t in got.items() if not t.ok}
        assert not bad, f"stores differ from what was published: {bad}"
        return got
