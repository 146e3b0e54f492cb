"""The cost of the manifest on its own: lookups, and picking a record (its id, digest,
new entry and lookup), in microseconds; and manifests written without publishing."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from bench import dumpgen
from common.records import DataType
from extractor.cutting import cut
from extractor.delta import Selection, select_chunks
from extractor.dumpfile import DumpFile
from extractor.manifest import ManifestReader, ManifestWriter, digest, manifest_path


def write_manifests(folder: Path, state: Path) -> None:
    """The manifest of every ``discogs_*`` dump in ``folder``, as a full publish with
    ``state`` would leave them, without publishing."""
    state.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.glob("discogs_*.xml.gz")):
        dump = DumpFile.from_path(path)
        selection = Selection(dump.data_type, ManifestWriter(state, dump.data_type, dump.version))
        chunks = cut(dump, max_records=500, max_bytes=8 << 20)
        for _ in select_chunks(chunks, selection, max_records=500, max_bytes=8 << 20):
            pass
        selection.new.commit()


def lookup_cost(n: int = 1_000_000) -> dict[str, float]:
    """Microseconds per manifest lookup of ``n`` ids, in id order (the dumps' order: a merge
    with the file) and at random (a binary search in it); and per release picked (its id
    read off the bytes, its digest, the new manifest's entry and the lookup)."""
    with tempfile.TemporaryDirectory(prefix="delta-lookup-") as scratch:
        folder = Path(scratch)
        writer = ManifestWriter(folder, DataType.RELEASES, "20260101")
        for ident in range(1, n + 1):
            writer.add(ident * 2, digest(b"%d" % ident))
        writer.commit()
        out = {}
        for name, ids in (
            ("in_order_us", range(1, 2 * n + 1, 2 * n // 200_000)),
            ("random_us", random.Random(1).sample(range(1, 2 * n + 1), 20_000)),
        ):
            reader = ManifestReader(manifest_path(folder, DataType.RELEASES))
            started = time.perf_counter()
            for ident in ids:
                reader.find(ident)
            out[name] = round((time.perf_counter() - started) / len(ids) * 1e6, 2)
            reader.close()
        out["pick_per_release_us"] = _pick_cost(folder)
    return out


def _pick_cost(folder: Path, passes: int = 20) -> float:
    """The sample's releases picked against their own manifest (all unchanged), ``passes``
    times, each a new read in file order."""
    dump = DumpFile.from_path(dumpgen.SAMPLES / "discogs_20200806_releases.xml.gz")
    chunks = list(cut(dump, max_records=1000, max_bytes=1 << 30))
    first = Selection(DataType.RELEASES, ManifestWriter(folder, DataType.RELEASES, "20200806"))
    for chunk in chunks:
        first.pick(chunk)
    first.new.commit()
    seconds = 0.0
    for _ in range(passes):
        old = ManifestReader(manifest_path(folder, DataType.RELEASES))
        writer = ManifestWriter(folder, DataType.RELEASES, "20200906")
        selection = Selection(DataType.RELEASES, writer, old)
        started = time.perf_counter()
        for chunk in chunks:
            selection.pick(chunk)
        seconds += time.perf_counter() - started
        old.close()
        writer.discard()
    return round(seconds / (passes * sum(len(c.spans) for c in chunks)) * 1e6, 2)
