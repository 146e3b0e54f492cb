"""Unit tests of bench.profile's pure parts: how py-spy samples are put in stages."""

from __future__ import annotations

from bench.profile import OTHER, STARTUP, leaves, parse_raw, render, stage_of

LOOP = "_run_once (asyncio/base_events.py:1922)"
RUN = "_run (asyncio/events.py:84)"


def test_innermost_stage_wins_over_its_callers() -> None:
    frames = [LOOP, RUN, "handle (common/consumer.py:80)", "write (tableinator/writer.py:98)"]
    assert stage_of(frames) == "write path (driver, writer, COPY rows)"
    frames = [LOOP, RUN, "receive (common/service.py:190)", "decode (common/messages.py:70)"]
    assert stage_of(frames) == "decode: parse, normalise, hash"


def test_asyncio_leaf_under_the_broker_client_is_the_broker_client() -> None:
    frames = [LOOP, RUN, "_reader (aiormq/connection.py:580)", "read (asyncio/streams.py:700)"]
    assert stage_of(frames) == "broker client (aiormq, aio-pika, pamqp)"


def test_our_inbound_consumer_is_the_broker_client() -> None:
    frames = [LOOP, RUN, "_deliver_now (common/inbound.py:140)", "__init__ (common/inbound.py:44)"]
    assert stage_of(frames) == "broker client (aiormq, aio-pika, pamqp)"
    frames = [LOOP, RUN, "_deliver_now (common/inbound.py:140)", "receive (common/service.py:178)"]
    assert stage_of(frames) == "batching, settling, acks (common/)"


def test_a_sample_during_an_import_is_start_up() -> None:
    frames = [
        "<module> (tableinator/main.py:1)",
        "_call_with_frames_removed (<frozen importlib._bootstrap>:241)",
        "<module> (tableinator/sql.py:20)",
    ]
    assert stage_of(frames) == STARTUP


def test_only_the_loop_left_is_the_event_loop() -> None:
    assert stage_of([LOOP, "select (selectors.py:468)"]) == "event loop (asyncio)"
    assert stage_of(["<module> (somewhere/else.py:1)"]) == OTHER


def test_the_loop_under_the_entry_point_is_the_event_loop_not_the_runtime() -> None:
    entry = ["main (tableinator/main.py:70)", "run_main (common/service.py:300)", "run (x:1)"]
    assert stage_of([*entry, LOOP, "_run (asyncio/events.py:80)"]) == "event loop (asyncio)"
    under = [*entry, LOOP, RUN, "_handle_next (common/service.py:213)"]
    assert stage_of(under) == "batching, settling, acks (common/)"


def test_hashing_the_canonical_json_is_decoding() -> None:
    frames = [LOOP, RUN, "normalise (common/normalise.py:117)"]
    assert stage_of([*frames, "canonical_json (common/records.py:55)"]).startswith("decode:")


def test_parse_raw_splits_consumer_and_workers() -> None:
    lines = [
        f'process 10:"tableinator";{LOOP};{RUN};write (tableinator/writer.py:98) 7',
        'process 11:"python -c from multiprocessing.spawn import spawn_main";'
        "_process_worker (concurrent/futures/process.py:256);"
        "decode_projected (common/decoding.py:60);decode (common/messages.py:70) 5",
        f"{LOOP};_reader (aiormq/connection.py:580) 3",
        "garbage line without a count",
    ]
    out = parse_raw(lines)
    assert out["consumer"] == {
        "write path (driver, writer, COPY rows)": 7,
        "broker client (aiormq, aio-pika, pamqp)": 3,
    }
    assert out["decode workers"] == {"decode: parse, normalise, hash": 5}
    assert leaves(lines, top=1) == [("write (tableinator/writer.py:98)", 7)]


def test_render_gives_shares_and_cpu_per_record() -> None:
    text = render(
        {
            "case": "tableinator-artists-single",
            "records": 1000,
            "rate": 500.0,
            "seconds": 2.0,
            "sample_rate_hz": 100,
            "cpu_s": {"consumer": 1.0, "decode workers": 0.0, "PostgreSQL": 0.5},
            "samples": {"consumer": {"logging": 1, OTHER: 3}, "decode workers": {}},
            "top_leaves": [("f (a.py:1)", 4)],
        }
    )
    assert "| consumer | 1.00 | 0.50 | 1000 |" in text
    assert "decode workers | 0.00" not in text  # processes that did nothing are left out
    assert "| logging | 25% | 0% |" in text
    assert "| other | 75% | 0% |" in text
