"""Poison mixed into a valid stream: each poison message is dead-lettered with its reason
and one WARNING line, every valid record loads, the services stay up; injection-looking
names are data, stored verbatim, and nothing they spell is executed."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from common.records import DataType, Record, canonical_json
from extractor.envelopes import batch_body, data_body
from tests.faults import harness
from tests.faults.harness import VERSION, Case, Dataset, Message, Reliability

pytestmark = [pytest.mark.faults, pytest.mark.integration]

A, L, M, R = DataType.ARTISTS, DataType.LABELS, DataType.MASTERS, DataType.RELEASES
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # set explicitly: the default (64 MiB) admits 50 MB

SQL_NAME = "Robert'); DROP TABLE artists; --"
CYPHER_NAME = "x'}) MATCH (n) DETACH DELETE n //"
FORMAT_NAME = "%s %(x)s {0} {rows} $rows ${id}"
INJECTION_NAMES = {A: SQL_NAME, L: CYPHER_NAME, M: FORMAT_NAME, R: "1' OR '1'='1"}


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


def poison() -> list[tuple[str, DataType, bytes, str]]:
    """(case, type, body, a word of the expected reason) for every kind of bad input."""
    nested = b'{"id": "7", "profile": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    huge = b'{"id": "8", "name": "big", "profile": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    return [
        ("invalid UTF-8", A, b'{"id": "1", "name": "caf\xe9 \xff\xfe"}', "UTF-8"),
        ("not JSON", L, b'{"id": 2, name: oops', "not JSON"),
        ("JSON array", M, b'[{"id": "3"}]', "JSON object"),
        ("JSON number", R, b"42", "JSON object"),
        ("missing id", A, _json({"type": "data", "name": "no id"}), "no id"),
        ("empty id", L, _json({"id": "", "name": "empty id"}), "no id"),
        ("id is an object", M, _json({"id": {"$gt": 0}, "title": "t"}), "id"),
        ("unknown type", R, _json({"type": "delete_everything", "id": "4"}), "unknown"),
        ("50 MB message", A, huge, "exceeds"),
        ("JSON nested 10,000 deep", L, nested, "not JSON"),
        ("tracklist is a string", R, _json({"id": "5", "tracklist": "A1 Intro"}), "tracklist"),
        ("NUL in a string", A, _json({"id": "6", "name": "nul\u0000here"}), "NUL"),
        ("SQL injection id", A, _json({"id": "1; DROP TABLE artists; --"}), "Discogs id"),
        ("Cypher injection id", R, _json({"id": "1}) DETACH DELETE n //"}), "Discogs id"),
        (
            "bad record in a batch",
            L,
            _json({"type": "batch", "data_type": "labels", "records": [{"id": "abc"}]}),
            "Discogs id",
        ),
    ]


def injection_records() -> dict[DataType, Record]:
    """Valid records whose names look like SQL, Cypher and format-string injections."""
    out = {}
    for i, (data_type, name) in enumerate(INJECTION_NAMES.items()):
        key = "title" if data_type in (M, R) else "name"
        data: dict[str, object] = {"id": str(990_000_001 + i), key: name}
        if data_type is R:
            data["genres"] = ["Rock' OR '1'='1"]
            data["styles"] = ["}) DETACH DELETE n //"]
            data["artists"] = [{"id": "990000001", "name": SQL_NAME}]
        out[data_type] = Record(data["id"], _sha(data), data)  # type: ignore[arg-type]
    return out


def _sha(data: dict[str, object]) -> str:
    import hashlib

    return hashlib.sha256(canonical_json(data)).hexdigest()


def test_poison_is_dead_lettered_and_valid_records_load(
    case: Case,
    reliability: Reliability,
    graph: None,
    pg_database: str,
) -> None:
    data = Dataset.sample(per_type=300)
    injected = injection_records()
    for data_type, record in injected.items():
        data.records[data_type].append(record)
    bad = poison()

    # Valid records as single and batch messages, poison spread through them.
    valid: list[Message] = []
    for data_type, records in data.records.items():
        valid += [(data_type, data_body(VERSION, r)) for r in records[:200]]
        rest = records[200:]
        valid += [
            (data_type, batch_body(data_type, VERSION, rest[i : i + 25]))
            for i in range(0, len(rest), 25)
        ]
    messages = list(valid)
    step = len(valid) // (len(bad) + 1)
    for i, (_, data_type, body, _) in enumerate(bad):
        messages.insert((i + 1) * step + i, (data_type, body))

    harness.declare(case.prefix, harness.SERVICES)
    harness.publish(case.prefix, messages + harness.completions(data))
    consumers = []
    for service in harness.SERVICES:
        env = harness.consumer_env(service, case.prefix, dsn=pg_database)
        consumers.append(
            case.consumer(service, env | {"AMQP_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES)})
        )
    for c in consumers:
        c.start()
    for c in consumers:
        c.wait_complete(DataType, within=180)

    dead: dict[str, int] = {}
    want_by_queue = Counter(t.value for _, t, _, _ in bad)
    for c in consumers:
        status = c.get("/health")
        assert status is not None, f"{c.service} health does not answer"
        assert status[0] == 200, f"{c.service} health: {status}"
        letters = harness.drain_dead_letters(case.prefix, c.service)
        dead[c.service] = len(letters)
        got_by_queue = Counter(d.queue.rsplit("-", 2)[-2] for d in letters)
        assert got_by_queue == want_by_queue, (c.service, got_by_queue)
        reasons = [d.reason for d in letters]
        for name, _, _, word in bad:
            assert any(word in r for r in reasons), f"{c.service}: no reason for {name}: {reasons}"
        warnings = [
            e
            for e in c.logs()
            if e.get("level") == "warning" and e.get("event") in harness.DEAD_LETTER_EVENTS
        ]
        assert len(warnings) == len(bad), (c.service, [w.get("reason") for w in warnings])
        counters = c.health()["types"]  # type: ignore[index]
        assert sum(s["dead_lettered"] for s in counters.values()) == len(bad), counters

    reliability.check(
        case,
        data.expected(),
        dsn=pg_database,
        graph=True,
        dead_lettered=dead,
        note=f"{len(bad)} poison messages among {len(valid)} valid ones; "
        "injection-like names stored verbatim",
    )
    assert_injections_inert(pg_database, injected)


def assert_injections_inert(dsn: str, injected: dict[DataType, Record]) -> None:
    """The injection-looking names are stored verbatim; every table and label is intact."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"artists", "labels", "masters", "releases"} <= tables, tables
        for data_type, record in injected.items():
            row = conn.execute(
                "SELECT data FROM " + data_type.value + " WHERE data_id = %s",  # fixed names
                (record.id,),
            ).fetchone()
            assert row is not None
            assert row[0] == record.data
    with harness.neo4j_driver() as driver:
        for data_type, record in injected.items():
            label = harness.NODE_LABEL[data_type]
            records, _, _ = driver.execute_query(
                f"MATCH (n:{label} {{id: $id}}) RETURN coalesce(n.title, n.name) AS t",
                id=int(record.id),
            )
            want = record.data.get("title", record.data.get("name"))
            assert [r["t"] for r in records] == [want]
        records, _, _ = driver.execute_query(
            "MATCH (r:Release {id: $id})-[:IS]->(t) RETURN t.name AS n ORDER BY n",
            id=int(injected[R].id),
        )
        assert [r["n"] for r in records] == ["Rock' OR '1'='1", "}) DETACH DELETE n //"]
