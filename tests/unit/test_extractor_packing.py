"""Records into messages: batches close at the record count or the byte cap, whichever first."""

from __future__ import annotations

import orjson
import pytest

from common.messages import DataMessage, decode
from common.normalise import normalise
from common.records import DataType, Record
from extractor.envelopes import batch_body, batch_head, wire_record
from extractor.packing import Packing, RecordTooLarge, Where, pack

A = DataType.ARTISTS
WHERE = Where("discogs_20200806_artists.xml.gz", 11)


def artist(ident: int, size: int = 10) -> Record:
    return normalise(A, {"id": str(ident), "name": "n" * size})


def records_of(bodies: list[bytes]) -> list[list[str]]:
    out = []
    for body in bodies:
        message = decode(A, body, max_bytes=1 << 30)
        assert isinstance(message, DataMessage)
        out.append([r.id for r in message.records])
    return out


def test_joined_body_is_what_batch_body_makes() -> None:
    records = [artist(1), artist(2, 3000)]
    head = batch_head(A, "20200806")
    joined = head + b",".join(wire_record(r) for r in records) + b"]}"
    assert joined == batch_body(A, "20200806", records)
    assert pack(A, "20200806", records, Packing(), WHERE) == [joined]


def test_count_closes_a_batch_when_the_bytes_do_not() -> None:
    records = [artist(i) for i in range(1, 8)]
    bodies = pack(A, "v", records, Packing(batch_size=3), WHERE)
    assert records_of(bodies) == [["1", "2", "3"], ["4", "5", "6"], ["7"]]


def test_bytes_close_a_batch_before_the_count() -> None:
    records = [artist(i, 1000) for i in range(1, 11)]
    cap = 3500  # three ~1 KB records and the envelope fit, a fourth does not
    bodies = pack(A, "v", records, Packing(batch_size=500, max_message_bytes=cap), WHERE)
    assert records_of(bodies) == [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["10"]]
    assert all(len(b) <= cap for b in bodies)
    assert len(bodies[0]) + len(wire_record(records[3])) + 1 > cap  # closed only when full


def test_a_record_larger_than_the_cap_goes_alone() -> None:
    records = [artist(1), artist(2, 5000), artist(3)]
    bodies = pack(A, "v", records, Packing(max_message_bytes=2000), WHERE)
    assert records_of(bodies) == [["1"], ["2"], ["3"]]
    assert len(bodies[1]) > 2000


def test_a_record_over_the_consumers_limit_is_an_error_naming_it() -> None:
    records = [artist(1), artist(2), artist(77, 5000), artist(4)]
    packing = Packing(batch_size=1, max_message_bytes=1000, limit=4000)
    with pytest.raises(RecordTooLarge) as caught:
        pack(A, "v", records, packing, WHERE)
    message = str(caught.value)
    assert message.startswith(f"{WHERE.file}: record #13 (id 77) makes a message of ")
    assert "over the 4000 bytes the consumers accept (AMQP_MAX_MESSAGE_BYTES)" in message
    assert records_of(caught.value.before) == [["1"], ["2"]]
    assert caught.value.records_before == 2


def test_single_mode_checks_each_message_against_the_limit() -> None:
    records = [artist(1), artist(2, 5000)]
    packing = Packing(single=True, max_message_bytes=1000, limit=4000)
    bodies = pack(A, "v", records[:1], packing, WHERE)
    assert orjson.loads(bodies[0])["type"] == "data"
    with pytest.raises(RecordTooLarge, match=r"record #12 \(id 2\)") as caught:
        pack(A, "v", records, packing, WHERE)
    assert caught.value.before == bodies


def test_a_cap_above_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="above the consumers' limit"):
        Packing(max_message_bytes=2000, limit=1000)
