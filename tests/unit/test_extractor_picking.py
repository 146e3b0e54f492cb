"""The workers' part of a delta: each record against the old manifest, whether the chunk's
ids come in order, out of it, or far apart; records without an id are sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.records import DataType
from extractor import picking
from extractor.cutting import RawChunk
from extractor.manifest import ENTRY, ManifestReader, ManifestWriter, digest, manifest_path
from extractor.picking import OldManifest, PickJob, pick


def label(ident: int | None, name: str = "x") -> bytes:
    own = b"" if ident is None else b"<id>%d</id>" % ident
    return b"<label>" + own + b"<name>" + name.encode() + b"</name></label>"


def chunk(records: list[bytes], first: int = 1) -> RawChunk:
    blob, spans = b"", []
    for record in records:
        spans.append((len(blob), len(blob) + len(record)))
        blob += record + b"\n"
    return RawChunk(blob, spans, first, line=10, column=3)


def old_manifest(tmp_path: Path, ids: list[int]) -> OldManifest:
    writer = ManifestWriter(tmp_path, DataType.LABELS, "20200806")
    for ident in ids:
        writer.add(ident, digest(label(ident)))
    writer.commit()
    reader = ManifestReader(manifest_path(tmp_path, DataType.LABELS))
    info = reader.info
    reader.close()
    return OldManifest(reader.path, info.offset, info.count, str(tmp_path))


@pytest.mark.parametrize("spread", [False, True])
@pytest.mark.parametrize("ordered", [True, False])
def test_added_changed_unchanged_and_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ordered: bool, spread: bool
) -> None:
    if spread:  # the entries of the range are looked up one by one
        monkeypatch.setattr(picking, "_SPREAD", 0)
    old = old_manifest(tmp_path, list(range(2, 2001, 2)))  # 1000 entries: 2, 4, ..., 2000
    ids = [100, 102, 103, 104, 1998, 2002]
    records = [label(i, "changed" if i == 104 else "x") for i in ids]
    if not ordered:
        records.reverse()
        ids.reverse()
    got = pick(PickJob(DataType.LABELS, chunk(records), old))
    assert (got.added, got.changed, got.unchanged) == (2, 1, 3)
    assert sorted(got.found) == [49, 50, 51, 998]  # indexes of ids 100, 102, 104, 1998
    sent = {ids[i] for i in got.picked}
    assert sent == {103, 104, 2002}
    assert got.ordered is ordered
    entries = [ENTRY.unpack_from(got.entries, k) for k in range(0, len(got.entries), ENTRY.size)]
    assert [e[0] for e in entries] == ids


def test_a_record_without_an_id_is_sent_where_it_is(tmp_path: Path) -> None:
    old = old_manifest(tmp_path, [1, 2, 3])
    got = pick(PickJob(DataType.LABELS, chunk([label(1), label(None), label(4)], first=7), old))
    assert got.picked == [1, 2]
    assert got.origins == [(8, 11, 1), (9, 12, 1)]  # one record a line from line 10
    assert len(got.entries) == 2 * ENTRY.size  # the nameless one has no entry


def test_without_an_old_manifest_only_the_entries(tmp_path: Path) -> None:
    got = pick(PickJob(DataType.LABELS, chunk([label(5), label(3)]), None))
    assert (got.picked, got.found, got.ordered) == ([], [], False)
    assert (got.first_id, got.last_id) == (5, 3)
    assert got.entries == ENTRY.pack(5, digest(label(5))) + ENTRY.pack(3, digest(label(3)))
