"""Unit tests of common.messages: decoding AMQP bodies into typed messages. Pure, no I/O."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from common.messages import (
    DataMessage,
    Deletion,
    ExtractionComplete,
    FileComplete,
    InvalidMessage,
    RejectedRecord,
    decode,
    dump_version,
)
from common.normalise import normalise
from common.records import DataType

A = DataType.ARTISTS
R = DataType.RELEASES
LIMIT = 1 << 20

RELEASE_NORM: dict[str, Any] = {
    "id": "123",
    "title": "Abbey Road",
    "artists": [{"id": "456", "name": "The Beatles"}],
    "labels": [{"id": "100", "name": "Apple Records", "catno": "PCS 7088"}],
    "master_id": "1000",
    "is_main_release": True,
    "genres": ["Rock"],
    "released": "1969-09-26",
}
RELEASE_RAW: dict[str, Any] = {
    "@id": "123",
    "title": "Abbey Road",
    "artists": {"artist": {"id": "456", "name": "The Beatles", "anv": None}},
    "labels": {"label": {"@id": "100", "@name": "Apple Records", "@catno": "PCS 7088"}},
    "master_id": {"#text": "1000", "@is_main_release": "true"},
    "genres": {"genre": "Rock"},
    "released": "1969-09-26",
    "notes": None,
}


def body(obj: object) -> bytes:
    return orjson.dumps(obj)


def decode_ok(data_type: DataType, obj: object) -> Any:
    return decode(data_type, body(obj), max_bytes=LIMIT)


def rejected_reason(data_type: DataType, raw: bytes, max_bytes: int = LIMIT) -> str:
    with pytest.raises(InvalidMessage) as e:
        decode(data_type, raw, max_bytes=max_bytes)
    reason = str(e.value)
    assert "\n" not in reason
    return reason


# --------------------------------------------------------------------------------------
# data messages
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "envelope",
    [{"type": "data"}, {}, {"type": None}],
    ids=["typed", "untyped", "null-type"],
)
def test_data_message(envelope: dict[str, Any]) -> None:
    msg = decode_ok(R, {**envelope, "sha256": "abc", **RELEASE_NORM})
    assert isinstance(msg, DataMessage)
    assert msg.data_type is R
    assert not msg.is_batch
    assert msg.rejected == []
    (record,) = msg.records
    assert record.id == "123"
    assert record.sha256 == "abc"
    assert record.data == RELEASE_NORM


@pytest.mark.parametrize("envelope", [{"type": "data"}, {}], ids=["typed", "untyped"])
def test_raw_and_normalised_data_messages_give_the_same_record(envelope: dict[str, Any]) -> None:
    raw = decode_ok(R, {**envelope, **RELEASE_RAW})
    norm = decode_ok(R, {**envelope, **RELEASE_NORM})
    assert raw == norm
    assert raw.records[0] == normalise(R, RELEASE_NORM)


def test_integer_id_on_the_wire_is_the_string_id() -> None:
    assert decode_ok(A, {"id": 7, "name": "x"}) == decode_ok(A, {"id": "7", "name": "x"})


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"type": "data", "name": "no id"}, "no id"),
        ({"id": "1; DROP TABLE"}, "'id'"),
        ({"id": "1", "name": "a\u0000b"}, "NUL"),
        ({"id": "1", "genres": [{"name": "Rock"}]}, "'genres'"),
        ({"id": "1", "sha256": ""}, "sha256"),
    ],
)
def test_invalid_data_message_raises_with_the_reason(obj: dict[str, Any], reason: str) -> None:
    assert reason in rejected_reason(A, body(obj))


# --------------------------------------------------------------------------------------
# batch messages
# --------------------------------------------------------------------------------------


def test_batch_message() -> None:
    records = [{"id": str(i), "sha256": f"h{i}", "title": f"t{i}"} for i in range(1, 4)]
    msg = decode_ok(R, {"type": "batch", "data_type": "releases", "records": records})
    assert isinstance(msg, DataMessage)
    assert msg.is_batch
    assert msg.data_type is R
    assert [r.id for r in msg.records] == ["1", "2", "3"]
    assert [r.sha256 for r in msg.records] == ["h1", "h2", "h3"]
    assert msg.rejected == []


@pytest.mark.parametrize(
    "envelope",
    [{}, {"version": "20260301"}, {"data_type": "releases", "version": "20260301"}],
    ids=["bare", "version", "data_type-and-version"],
)
def test_batch_envelope_fields_are_optional(envelope: dict[str, Any]) -> None:
    msg = decode_ok(R, {"type": "batch", **envelope, "records": [RELEASE_NORM]})
    assert isinstance(msg, DataMessage)
    assert [r.id for r in msg.records] == ["123"]


def test_batch_accepts_both_shapes_in_one_message() -> None:
    msg = decode_ok(R, {"type": "batch", "records": [RELEASE_RAW, RELEASE_NORM]})
    assert msg.records[0] == msg.records[1]


def test_empty_batch_is_valid() -> None:
    msg = decode_ok(A, {"type": "batch", "data_type": "artists", "records": []})
    assert msg == DataMessage(A, [], [], is_batch=True)


def test_batch_with_invalid_records_keeps_the_good_ones() -> None:
    items: list[object] = [
        {"id": "1", "name": "good"},
        {"name": "no id"},
        "not an object",
        {"id": "2", "name": "a\u0000b"},
        {"id": "3", "name": "also good"},
        {"id": "x", "name": "bad id"},
        None,
        {"id": "4", "name": {"first": "John"}},
        {"id": "5", "sha256": 5},
        {"id": 6},
    ]
    msg = decode_ok(A, {"type": "batch", "data_type": "artists", "records": items})
    assert isinstance(msg, DataMessage)
    assert [r.id for r in msg.records] == ["1", "3", "6"]
    assert [r.index for r in msg.rejected] == [1, 2, 3, 5, 6, 7, 8]
    for rejected in msg.rejected:
        assert isinstance(rejected, RejectedRecord)
        assert rejected.raw == items[rejected.index]
        assert rejected.reason
    reasons = {r.index: r.reason for r in msg.rejected}
    assert "no id" in reasons[1]
    assert "JSON object" in reasons[2]
    assert "NUL" in reasons[3]
    assert "'id'" in reasons[5]
    assert "JSON object" in reasons[6]
    assert "'name'" in reasons[7]
    assert "sha256" in reasons[8]


def test_batch_with_only_invalid_records_is_still_a_batch() -> None:
    msg = decode_ok(A, {"type": "batch", "records": [{}, {"id": ""}]})
    assert msg.records == []
    assert [r.index for r in msg.rejected] == [0, 1]


def test_deeply_nested_record_in_a_batch_is_rejected_alone() -> None:
    # 900 levels: within the JSON parser's limit, far beyond any Discogs record.
    deep = b"[" * 900 + b"]" * 900
    raw = b'{"type": "batch", "records": [{"id": "1"}, {"id": "2", "extra": ' + deep + b"}]}"
    msg = decode(A, raw, max_bytes=LIMIT)
    assert isinstance(msg, DataMessage)
    assert [r.id for r in msg.records] == ["1"]
    assert [r.index for r in msg.rejected] == [1]
    assert "nests deeper" in msg.rejected[0].reason


@pytest.mark.parametrize(
    "envelope",
    [
        {},
        {"records": None},
        {"records": {"id": "1"}},
        {"records": "[]"},
        {"records": 3},
        {"record": [{"id": "1"}]},
    ],
    ids=["missing", "null", "object", "string", "number", "misspelt"],
)
def test_batch_without_a_records_list_is_invalid(envelope: dict[str, Any]) -> None:
    assert "records" in rejected_reason(A, body({"type": "batch", **envelope}))


@pytest.mark.parametrize("declared", ["labels", "releases", "Artists", "", 5, ["artists"]])
def test_batch_data_type_mismatch_is_invalid(declared: object) -> None:
    raw = body({"type": "batch", "data_type": declared, "records": [{"id": "1"}]})
    reason = rejected_reason(A, raw)
    assert "data_type" in reason
    assert "artists" in reason


# --------------------------------------------------------------------------------------
# file_complete and extraction_complete
# --------------------------------------------------------------------------------------


def test_file_complete() -> None:
    msg = decode_ok(
        A,
        {
            "type": "file_complete",
            "data_type": "artists",
            "file": "discogs_20260301_artists.xml.gz",
            "total_processed": 523847,
            "timestamp": "2026-03-05T12:45:23.456Z",
        },
    )
    assert msg == FileComplete(A, "discogs_20260301_artists.xml.gz", 523847, "20260301")


@pytest.mark.parametrize(
    ("fields", "file", "total", "version"),
    [
        (
            {"file": "/data/discogs_20200806_artists.xml.gz"},
            "/data/discogs_20200806_artists.xml.gz",
            None,
            "20200806",
        ),
        (
            {"file": "discogs_20260301_artists.xml", "version": "20260401"},
            "discogs_20260301_artists.xml",
            None,
            "20260401",
        ),
        (
            {"file": "discogs_20260301_artists.xml", "version": 20260401},
            "discogs_20260301_artists.xml",
            None,
            "20260301",
        ),
        ({"file": "artists.xml.gz"}, "artists.xml.gz", None, None),
        ({"file": "discogs_2026_artists.xml.gz"}, "discogs_2026_artists.xml.gz", None, None),
        ({}, "", None, None),
        ({"file": None, "total_processed": 0}, "", 0, None),
        ({"file": 12, "total_processed": "10"}, "", None, None),
        ({"total_processed": True}, "", None, None),
        ({"total_processed": 1.5}, "", None, None),
        ({"version": "20260301"}, "", None, "20260301"),
    ],
)
def test_file_complete_fields(
    fields: dict[str, Any], file: str, total: int | None, version: str | None
) -> None:
    msg = decode_ok(A, {"type": "file_complete", **fields})
    assert msg == FileComplete(A, file, total, version)


def test_file_complete_data_type_mismatch_is_invalid() -> None:
    raw = body({"type": "file_complete", "data_type": "labels", "file": "x"})
    assert "data_type" in rejected_reason(A, raw)


def test_extraction_complete() -> None:
    counts = {"artists": 9957079, "labels": 2349729, "masters": 2345678, "releases": 18952204}
    msg = decode_ok(
        R,
        {
            "type": "extraction_complete",
            "version": "20260301",
            "timestamp": "2026-03-05T12:45:23Z",
            "started_at": "2026-03-05T10:00:00Z",
            "record_counts": counts,
        },
    )
    assert msg == ExtractionComplete("20260301", counts)


@pytest.mark.parametrize("data_type", list(DataType))
def test_extraction_complete_arrives_on_every_queue(data_type: DataType) -> None:
    # It is published on all four exchanges, so no data_type check applies.
    msg = decode_ok(data_type, {"type": "extraction_complete", "data_type": "artists"})
    assert msg == ExtractionComplete(None, {})


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (None, {}),
        ([], {}),
        ([["artists", 1]], {}),
        ("artists=1", {}),
        (5, {}),
        ({}, {}),
        ({"artists": "12"}, {}),
        ({"artists": 1.5}, {}),
        ({"artists": None}, {}),
        ({"artists": True, "labels": False}, {}),
        ({"artists": -1}, {}),
        ({"artists": {"n": 1}}, {}),
        ({"artists": 0}, {"artists": 0}),
        ({"artists": 10, "labels": "x", "masters": 3}, {"artists": 10, "masters": 3}),
        ({"future_type": 4}, {"future_type": 4}),
        ({"artists": 18446744073709551615}, {"artists": 18446744073709551615}),
    ],
)
def test_extraction_complete_with_odd_record_counts(
    counts: object, expected: dict[str, int]
) -> None:
    msg = decode_ok(R, {"type": "extraction_complete", "version": "1", "record_counts": counts})
    assert msg == ExtractionComplete("1", expected)


@pytest.mark.parametrize(("version", "expected"), [(None, None), (20260301, None), ("x", "x")])
def test_extraction_complete_version(version: object, expected: str | None) -> None:
    msg = decode_ok(R, {"type": "extraction_complete", "version": version})
    assert msg == ExtractionComplete(expected, {})


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("discogs_20260301_artists.xml.gz", "20260301"),
        ("/srv/dumps/discogs_20200806_releases.xml", "20200806"),
        ("discogs_20260301_", "20260301"),
        ("discogs_2026030_artists.xml.gz", None),
        ("discogs-20260301-artists.xml.gz", None),
        ("discogs_abcdefgh_artists.xml.gz", None),
        ("", None),
    ],
)
def test_dump_version(name: str, version: str | None) -> None:
    assert dump_version(name) == version


# --------------------------------------------------------------------------------------
# bodies that can never be processed
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        b'{"id": "1", "name": "caf\xe9"}',  # Latin-1
        b'{"id": "1", "name": "\xed\xa0\x80"}',  # an encoded surrogate
        b'{"id": "1", "name": "\xc3"}',  # truncated sequence
        "{}".encode("utf-16"),
    ],
)
def test_invalid_utf8(raw: bytes) -> None:
    assert "not UTF-8" in rejected_reason(A, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b" ",
        b"{",
        b'{"id": "1",}',
        b"{'id': '1'}",
        b'{"id": NaN}',
        b"nope",
        b'{"id": "1"} {"id": "2"}',
        b'{"name": "\\ud800"}',  # a lone surrogate escape
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    ],
    ids=[
        "empty",
        "blank",
        "truncated",
        "trailing-comma",
        "single-quotes",
        "nan",
        "word",
        "two-objects",
        "lone-surrogate",
        "arrays-10000-deep",
        "objects-10000-deep",
    ],
)
def test_not_json(raw: bytes) -> None:
    assert "not JSON" in rejected_reason(A, raw)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"[]", "list"),
        (b'[{"id": "1"}]', "list"),
        (b"123", "int"),
        (b"1.5", "float"),
        (b'"data"', "str"),
        (b"null", "NoneType"),
        (b"true", "bool"),
    ],
)
def test_top_level_must_be_an_object(raw: bytes, kind: str) -> None:
    reason = rejected_reason(A, raw)
    assert "JSON object" in reason
    assert kind in reason


@pytest.mark.parametrize(
    "kind", ["Data", "batches", "record", "", 5, True, ["data"], {"t": "data"}, "x" * 100]
)
def test_unknown_message_type(kind: object) -> None:
    reason = rejected_reason(A, body({"type": kind, "id": "1"}))
    assert "unknown message type" in reason
    assert len(reason) < 100


def test_record_nested_within_the_parser_limit_is_invalid_not_a_recursion_error() -> None:
    raw = b'{"id": "1", "extra": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert "nests deeper" in rejected_reason(A, raw)


def test_body_over_max_bytes_is_invalid_before_parsing() -> None:
    raw = b"\xff" * 101  # would be "not UTF-8" if it were parsed
    reason = rejected_reason(A, raw, max_bytes=100)
    assert "101" in reason
    assert "100" in reason


def test_body_at_max_bytes_is_accepted() -> None:
    raw = body({"id": "1"})
    msg = decode(A, raw, max_bytes=len(raw))
    assert isinstance(msg, DataMessage)
    with pytest.raises(InvalidMessage):
        decode(A, raw, max_bytes=len(raw) - 1)


def test_invalid_message_is_a_value_error() -> None:
    assert issubclass(InvalidMessage, ValueError)


def test_a_data_message_stamps_its_record_with_the_dump_version() -> None:
    body = b'{"type": "data", "id": "1", "name": "x", "version": "20260301"}'
    msg = decode(DataType.ARTISTS, body, max_bytes=1_000_000)
    assert isinstance(msg, DataMessage)
    assert msg.records[0].version == "20260301"
    assert "version" not in msg.records[0].data


@pytest.mark.parametrize(
    ("records", "versions"),
    [
        (b'[{"id": "1"}, {"id": "2", "version": "20260401"}]', ["20260301", "20260401"]),
        # a record's own version that is not one falls back to the envelope's
        (b'[{"id": "1", "version": "last month"}, {"id": "2", "version": 7}]', ["20260301"] * 2),
    ],
    ids=["own-or-envelope", "malformed-own"],
)
def test_a_batch_stamps_every_record_with_its_own_or_the_envelope_version(
    records: bytes, versions: list[str]
) -> None:
    body = b'{"type": "batch", "data_type": "labels", "version": "20260301", "records": '
    msg = decode(DataType.LABELS, body + records + b"}", max_bytes=1_000_000)
    assert isinstance(msg, DataMessage)
    assert [r.version for r in msg.records] == versions


def test_a_malformed_version_is_ignored() -> None:
    body = b'{"id": "1", "version": "last month"}'
    msg = decode(DataType.ARTISTS, body, max_bytes=1_000_000)
    assert isinstance(msg, DataMessage)
    assert msg.records[0].version is None


# --------------------------------------------------------------------------------------
# delta messages: base_version, delete, the delta's file_complete and extraction_complete
# --------------------------------------------------------------------------------------

OLD, NEW = "20260301", "20260401"


def test_a_delta_batch_names_its_base_version() -> None:
    msg = decode_ok(
        R, {"type": "batch", "version": NEW, "base_version": OLD, "records": [RELEASE_NORM]}
    )
    assert isinstance(msg, DataMessage)
    assert msg.base_version == OLD
    assert msg.records[0].version == NEW


def test_a_delta_data_message_keeps_base_version_out_of_the_record() -> None:
    msg = decode_ok(
        A, {"type": "data", "id": "1", "name": "x", "version": NEW, "base_version": OLD}
    )
    full = decode_ok(A, {"type": "data", "id": "1", "name": "x", "version": NEW})
    assert isinstance(msg, DataMessage)
    assert msg.base_version == OLD
    assert msg.records == full.records
    assert full.base_version is None


@pytest.mark.parametrize("base", ["2026-03-01", "202603", 20260301, "", [OLD], "2026030\uff11"])
@pytest.mark.parametrize("kind", ["batch", "data", "delete", "file_complete"])
def test_a_malformed_base_version_makes_the_message_invalid(kind: str, base: object) -> None:
    obj = {"type": kind, "id": "1", "version": NEW, "base_version": base, "records": [], "ids": []}
    assert "base_version" in rejected_reason(A, body(obj))


def test_a_null_base_version_is_a_full_publish() -> None:
    msg = decode_ok(A, {"type": "batch", "version": NEW, "base_version": None, "records": []})
    assert msg.base_version is None


def test_delete() -> None:
    msg = decode_ok(
        R,
        {
            "type": "delete",
            "data_type": "releases",
            "version": NEW,
            "base_version": OLD,
            "ids": ["17", "42", 7, "0123"],
        },
    )
    assert msg == Deletion(R, ["17", "42", "7", "123"], NEW, OLD)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"version": NEW, "ids": ["1"]}, "needs a version and a base_version"),
        ({"base_version": OLD, "ids": ["1"]}, "needs a version and a base_version"),
        ({"version": "April", "base_version": OLD, "ids": ["1"]}, "needs a version"),
        ({"version": NEW, "base_version": OLD}, "no 'ids' list"),
        ({"version": NEW, "base_version": OLD, "ids": "1,2"}, "no 'ids' list"),
        ({"version": NEW, "base_version": OLD, "ids": ["1", "x2"]}, "ids[1] is not a Discogs id"),
        ({"version": NEW, "base_version": OLD, "ids": ["-3"]}, "ids[0] is not a Discogs id"),
        ({"version": NEW, "base_version": OLD, "ids": [True]}, "ids[0] is not a Discogs id"),
        ({"version": NEW, "base_version": OLD, "ids": [None]}, "ids[0] is not a Discogs id"),
        ({"version": NEW, "base_version": OLD, "ids": [{"id": "1"}]}, "ids[0] is not"),
        ({"version": NEW, "base_version": OLD, "ids": ["9" * 20]}, "ids[0] is not a Discogs id"),
        ({"version": NEW, "base_version": OLD, "ids": [], "data_type": "labels"}, "data_type"),
    ],
)
def test_an_invalid_delete_message_says_why(fields: dict[str, Any], reason: str) -> None:
    assert reason in rejected_reason(R, body({"type": "delete", **fields}))


def test_a_delta_file_complete_carries_its_base_and_counts() -> None:
    counts = {"added": 5, "changed": 10, "unchanged": 980, "deleted": 5}
    msg = decode_ok(
        A,
        {
            "type": "file_complete",
            "data_type": "artists",
            "file": f"discogs_{NEW}_artists.xml.gz",
            "version": NEW,
            "base_version": OLD,
            "total_processed": 15,
            "counts": {**counts, "bogus": -1},
        },
    )
    assert msg == FileComplete(A, f"discogs_{NEW}_artists.xml.gz", 15, NEW, OLD, counts)
    full = decode_ok(A, {"type": "file_complete", "version": NEW, "counts": counts})
    assert (full.base_version, full.counts) == (None, None)


def test_extraction_complete_names_the_types_sent_as_a_delta() -> None:
    bases = {"releases": OLD, "labels": "20260215"}
    msg = decode_ok(
        A, {"type": "extraction_complete", "version": NEW, "base_versions": {**bases, "x": None}}
    )
    assert msg == ExtractionComplete(NEW, {}, bases)
    assert msg.delta_base(R) == OLD
    assert msg.delta_base(A) is None
    assert decode_ok(A, {"type": "extraction_complete", "version": NEW}).base_versions == {}


@pytest.mark.parametrize("bases", [[OLD], {"releases": "March"}, {"releases": 20260301}])
def test_a_malformed_base_versions_makes_extraction_complete_invalid(bases: object) -> None:
    raw = body({"type": "extraction_complete", "version": NEW, "base_versions": bases})
    assert "base_version" in rejected_reason(A, raw)
