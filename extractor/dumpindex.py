"""Where a monthly dump lives: the version (``YYYYMMDD``) of a month, and its checksums.

Discogs publishes ``discogs_YYYYMMDD_{type}.xml.gz`` and ``discogs_YYYYMMDD_CHECKSUM.txt``
under ``data/YYYY/`` of an S3 bucket. The day is not fixed, so the version of a month is
found with an S3 ``list-type=2`` listing narrowed by ``prefix``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

from extractor.fetch import DownloadError, fetch_text

DEFAULT_BASE_URL = "https://discogs-data-dumps.s3.us-west-2.amazonaws.com/data/{year}/"
_MONTH_RE = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_KEY_RE = re.compile(
    r"<Key>[^<]*?discogs_([0-9]{8})_(?:artists|labels|masters|releases)\.xml\.gz</Key>"
)
_CHECKSUM_RE = re.compile(r"^\s*([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")


def folder_url(base_url: str, year: str) -> str:
    """The folder of ``year``'s dumps: ``{year}`` in ``base_url`` replaced, ``/`` ensured."""
    url = base_url.replace("{year}", year)
    return url if url.endswith("/") else url + "/"


def listing_url(base_url: str, year: str, name_prefix: str) -> str:
    """The S3 listing of keys in ``year``'s folder starting with ``name_prefix``."""
    parts = urlsplit(folder_url(base_url, year))
    query = urlencode({"list-type": "2", "prefix": parts.path.lstrip("/") + name_prefix})
    return urlunsplit((parts.scheme, parts.netloc, "/", query, ""))


def parse_month(month: str) -> tuple[str, str]:
    """``"2020-08"`` -> ``("2020", "08")``; anything else is a ValueError."""
    m = _MONTH_RE.fullmatch(month)
    if m is None:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    return m.group(1), m.group(2)


def versions_listed(listing: str) -> list[str]:
    """The dump versions whose data files appear in an S3 listing, oldest first."""
    return sorted(set(_KEY_RE.findall(listing)))


def find_version(base_url: str, month: str | None, *, timeout: float) -> str:
    """The version of ``month``'s dump, or of the newest dump (this year or last)."""
    if month is not None:
        year, mon = parse_month(month)
        url = listing_url(base_url, year, f"discogs_{year}{mon}")
        versions = versions_listed(fetch_text(url, timeout=timeout))
        if not versions:
            raise DownloadError(f"no Discogs dump for {month} listed at {url}")
        return versions[-1]
    this_year = datetime.now(UTC).year
    for year in (str(this_year), str(this_year - 1)):
        url = listing_url(base_url, year, "discogs_")
        versions = versions_listed(fetch_text(url, timeout=timeout))
        if versions:
            return versions[-1]
    raise DownloadError(f"no Discogs dump listed for {this_year - 1} or {this_year} at {url}")


def parse_checksums(text: str) -> dict[str, str]:
    """``<sha256>  <filename>`` lines -> ``{filename: sha256}`` (lower-case hex)."""
    sums = {}
    for line in text.splitlines():
        if m := _CHECKSUM_RE.match(line):
            sums[m.group(2)] = m.group(1).lower()
    return sums
