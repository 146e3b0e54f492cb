"""``extractor download``: fetch one monthly dump, resumable, verified against its checksums.

Each file downloads into ``<name>.part``; a rerun continues a ``.part`` with an HTTP Range
request from where it stopped. The sha256 is computed as the bytes arrive (the existing
part is hashed first), and only a file that matches the published checksum is renamed to
its final name. A mismatch removes the ``.part`` (resuming a corrupt file cannot repair
it) and is an error. A file already present with the right checksum is skipped.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from common.records import DataType
from extractor.dumpindex import (
    DEFAULT_BASE_URL,
    find_version,
    folder_url,
    parse_checksums,
)
from extractor.fetch import DEFAULT_TIMEOUT, DownloadError, fetch_text, open_url
from extractor.progress import reporter

log = structlog.get_logger("extractor")

_BLOCK = 1 << 20
HTTP_PARTIAL = 206


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    dest: Path
    month: str | None = None
    base_url: str = DEFAULT_BASE_URL
    types: Sequence[DataType] = tuple(DataType)
    timeout: float = DEFAULT_TIMEOUT


def download_dump(options: DownloadOptions, progress_stream: IO[str] | None = None) -> list[Path]:
    """Download the chosen types of one dump into ``options.dest``; return their paths."""
    version = find_version(options.base_url, options.month, timeout=options.timeout)
    folder = folder_url(options.base_url, version[:4])
    checksum_name = f"discogs_{version}_CHECKSUM.txt"
    checksum_text = fetch_text(folder + checksum_name, timeout=options.timeout)
    checksums = parse_checksums(checksum_text)
    options.dest.mkdir(parents=True, exist_ok=True)
    (options.dest / checksum_name).write_text(checksum_text, encoding="utf-8")
    log.info("downloading", version=version, folder=folder, dest=str(options.dest))
    paths = []
    for data_type in options.types:
        name = f"discogs_{version}_{data_type.value}.xml.gz"
        expected = checksums.get(name)
        if expected is None:
            raise DownloadError(f"{checksum_name} lists no checksum for {name}")
        target = options.dest / name
        fetch_verified(folder + name, target, expected, options.timeout, progress_stream)
        paths.append(target)
    return paths


def fetch_verified(
    url: str,
    target: Path,
    expected_sha256: str,
    timeout: float = DEFAULT_TIMEOUT,
    progress_stream: IO[str] | None = None,
) -> None:
    """Download ``url`` to ``target`` through ``target.part``, resuming and verifying."""
    if _already_there(target, expected_sha256):
        return
    part = target.with_name(target.name + ".part")
    hasher = _sha256_of(part) if part.exists() else hashlib.sha256()
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = open_url(url, start=offset, timeout=timeout)
    except urllib.error.HTTPError as e:  # 416: the part already holds the whole file
        e.close()
        log.info("partial file already complete", file=part.name, size=offset)
    else:
        with response:
            if offset and response.status != HTTP_PARTIAL:
                log.info("server ignored the range request; starting over", file=target.name)
                hasher, offset = hashlib.sha256(), 0
            _receive(
                url, response, part, offset=offset, hasher=hasher, progress_stream=progress_stream
            )
    got = hasher.hexdigest()
    if got != expected_sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{target.name}: sha256 mismatch (expected {expected_sha256}, got {got}); "
            "the download was removed, run again to fetch it afresh"
        )
    part.replace(target)
    log.info("downloaded", file=target.name, sha256=got)


def _already_there(target: Path, expected_sha256: str) -> bool:
    """True if ``target`` holds the verified file; a corrupt one is removed."""
    if not target.exists():
        return False
    if _sha256_of(target).hexdigest() == expected_sha256:
        log.info("already downloaded", file=target.name)
        return True
    log.warning("existing file does not match its checksum; downloading again", file=target.name)
    target.unlink()
    return False


def _receive(
    url: str,
    response: http.client.HTTPResponse,
    part: Path,
    *,
    offset: int,
    hasher: hashlib._Hash,
    progress_stream: IO[str] | None,
) -> None:
    length = response.length
    total = offset + length if length is not None else 0
    report = reporter(part.name, "bytes", every=0, stream=progress_stream)
    done = offset
    with part.open("ab" if offset else "wb") as out:
        try:
            while block := response.read(_BLOCK):
                out.write(block)
                hasher.update(block)
                done += len(block)
                report.update(done, done / total if total else 0.0)
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(
                f"{url}: download interrupted after {done} bytes ({e}); run again to resume"
            ) from e
    if total and done != total:
        raise DownloadError(
            f"{url}: connection closed after {done} of {total} bytes; run again to resume"
        )
    report.finish(done)


def _sha256_of(path: Path) -> hashlib._Hash:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            hasher.update(block)
    return hasher
