"""common.frames: the same frames as pamqp from the same bytes, however they arrive."""

from __future__ import annotations

import asyncio
import datetime
import random
from typing import Any

import aiormq.connection
import pamqp.frame
import pytest
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp import commands, heartbeat
from pamqp.body import ContentBody
from pamqp.header import ContentHeader, ProtocolHeader

from common import frames
from common.frames import BufferedFrameReceiver, decode_frame

Properties = commands.Basic.Properties


def attributes(frame: object) -> dict[str, Any]:
    """Everything a frame holds, its properties included, for comparing two of them."""
    names = {s for cls in type(frame).__mro__ for s in getattr(cls, "__slots__", ())}
    names |= set(getattr(frame, "__dict__", {}))
    values = {name: getattr(frame, name, None) for name in sorted(names)}
    if isinstance(values.get("properties"), Properties):
        values["properties"] = attributes(values["properties"])
    return {"type": type(frame), **values}


def same_as_pamqp(wire: bytes) -> None:
    expected = pamqp.frame.unmarshal(wire)
    got = decode_frame(wire, 0)
    assert got is not None
    assert got[:2] == expected[:2]
    assert attributes(got[2]) == attributes(expected[2])


def deliver(**fields: Any) -> bytes:
    values = {"consumer_tag": "ctag1.0f3a", "delivery_tag": 1, "exchange": "x", "routing_key": ""}
    return pamqp.frame.marshal(commands.Basic.Deliver(**(values | fields)), 3)


def header(body_size: int = 10, **properties: Any) -> bytes:
    return pamqp.frame.marshal(ContentHeader(0, body_size, Properties(**properties)), 3)


SAMPLE_VALUES: dict[str, list[Any]] = {
    "content_type": ["application/json", "", "t" * 255, "ünï/cødé"],
    "content_encoding": ["gzip"],
    "headers": [
        {"x-data-type": "releases"},
        {},
        {"n": 7, "f": 1.5, "b": True, "l": [1, "two"], "t": {"nested": "ünï"}},
    ],
    "delivery_mode": [1, 2],
    "priority": [0, 9, 255],
    "correlation_id": ["c-1"],
    "reply_to": ["amq.rabbitmq.reply-to"],
    "expiration": ["60000"],
    "message_id": ["m" * 40],
    "timestamp": [datetime.datetime(2026, 12, 1, 12, 30, tzinfo=datetime.UTC)],
    "message_type": ["release"],
    "user_id": ["guest"],
    "app_id": ["extractor"],
}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"redelivered": True},
        {"delivery_tag": 2**63 - 1},
        {"consumer_tag": "", "exchange": "", "routing_key": ""},
        {"consumer_tag": "c" * 255, "exchange": "discogs-releases.v2:x", "routing_key": "r" * 255},
    ],
)
def test_deliver_frames_decode_as_pamqp_does(fields: dict[str, Any]) -> None:
    same_as_pamqp(deliver(**fields))


@pytest.mark.parametrize("name", sorted(SAMPLE_VALUES))
def test_each_property_decodes_as_pamqp_does(name: str) -> None:
    for value in SAMPLE_VALUES[name]:
        same_as_pamqp(header(**{name: value}))


def test_random_sets_of_properties_decode_as_pamqp_does() -> None:
    rng = random.Random(7)
    names = sorted(SAMPLE_VALUES)
    for _ in range(300):
        chosen = rng.sample(names, rng.randint(0, len(names)))
        values = {name: rng.choice(SAMPLE_VALUES[name]) for name in chosen}
        same_as_pamqp(header(rng.choice([0, 1, 3200, 2**40]), **values))


@pytest.mark.parametrize(
    "frame",
    [
        ContentBody(b"{}"),
        ContentBody(bytes(range(256)) * 100),
        heartbeat.Heartbeat(),
        commands.Basic.Ack(delivery_tag=5, multiple=True),
        commands.Basic.ConsumeOk(consumer_tag="ctag"),
        commands.Basic.Cancel(consumer_tag="ctag"),
        commands.Channel.Close(404, "NOT_FOUND - no queue 'q'", 50, 10),
        commands.Basic.GetOk(delivery_tag=1, exchange="", routing_key="q", message_count=0),
        commands.Basic.Return(312, "NO_ROUTE", "x", "r"),
    ],
    ids=lambda frame: frame.name,
)
def test_other_frames_are_pamqps_own(frame: Any) -> None:
    same_as_pamqp(pamqp.frame.marshal(frame, 1))


def corrupt(wire: bytes, at: int, value: int) -> bytes:
    return wire[:at] + bytes([value]) + wire[at + 1 :]


@pytest.mark.parametrize(
    "wire",
    [
        corrupt(deliver(), -1, 0),  # no frame-end octet
        corrupt(header(), -1, 0),
        corrupt(pamqp.frame.marshal(ContentBody(b"abc"), 1), -1, 0),
        corrupt(deliver(), 7 + 4, 200),  # a consumer tag running past the frame
        corrupt(header(content_type="json"), 7 + 14, 200),  # content type, likewise
        corrupt(header(), 7 + 12, 0xFF),  # every property flag, a continued word too
        corrupt(header(delivery_mode=2), 7 + 14, 3),  # a delivery mode pamqp would refuse
        # A cluster id, which pamqp's properties refuse to be built with.
        b"\x02\x00\x03\x00\x00\x00\x10\x00\x3c\x00\x00" + bytes(8) + b"\x00\x04\x01x\xce",
        b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x99\xce",  # an unknown method
        b"\x09\x00\x01\x00\x00\x00\x01\x00\xce",  # an unknown frame type
    ],
)
def test_malformed_frames_fail_or_decode_exactly_as_in_pamqp(wire: bytes) -> None:
    try:
        expected = pamqp.frame.unmarshal(wire)
    except Exception as e:  # noqa: BLE001 - whatever pamqp raises, the same must be raised
        with pytest.raises(type(e)):
            decode_frame(wire, 0)
    else:
        got = decode_frame(wire, 0)
        assert got is not None
        assert attributes(got[2]) == attributes(expected[2])


def test_trailing_bytes_after_a_delivery_are_left_to_pamqp() -> None:
    wire = deliver()
    padded = wire[:3] + (int.from_bytes(wire[3:7]) + 2).to_bytes(4) + wire[7:-1] + b"zz\xce"
    same_as_pamqp(padded)


def test_a_frame_not_yet_whole_is_none_and_frames_decode_in_place() -> None:
    stream = deliver() + header() + pamqp.frame.marshal(ContentBody(b"0123456789"), 3)
    for cut in range(len(stream)):
        first = decode_frame(stream[:cut], 0)
        assert first is None or first[0] == len(deliver())
    start = 0
    kinds = []
    while (got := decode_frame(stream, start)) is not None:
        start += got[0]
        kinds.append(type(got[2]))
    assert kinds == [commands.Basic.Deliver, ContentHeader, ContentBody]
    assert start == len(stream)


MESSAGE = (
    deliver(delivery_tag=41)
    + header(3, content_type="application/json", delivery_mode=2)
    + pamqp.frame.marshal(ContentBody(b"[1]"), 3)
)


async def receive(chunks: list[bytes], count: int) -> list[tuple[int, int, dict[str, Any]]]:
    """``count`` frames read from ``chunks`` arriving one by one; then the stream ends."""
    reader = asyncio.StreamReader()
    receiver = BufferedFrameReceiver(reader)

    async def feed() -> None:
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.create_task(feed())
    got = []
    for _ in range(count):
        weight, channel, frame = await receiver.get_frame()
        got.append((weight, channel, attributes(frame)))
    await feeding
    with pytest.raises(StopAsyncIteration):
        await receiver.get_frame()
    return got


async def test_the_receiver_yields_what_pamqp_decodes_however_the_bytes_are_split() -> None:
    stream = MESSAGE * 3 + pamqp.frame.marshal(heartbeat.Heartbeat(), 0)
    expected = []
    start = 0
    while start < len(stream):
        weight, channel, frame = pamqp.frame.unmarshal(stream[start:])
        expected.append((weight, channel, attributes(frame)))
        start += weight
    for size in [1, 2, 7, 8, 13, 100, len(stream)]:
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert await receive(chunks, len(expected)) == expected


async def test_a_connection_closed_inside_a_frame_is_a_connection_error() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(MESSAGE[:3])
    reader.feed_eof()
    with pytest.raises(AMQPConnectionError, match=r"unexpectedly closed\. Read 3 bytes"):
        await BufferedFrameReceiver(reader).get_frame()


async def test_a_stream_already_ended_stops_the_iteration() -> None:
    reader = asyncio.StreamReader()
    reader.feed_eof()
    assert [frame async for frame in BufferedFrameReceiver(reader)] == []


async def test_a_socket_error_is_a_connection_error() -> None:
    reader = asyncio.StreamReader()
    reader.set_exception(ConnectionResetError("reset by peer"))
    with pytest.raises(AMQPConnectionError, match="reset"):
        await BufferedFrameReceiver(reader).get_frame()


async def test_a_protocol_header_from_the_broker_is_refused() -> None:
    with pytest.raises(ProtocolSyntaxError):
        await receive([ProtocolHeader().marshal()], 1)


async def test_an_invalid_frame_is_an_invalid_frame_error() -> None:
    with pytest.raises(InvalidFrameError):
        await receive([corrupt(MESSAGE, len(deliver()) - 1, 0)], 1)


async def test_concurrent_readers_each_get_whole_frames() -> None:
    reader = asyncio.StreamReader()
    receiver = BufferedFrameReceiver(reader)
    readers = [asyncio.create_task(receiver.get_frame()) for _ in range(3)]
    for start in range(0, len(MESSAGE), 5):
        reader.feed_data(MESSAGE[start : start + 5])
        await asyncio.sleep(0)
    got = sorted(type(frame).__name__ for _, _, frame in await asyncio.gather(*readers))
    assert got == ["ContentBody", "ContentHeader", "Deliver"]


def test_install_replaces_aiormqs_reader_once_and_only_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiormq.connection, "FrameReceiver", frames._ORIGINAL)
    assert frames.install()
    assert aiormq.connection.FrameReceiver is BufferedFrameReceiver
    assert frames.install()

    class Foreign(frames._ORIGINAL):  # type: ignore[misc,valid-type]
        pass

    monkeypatch.setattr(aiormq.connection, "FrameReceiver", Foreign)
    assert not frames.install()
    assert aiormq.connection.FrameReceiver is Foreign
