"""The full-dump generator: real proportions, and every id of a copy shifted alike."""

from __future__ import annotations

from pathlib import Path

from bench import dumpgen
from common.records import DataType
from extractor.xmlparse import DumpFile, iter_records


def test_counts_keep_the_real_dumps_proportions() -> None:
    counts = dumpgen.counts(1)
    assert counts == {
        DataType.ARTISTS: 102_000,
        DataType.LABELS: 24_000,
        DataType.MASTERS: 26_000,
        DataType.RELEASES: 193_000,
    }


def test_a_copy_shifts_its_own_id_and_every_reference() -> None:
    release = (
        b'<release id="7" status="Accepted"><artists><artist><id>3</id><name>A</name>'
        b'</artist></artists><labels><label name="L" catno="C1" id="5"/></labels>'
        b'<master_id is_main_release="true">11</master_id><companies><company><id>9</id>'
        b"</company></companies><title>T 42</title></release>"
    )
    copy = dumpgen.Template(release).copy(2 * dumpgen.STRIDE)
    assert copy == (
        b'<release id="200000007" status="Accepted"><artists><artist><id>200000003</id>'
        b'<name>A</name></artist></artists><labels><label name="L" catno="C1" id="200000005"/>'
        b'</labels><master_id is_main_release="true">200000011</master_id><companies><company>'
        b"<id>200000009</id></company></companies><title>T 42</title></release>"
    )
    master = b'<master id="4"><main_release>8</main_release></master>'
    assert dumpgen.Template(master).copy(dumpgen.STRIDE) == (
        b'<master id="100000004"><main_release>100000008</main_release></master>'
    )


def test_written_dump_reads_back_with_unique_ids_in_order(tmp_path: Path) -> None:
    paths = dumpgen.write(tmp_path, 0.02)  # 2,040 artists: the samples copied twice and more
    for data_type, n in dumpgen.counts(0.02).items():
        records = list(iter_records(DumpFile.from_path(paths[data_type])))
        ids = [int(r.id) for r in records]
        assert len(records) == n
        assert ids == sorted(set(ids))
    artists = list(iter_records(DumpFile.from_path(paths[DataType.ARTISTS])))
    first, again = artists[0], artists[1000]
    assert int(again.id) == int(first.id) + dumpgen.STRIDE
    assert again.data["name"] == first.data["name"]
