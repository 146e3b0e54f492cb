"""The dump files of one run: which ones (:func:`collect_dumps`) and their reading in turn.

The files are published one after the other, but each next one is opened (its reader
cutting records and handing them to the workers) as soon as the one before has been cut
to its end (:class:`FilesAhead`): the workers go on with it while the last chunks of the
one before are encoded, published and confirmed and its ``file_complete`` is sent,
instead of idling at every change of file. At most two files are being read at once,
each with its bounded reader, so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.lifecycle import AsyncResource
from common.records import DataType
from extractor.delta import Selection
from extractor.dumpfile import DumpError, DumpFile
from extractor.source import ChunkReader

TYPE_ORDER = (DataType.LABELS, DataType.ARTISTS, DataType.MASTERS, DataType.RELEASES)


class UsageError(ValueError):
    """The paths given cannot make one run (missing, no dumps, mixed versions)."""


def collect_dumps(paths: Sequence[Path]) -> list[DumpFile]:
    """Files as given; a folder's ``discogs_*`` dumps in the order labels..releases."""
    dumps: list[DumpFile] = []
    for path in paths:
        if path.is_dir():
            found = _dumps_in(path)
            if not found:
                raise UsageError(f"{path}: no discogs_YYYYMMDD_<type>.xml[.gz] files in it")
            dumps.extend(found)
        elif path.is_file():
            try:
                dumps.append(DumpFile.from_path(path))
            except DumpError as e:
                raise UsageError(str(e)) from e
        else:
            raise UsageError(f"{path}: no such file or folder")
    _check_one_run(dumps)
    return dumps


def _dumps_in(folder: Path) -> list[DumpFile]:
    found = []
    for path in sorted(folder.iterdir()):
        try:
            found.append(DumpFile.from_path(path))
        except DumpError:
            continue  # checksum files, partial downloads, anything else
    return sorted(found, key=lambda d: TYPE_ORDER.index(d.data_type))


def _check_one_run(dumps: list[DumpFile]) -> None:
    versions = sorted({d.version for d in dumps})
    if len(versions) > 1:
        raise UsageError(f"files of several dump versions given ({', '.join(versions)}): one a run")
    seen: set[DataType] = set()
    for dump in dumps:
        if dump.data_type in seen:
            raise UsageError(f"{dump.path}: a second {dump.data_type} file in one run")
        seen.add(dump.data_type)


@dataclass(slots=True)
class OpenFile:
    """A file being read: its reader and, with a state folder, its delta selection."""

    dump: DumpFile
    reader: ChunkReader
    selection: Selection | None = None
    closed: bool = False

    @property
    def base_version(self) -> str | None:
        return None if self.selection is None else self.selection.base_version

    async def close(self, *, keep: bool) -> None:
        """Close the reader; the new manifest waits for its commit if ``keep``."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.reader.close()
        finally:
            if self.selection is not None:
                self.selection.close(keep=keep)


class FilesAhead(AsyncResource):
    """The files of a run in turn, each opened by ``opener`` (its reader started) once
    the one taken before it has been cut to its end."""

    def __init__(self, dumps: Sequence[DumpFile], opener: Callable[[DumpFile], OpenFile]) -> None:
        self._todo = deque(dumps)
        self._opener = opener
        self._open: list[OpenFile] = []
        self._current: OpenFile | None = None
        self._ahead: OpenFile | None = None
        # Opening the next file failed: raised when it is taken, as it was without ahead.
        self._failed: Exception | None = None

    def take(self) -> OpenFile | None:
        """The next file (opened now if it is not yet); None after the last."""
        if self._failed is not None:
            raise self._failed
        file = self._ahead if self._ahead is not None else self._open_next()
        self._current, self._ahead = file, None
        return file

    def poke(self) -> None:
        """Open the next file if the current one has been cut to its end."""
        current = self._current
        if self._ahead is None and self._failed is None and current and current.reader.cut_all:
            try:
                self._ahead = self._open_next()
            except Exception as e:  # noqa: BLE001 - any error: the same, raised by take()
                self._failed = e

    async def close(self) -> None:
        """Close every file not closed yet (a run that stops early), its manifest dropped."""
        files, self._open = self._open, []
        self._todo.clear()
        await _close_all(files)

    def _open_next(self) -> OpenFile | None:
        if not self._todo:
            return None
        file = self._opener(self._todo.popleft())
        self._open = [f for f in self._open if not f.closed]
        self._open.append(file)
        file.reader.start()
        return file


async def _close_all(files: list[OpenFile]) -> None:
    """Close each one, even when closing one before it fails."""
    if not files:
        return
    try:
        await files[0].close(keep=False)
    finally:
        await _close_all(files[1:])
