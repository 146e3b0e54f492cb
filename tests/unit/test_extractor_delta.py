"""Choosing a delta's records: exactly the changed and added go to the parser, the removed
are the deletions, and a bad record among them is reported where it is in the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bench.dumpdelta import Changes, derive
from common.records import DataType
from extractor.cutting import cut
from extractor.delta import Selection, open_selection, select_chunks
from extractor.manifest import DIGEST, ManifestReader, ManifestWriter, manifest_path, read_info
from extractor.xmlparse import DumpError, DumpFile, iter_records, parse_chunk

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
A, B = "20200806", "20200906"


def sample(data_type: DataType) -> DumpFile:
    return DumpFile.from_path(SAMPLES / f"discogs_{A}_{data_type.value}.xml.gz")


def run(dump: DumpFile, selection: Selection, chunk: int = 64) -> list[str]:
    """The ids of the records the selection sends, parsed by the workers' code."""
    chunks = select_chunks(
        cut(dump, max_records=chunk, max_bytes=1 << 20), selection, max_records=chunk,
        max_bytes=1 << 20,
    )  # fmt: skip
    return [r.id for c in chunks for r in parse_chunk(dump, c)]


def publish_manifest(state: Path, dump: DumpFile) -> None:
    selection = Selection(dump.data_type, ManifestWriter(state, dump.data_type, dump.version))
    assert len(run(dump, selection)) == 1000  # a full publish sends every record
    selection.new.commit()


@pytest.fixture(scope="module")
def version_b(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[DataType, Changes]]:
    dest = tmp_path_factory.mktemp("b")
    return dest, derive(SAMPLES, dest, B)


@pytest.mark.parametrize("data_type", list(DataType))
def test_only_the_changed_and_added_are_sent_and_the_removed_deleted(
    tmp_path: Path, version_b: tuple[Path, dict[DataType, Changes]], data_type: DataType
) -> None:
    folder, changes = version_b
    expected = changes[data_type]
    assert (len(expected.changed), len(expected.added), len(expected.removed)) == (10, 5, 5)
    publish_manifest(tmp_path, sample(data_type))
    dump = DumpFile.from_path(folder / f"discogs_{B}_{data_type.value}.xml.gz")
    selection = open_selection(tmp_path, dump, full=False)
    assert selection is not None
    assert selection.base_version == A

    sent = run(dump, selection)
    deleted = [i for batch in selection.deleted(3) for i in batch]

    assert sorted(sent, key=int) == sorted(expected.changed + expected.added, key=int)
    assert deleted == expected.removed
    assert selection.counts.as_dict() == {
        "added": 5, "changed": 10, "unchanged": 1000 - 10 - 5, "deleted": 5,
    }  # fmt: skip
    selection.close(keep=True)
    selection.new.commit()
    info = read_info(manifest_path(tmp_path, data_type))
    assert info is not None
    assert (info.version, info.count) == (B, 1000)


def test_full_when_asked_or_the_manifest_is_not_older(tmp_path: Path) -> None:
    dump = sample(DataType.LABELS)
    assert open_selection(None, dump, full=False) is None  # no state folder: as before
    first = open_selection(tmp_path, dump, full=False)
    assert first is not None
    assert first.old is None  # no manifest yet
    first.close(keep=False)
    publish_manifest(tmp_path, dump)
    for full in (True, False):  # --full; the same version again
        again = open_selection(tmp_path, dump, full=full)
        assert again is not None
        assert again.base_version is None
        again.close(keep=False)
    assert [p.name for p in tmp_path.iterdir()] == ["labels.manifest"]


def test_full_when_the_manifest_holds_other_digests(tmp_path: Path) -> None:
    dump = sample(DataType.LABELS)
    publish_manifest(tmp_path, dump)
    path = manifest_path(tmp_path, DataType.LABELS)
    # a manifest of the digests an earlier release of the extractor kept
    path.write_bytes(path.read_bytes().replace(f'"{DIGEST}"'.encode(), b'"sha256-128"', 1))
    later = DumpFile(dump.path, dump.data_type, B)
    selection = open_selection(tmp_path, later, full=False)
    assert selection is not None
    assert selection.base_version is None
    selection.close(keep=False)


def test_a_bad_record_among_the_sent_is_reported_where_it_is(tmp_path: Path) -> None:
    dump = sample(DataType.RELEASES)
    publish_manifest(tmp_path, dump)
    text = gzip.decompress(dump.path.read_bytes())
    at = text.index(b'<release id="', len(text) // 2)
    broken_path = tmp_path / f"discogs_{B}_releases.xml.gz"
    broken_path.write_bytes(
        gzip.compress(text[:at] + text[at:].replace(b"<title>", b"<title><b>", 1))
    )
    broken = DumpFile.from_path(broken_path)
    with pytest.raises(DumpError) as whole:
        list(iter_records(broken))
    selection = open_selection(tmp_path, broken, full=False)
    assert selection is not None
    assert selection.old is not None
    with pytest.raises(DumpError) as delta:
        run(broken, selection, chunk=1000)
    assert str(delta.value) == str(whole.value)  # the same line, column and record number
    selection.close(keep=False)


def test_a_manifest_lookup_survives_a_dump_out_of_id_order(tmp_path: Path) -> None:
    dump = sample(DataType.ARTISTS)
    publish_manifest(tmp_path, dump)
    text = gzip.decompress(dump.path.read_bytes())
    head, _, body = text.partition(b"\n")
    records = body.split(b"\n</artists>")[0].split(b"\n")
    swapped = records[500:] + records[:500]  # ids jump back mid-file
    shuffled_path = tmp_path / f"discogs_{B}_artists.xml.gz"
    shuffled_path.write_bytes(gzip.compress(head + b"\n" + b"\n".join(swapped) + b"\n</artists>\n"))
    selection = open_selection(tmp_path, DumpFile.from_path(shuffled_path), full=False)
    assert selection is not None
    assert run(DumpFile.from_path(shuffled_path), selection) == []
    assert list(selection.deleted(10)) == []
    assert selection.counts.unchanged == 1000
    selection.close(keep=True)
    selection.new.commit()
    reader = ManifestReader(manifest_path(tmp_path, DataType.ARTISTS))
    assert reader.info.count == 1000
    reader.close()
