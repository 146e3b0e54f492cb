"""The published bodies: exact shapes, and the consumers' decoder reads them back."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import orjson

from common.messages import DataMessage, ExtractionComplete, FileComplete, decode
from common.normalise import normalise
from common.records import DataType
from extractor.envelopes import (
    BATCH_TAIL,
    batch_body,
    batch_head,
    data_body,
    delete_bodies,
    extraction_complete_body,
    file_complete_body,
    timestamp,
    wire_record,
)

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
RECORD = normalise(DataType.ARTISTS, {"id": "7", "name": "Seven", "aliases": {"name": "Sev"}})


def test_batch_body_shape_and_roundtrip() -> None:
    body = batch_body(DataType.ARTISTS, "20200806", [RECORD, RECORD])
    obj = orjson.loads(body)
    assert list(obj) == ["type", "data_type", "version", "records"]
    assert obj["type"] == "batch"
    assert obj["data_type"] == "artists"
    assert obj["version"] == "20200806"
    assert obj["records"][0] == {**RECORD.data, "sha256": RECORD.sha256}
    message = decode(DataType.ARTISTS, body, max_bytes=1 << 20)
    assert isinstance(message, DataMessage)
    assert message.is_batch
    assert message.records == [replace(RECORD, version="20200806")] * 2


def test_data_body_shape() -> None:
    obj = orjson.loads(data_body("20200806", RECORD))
    assert list(obj)[:3] == ["type", "id", "sha256"]
    assert obj == {"type": "data", **RECORD.data, "sha256": RECORD.sha256, "version": "20200806"}
    message = decode(DataType.ARTISTS, data_body("20200806", RECORD), max_bytes=1 << 20)
    assert isinstance(message, DataMessage)
    assert message.records[0].id == "7"
    assert message.records[0].sha256 == RECORD.sha256


def test_file_complete_body() -> None:
    body = file_complete_body(DataType.LABELS, "discogs_20200806_labels.xml.gz", "20200806", 1000)
    obj = orjson.loads(body)
    assert set(obj) == {"type", "data_type", "file", "version", "total_processed", "timestamp"}
    assert obj["type"] == "file_complete"
    assert obj["total_processed"] == 1000
    assert ISO_Z.fullmatch(obj["timestamp"])
    message = decode(DataType.LABELS, body, max_bytes=1 << 20)
    assert message == FileComplete(DataType.LABELS, obj["file"], 1000, "20200806")


def test_extraction_complete_body() -> None:
    started = datetime(2026, 3, 5, 12, 0, 0, 123456, tzinfo=UTC)
    body = extraction_complete_body("20200806", started, {DataType.LABELS: 3})
    obj = orjson.loads(body)
    assert obj["type"] == "extraction_complete"
    assert obj["started_at"] == "2026-03-05T12:00:00.123Z"
    assert obj["record_counts"] == {"labels": 3}
    assert ISO_Z.fullmatch(obj["timestamp"])
    message = decode(DataType.RELEASES, body, max_bytes=1 << 20)
    assert message == ExtractionComplete("20200806", {"labels": 3})


def test_timestamp_converts_to_utc() -> None:
    assert ISO_Z.fullmatch(timestamp())


def test_delta_bodies_name_their_base_version() -> None:
    batch = orjson.loads(batch_body(DataType.ARTISTS, "20200906", [RECORD], "20200806"))
    assert list(batch) == ["type", "data_type", "version", "base_version", "records"]
    assert batch["base_version"] == "20200806"
    head = batch_head(DataType.ARTISTS, "20200906", "20200806")
    assert head + wire_record(RECORD) + BATCH_TAIL == batch_body(
        DataType.ARTISTS, "20200906", [RECORD], "20200806"
    )
    data = orjson.loads(data_body("20200906", RECORD, "20200806"))
    assert (data["version"], data["base_version"]) == ("20200906", "20200806")
    assert "base_version" not in orjson.loads(data_body("20200906", RECORD))

    done = orjson.loads(
        file_complete_body(
            DataType.ARTISTS, "f", "20200906", 3, base_version="20200806", counts={"added": 3}
        )
    )
    assert (done["base_version"], done["counts"], done["total_processed"]) == (
        "20200806",
        {"added": 3},
        3,
    )
    assert "counts" not in orjson.loads(file_complete_body(DataType.ARTISTS, "f", "20200906", 3))
    started = datetime(2026, 1, 1, tzinfo=UTC)
    end = orjson.loads(
        extraction_complete_body(
            "20200906", started, {DataType.ARTISTS: 3}, {DataType.ARTISTS: "20200806"}
        )
    )
    assert end["base_versions"] == {"artists": "20200806"}
    assert "base_versions" not in orjson.loads(extraction_complete_body("20200906", started, {}))


def test_delete_messages_keep_to_the_byte_cap() -> None:
    ids = [str(10**8 + i) for i in range(1000)]
    bodies = delete_bodies(DataType.RELEASES, "20200906", "20200806", ids, 2000)
    assert all(len(b) <= 2000 for b in bodies)
    decoded = [orjson.loads(b) for b in bodies]
    assert [i for d in decoded for i in d["ids"]] == ids
    assert list(decoded[0]) == ["type", "data_type", "version", "base_version", "ids"]
    assert {(d["type"], d["data_type"], d["base_version"]) for d in decoded} == {
        ("delete", "releases", "20200806")
    }
