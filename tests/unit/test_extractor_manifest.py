"""The manifest: written atomically, left as it was by a publish that does not commit, and
looked up in id order or out of it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from common.records import NORMALISER_VERSION, DataType
from extractor.manifest import (
    ENTRY,
    ManifestError,
    ManifestReader,
    ManifestWriter,
    digest,
    manifest_path,
    read_info,
)
from extractor.state import StateBusy, state_folder


def write(state: Path, version: str, entries: list[tuple[int, bytes]]) -> None:
    writer = ManifestWriter(state, DataType.RELEASES, version)
    for ident, value in entries:
        writer.add(ident, value)
    writer.commit()


def entries_of(n: int, salt: bytes = b"") -> list[tuple[int, bytes]]:
    return [(i * 3, digest(b"%d" % i + salt)) for i in range(1, n + 1)]


def test_a_committed_manifest_holds_its_header_and_entries(tmp_path: Path) -> None:
    write(tmp_path, "20260101", entries_of(1000))
    info = read_info(manifest_path(tmp_path, DataType.RELEASES))
    assert info is not None
    assert (info.data_type, info.version, info.normaliser, info.count) == (
        DataType.RELEASES,
        "20260101",
        NORMALISER_VERSION,
        1000,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["releases.manifest"]  # no temp file left


def test_an_uncommitted_manifest_leaves_the_previous_one(tmp_path: Path) -> None:
    write(tmp_path, "20260101", entries_of(10))
    path = manifest_path(tmp_path, DataType.RELEASES)
    before = path.read_bytes()
    writer = ManifestWriter(tmp_path, DataType.RELEASES, "20260201")
    writer.add(1, digest(b"x"))
    writer.discard()  # what a publish that breaks does
    writer.discard()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["releases.manifest"]


def test_what_a_killed_publish_left_is_removed_at_the_next_start(tmp_path: Path) -> None:
    write(tmp_path, "20260101", entries_of(10))
    (tmp_path / ".releases.manifest.k2j4.tmp").write_bytes(b"half")  # the process died
    (tmp_path / ".releases.manifest.k2j4.final").write_bytes(b"half")
    with state_folder(tmp_path):
        assert sorted(p.name for p in tmp_path.iterdir()) == ["lock", "releases.manifest"]
    info = read_info(manifest_path(tmp_path, DataType.RELEASES))
    assert info is not None
    assert info.version == "20260101"


def test_lookups_in_order_and_out_of_it_and_the_ids_never_found(tmp_path: Path) -> None:
    entries = entries_of(20_000)  # more than one block of the reader
    write(tmp_path, "20260101", entries)
    reader = ManifestReader(manifest_path(tmp_path, DataType.RELEASES))
    stored = dict(entries)
    asked = [i for i, _ in entries if i % 7] + [2, 4, 5]  # 2, 4, 5: absent ids
    mixed = asked[:5000] + random.Random(1).sample(asked[5000:], len(asked) - 5000)
    for ident in mixed:
        assert reader.find(ident) == stored.get(ident)
    assert list(reader.unseen()) == [i for i, _ in entries if i % 7 == 0]
    reader.close()


def test_a_dump_out_of_id_order_is_sorted_and_a_repeated_id_keeps_the_last(
    tmp_path: Path,
) -> None:
    entries = entries_of(3000)
    shuffled = [*random.Random(2).sample(entries, len(entries)), (9, digest(b"again"))]
    write(tmp_path, "20260101", shuffled)
    path = manifest_path(tmp_path, DataType.RELEASES)
    info = read_info(path)
    assert info is not None
    assert info.count == 3000
    data = path.read_bytes()[info.offset :]
    ids = [ENTRY.unpack_from(data, k * ENTRY.size)[0] for k in range(info.count)]
    assert ids == sorted(ids)
    reader = ManifestReader(path)
    assert reader.find(9) == digest(b"again")
    reader.close()


def test_a_file_that_is_not_a_manifest_is_an_error(tmp_path: Path) -> None:
    path = manifest_path(tmp_path, DataType.RELEASES)
    path.write_bytes(b"something else")
    with pytest.raises(ManifestError, match="not a manifest"):
        read_info(path)
    write(tmp_path, "20260101", entries_of(3))
    path.write_bytes(path.read_bytes()[:-1])  # cut short
    with pytest.raises(ManifestError, match="cut short"):
        read_info(path)
    assert read_info(tmp_path / "none.manifest") is None


def test_one_run_at_a_time_holds_a_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "new"
    with state_folder(state):
        assert state.is_dir()
        with pytest.raises(StateBusy, match="another extractor is publishing"), state_folder(state):
            pass
    with state_folder(state):  # released
        pass
    with state_folder(None):  # no state folder: nothing to hold
        pass
