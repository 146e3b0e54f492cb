"""``extractor download`` against a local HTTP server (Range support written here)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import structlog

from common.records import DataType
from extractor.download import DownloadOptions, download_dump, fetch_verified
from extractor.dumpindex import listing_url, parse_checksums, versions_listed
from extractor.fetch import DownloadError
from extractor.main import main

VERSION = "20200806"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """``main()`` configures structlog globally; put the defaults back for other tests."""
    yield
    structlog.reset_defaults()


@dataclass
class Served:
    root: Path
    base_url: str
    ranges: list[str | None] = field(default_factory=list)
    honour_range: bool = True

    def url(self, name: str) -> str:
        return f"{self.base_url}data/2020/{name}"


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``served.root`` with Range support, and S3-style ``list-type=2`` listings."""

    served: Served

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/" and "list-type=2" in parts.query:
            self._listing(parse_qs(parts.query)["prefix"][0])
            return
        path = self.served.root / parts.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        if path.name.endswith(".xml.gz"):
            self.served.ranges.append(self.headers.get("Range"))
        self._file(path.read_bytes(), self.headers.get("Range"))

    def _listing(self, prefix: str) -> None:
        root = self.served.root
        keys = sorted(
            key
            for p in root.rglob("*")
            if p.is_file() and (key := str(p.relative_to(root))).startswith(prefix)
        )
        body = "".join(f"<Contents><Key>{k}</Key></Contents>" for k in keys)
        self._send(200, f"<ListBucketResult>{body}</ListBucketResult>".encode(), {})

    def _file(self, data: bytes, range_header: str | None) -> None:
        if range_header is None or not self.served.honour_range:
            self._send(200, data, {})
            return
        start = int(range_header.removeprefix("bytes=").split("-")[0])
        if start >= len(data):
            self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            return
        headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        self._send(206, data[start:], headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def make_handler(served: Served) -> type[RangeHandler]:
    return type("BoundRangeHandler", (RangeHandler,), {"served": served})


def put_dump(root: Path, version: str) -> None:
    """A dump's four files and its checksum file under ``data/YYYY/``, as Discogs lays them out."""
    folder = root / "data" / version[:4]
    folder.mkdir(parents=True, exist_ok=True)
    sums = []
    for t in DataType:
        data = f"<{t.value}>{t.value * 50000}</{t.value}>".encode()
        name = f"discogs_{version}_{t.value}.xml.gz"
        (folder / name).write_bytes(data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    (folder / f"discogs_{version}_CHECKSUM.txt").write_text("".join(sums))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "bucket"
    put_dump(root, VERSION)
    (root / "data" / "2020" / "discogs_20200701_artists.xml.gz").write_bytes(b"older month")
    served = Served(root, "")
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(served))
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def options(served: Served, dest: Path, **kw: object) -> DownloadOptions:
    return DownloadOptions(dest=dest, base_url=served.base_url + "data/{year}/", **kw)  # type: ignore[arg-type]


def test_full_download_of_a_month(served: Served, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    paths = download_dump(options(served, dest, month="2020-08"))
    assert [p.name for p in paths] == [f"discogs_{VERSION}_{t.value}.xml.gz" for t in DataType]
    for path in paths:
        assert path.read_bytes() == (served.root / "data" / "2020" / path.name).read_bytes()
    assert not list(dest.glob("*.part"))
    assert (dest / f"discogs_{VERSION}_CHECKSUM.txt").is_file()
    assert served.ranges == [None] * 4


def test_newest_dump_when_no_month_given(served: Served, tmp_path: Path) -> None:
    last_year = datetime.now(UTC).year - 1
    put_dump(served.root, f"{last_year}0105")
    put_dump(served.root, f"{last_year}1203")
    paths = download_dump(options(served, tmp_path, types=[DataType.LABELS]))
    assert [p.name for p in paths] == [f"discogs_{last_year}1203_labels.xml.gz"]


def test_resume_continues_a_partial_file(served: Served, tmp_path: Path) -> None:
    name = f"discogs_{VERSION}_labels.xml.gz"
    data = (served.root / "data" / "2020" / name).read_bytes()
    (tmp_path / f"{name}.part").write_bytes(data[:1000])
    download_dump(options(served, tmp_path, month="2020-08", types=[DataType.LABELS]))
    assert (tmp_path / name).read_bytes() == data
    assert served.ranges == ["bytes=1000-"]
    assert not (tmp_path / f"{name}.part").exists()


def test_a_complete_part_is_verified_without_refetching(served: Served, tmp_path: Path) -> None:
    name = f"discogs_{VERSION}_masters.xml.gz"
    data = (served.root / "data" / "2020" / name).read_bytes()
    (tmp_path / f"{name}.part").write_bytes(data)
    download_dump(options(served, tmp_path, month="2020-08", types=[DataType.MASTERS]))
    assert (tmp_path / name).read_bytes() == data
    assert served.ranges == [f"bytes={len(data)}-"]
    # A second run finds the verified file and fetches nothing.
    download_dump(options(served, tmp_path, month="2020-08", types=[DataType.MASTERS]))
    assert len(served.ranges) == 1


def test_server_ignoring_range_restarts_from_zero(served: Served, tmp_path: Path) -> None:
    served.honour_range = False
    name = f"discogs_{VERSION}_artists.xml.gz"
    (tmp_path / f"{name}.part").write_bytes(b"stale bytes")
    download_dump(options(served, tmp_path, month="2020-08", types=[DataType.ARTISTS]))
    assert (tmp_path / name).read_bytes() == (served.root / "data" / "2020" / name).read_bytes()


def test_checksum_mismatch_is_an_error_and_removes_the_part(served: Served, tmp_path: Path) -> None:
    name = f"discogs_{VERSION}_releases.xml.gz"
    with pytest.raises(DownloadError, match=f"{name}: sha256 mismatch"):
        fetch_verified(served.url(name), tmp_path / name, "0" * 64)
    assert not (tmp_path / name).exists()
    assert not (tmp_path / f"{name}.part").exists()


def test_checksum_mismatch_exits_1_with_one_line(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checksum = served.root / "data" / "2020" / f"discogs_{VERSION}_CHECKSUM.txt"
    checksum.write_text(checksum.read_text().replace("labels", "labelz"))
    code = main(["download", "--dest", str(tmp_path), "--month", "2020-08",
                 "--base-url", served.base_url + "data/{year}/", "--types", "labels"])  # fmt: skip
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"extractor: error: discogs_{VERSION}_CHECKSUM.txt lists no checksum for "
        f"discogs_{VERSION}_labels.xml.gz"
    )


def test_month_without_a_dump_is_an_error(served: Served, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no Discogs dump for 2020-09"):
        download_dump(options(served, tmp_path, month="2020-09"))


def test_listing_lookup_and_checksum_parsing() -> None:
    url = listing_url("https://bucket.example/data/{year}/", "2020", "discogs_202008")
    assert url == "https://bucket.example/?list-type=2&prefix=data%2F2020%2Fdiscogs_202008"
    listing = (
        "<ListBucketResult><Contents><Key>data/2020/discogs_20200806_artists.xml.gz</Key>"
        "</Contents><Contents><Key>data/2020/discogs_20200806_CHECKSUM.txt</Key></Contents>"
        "<Contents><Key>data/2020/discogs_20200801_labels.xml.gz</Key></Contents>"
        "</ListBucketResult>"
    )
    assert versions_listed(listing) == ["20200801", "20200806"]
    sums = parse_checksums(f"{'A' * 64}  discogs_20200806_artists.xml.gz\n\nnoise\n")
    assert sums == {"discogs_20200806_artists.xml.gz": "a" * 64}


def test_no_network_fails_at_once_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["download", "--dest", str(tmp_path), "--base-url", "http://127.0.0.1:1/"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("extractor: error: cannot reach http://127.0.0.1:1/")
    assert "Connection refused" in err[-1]


def test_bad_month_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["download", "--dest", str(tmp_path), "--month", "2020-13"])
    assert info.value.code == 2
