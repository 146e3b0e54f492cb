"""Releases of a megabyte each, over 100 MB in all, through the extractor and both consumers.

Without the byte cap the extractor sent them as batches far above the consumers'
``AMQP_MAX_MESSAGE_BYTES`` and both consumers dead-lettered every record. Here each is
published by the real ``extractor`` command and stored by the real consumers: every record
in both stores with its hash, nothing dead-lettered.
"""

from __future__ import annotations

import gzip
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.records import DataType, Record
from extractor.xmlparse import DumpFile, iter_records
from tests.faults import harness

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELEASES = 105
TRACKS = 3600  # about 1 MB of XML per release
FIRST_ID = 970_000_001  # far above the samples' ids and other tests'


def box_set(ident: int) -> bytes:
    tracks = b"".join(
        b"<track><position>%d</position><title>Box %d, part %d: %s</title>"
        b"<duration>%d:%02d</duration></track>" % (i, ident, i, b"la " * 60, i % 9, i % 60)
        for i in range(1, TRACKS + 1)
    )
    return (
        b'<release id="%d" status="Accepted"><title>Complete Works %d</title>'
        b"<genres><genre>Classical</genre></genres><country>DE</country>"
        b"<released>2020</released><tracklist>%s</tracklist></release>" % (ident, ident, tracks)
    )


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "discogs_20260101_releases.xml.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<releases>')
        for n in range(RELEASES):
            out.write(box_set(FIRST_ID + n))
        out.write(b"</releases>\n")
    return path


@pytest.fixture
def consumers(tmp_path: Path) -> Iterator[tuple[str, str, list[harness.Consumer]]]:
    prefix = f"test-large-{uuid.uuid4().hex[:8]}"
    with harness.fresh_database() as dsn:
        running = [
            harness.Consumer(s, harness.consumer_env(s, prefix, dsn=dsn), tmp_path / f"{s}.log")
            for s in harness.SERVICES
        ]
        try:
            for consumer in running:
                consumer.start()
            for consumer in running:
                consumer.wait_consuming()
            yield prefix, dsn, running
        finally:
            for consumer in running:
                consumer.stop()
            harness.delete_broker_objects(prefix)
            _delete_nodes()


def _delete_nodes() -> None:
    with harness.neo4j_driver() as driver:
        driver.execute_query(
            "MATCH (n:Release) WHERE n.id >= $low AND n.id < $high DETACH DELETE n",
            low=FIRST_ID,
            high=FIRST_ID + RELEASES,
        )


def _graph_hashes() -> dict[str, str]:
    with harness.neo4j_driver() as driver:
        records, _, _ = driver.execute_query(
            "MATCH (n:Release) WHERE n.id >= $low AND n.id < $high RETURN n.id AS id, n.hash AS h",
            low=FIRST_ID,
            high=FIRST_ID + RELEASES,
        )
    return {str(r["id"]): r["h"] for r in records}


@pytest.mark.timeout(300)
def test_megabyte_releases_are_stored_by_both_consumers(
    dump: Path, consumers: tuple[str, str, list[harness.Consumer]]
) -> None:
    prefix, dsn, running = consumers
    expected: dict[str, Record] = {r.id: r for r in iter_records(DumpFile.from_path(dump))}
    xml_bytes = len(gzip.decompress(dump.read_bytes()))
    assert len(expected) == RELEASES
    assert xml_bytes > 100 * 1024 * 1024
    assert min(len(box_set(FIRST_ID)), len(box_set(FIRST_ID + RELEASES))) >= 1_000_000

    env = {**harness.consumer_env("extractor", prefix), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(harness.BIN / "extractor"), "publish", str(dump)],
        env=env,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    for consumer in running:
        consumer.wait_complete([DataType.RELEASES], within=240)

    for service in harness.SERVICES:
        assert harness.dead_letter_depth(prefix, service) == 0, service
    stored = harness.pg_state(dsn)[DataType.RELEASES].hashes
    assert stored == {i: r.stored_hash for i, r in expected.items()}
    assert _graph_hashes() == {i: r.stored_hash for i, r in expected.items()}
