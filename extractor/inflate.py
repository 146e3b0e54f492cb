"""A dump file read and decompressed a few blocks ahead, on a thread of its own.

The inflater is ISA-L's (python-isal's ``isal_zlib``: zlib's interface, gzip headers and
CRC checked the same way, a few times faster). It releases the GIL while it inflates,
but the reader's cutting and digesting (:mod:`extractor.cutting`, :mod:`extractor.delta`)
hold it between blocks, so the two overlap only in part: the thread waits for the GIL
after each block. A child process instead overlapped them, but its pipe cost as much
CPU as it saved, with the consumers on the other core (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import gzip
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from isal import isal_zlib

BLOCK = 1 << 20  # decompressed bytes read at a time
_COMPRESSED = 1 << 18  # compressed bytes read at a time
AHEAD = 4  # blocks decompressed and not yet taken, at most
# isal's stub declares its error as an instance; at run time it is the exception class.
INFLATE_ERROR = cast(type[Exception], isal_zlib.error)
BROKEN = (EOFError, INFLATE_ERROR, gzip.BadGzipFile, OSError)


@dataclass(frozen=True, slots=True)
class Block:
    """The next ``data`` of the file (empty: its end), the compressed bytes read so far,
    or the ``error`` the file broke with there."""

    data: bytes
    position: int
    error: Exception | None = None


def blocks(path: Path) -> Generator[Block, None, None]:
    """The decompressed blocks of ``path`` (gzip if its name ends in ``.gz``), in order,
    ending with an empty block or one with an ``error``."""
    ready: queue.Queue[Block] = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()
    thread = threading.Thread(
        target=_read, args=(path, ready, stop), name="dump-inflate", daemon=True
    )
    thread.start()
    try:
        while True:
            block = ready.get()
            yield block
            if block.error is not None or not block.data:
                return
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):  # frees the reader if it waits to put
            while True:
                ready.get_nowait()
        thread.join()


def _read(path: Path, ready: queue.Queue[Block], stop: threading.Event) -> None:
    """Runs on the inflating thread; after ``stop`` it puts at most one more block, into
    the queue the consumer emptied."""
    try:
        with path.open("rb") as raw:
            pieces = _gunzip(raw) if path.suffix == ".gz" else iter(lambda: raw.read(BLOCK), b"")
            try:
                for data in pieces:
                    ready.put(Block(data, raw.tell()))
                    if stop.is_set():
                        return
            except BROKEN as e:
                ready.put(Block(b"", raw.tell(), e))
                return
            ready.put(Block(b"", raw.tell()))
    except Exception as e:  # noqa: BLE001 - the file cannot be opened: the consumer raises it
        ready.put(Block(b"", 0, e))


def _gunzip(raw: IO[bytes]) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file (of one or more members), ``BLOCK`` at a time.

    A decompressor object, not :class:`gzip.GzipFile`: that reads 8 KiB at a time under
    the GIL, where large reads and large inflates leave the GIL to the cutting thread.
    """
    inflater = isal_zlib.decompressobj(wbits=31)  # a gzip header and trailer (CRC) checked
    pending, read_any = b"", False
    while True:
        if not pending:
            pending = raw.read(_COMPRESSED)
            if not pending:
                break
            read_any = True
        if inflater.eof:  # the next member of a multi-member file, or zero padding
            pending = pending.lstrip(b"\0")
            if not pending:
                continue
            inflater = isal_zlib.decompressobj(wbits=31)
        if out := inflater.decompress(pending, BLOCK):
            yield out
        pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
    if read_any and not inflater.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")
