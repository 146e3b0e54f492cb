"""Plain HTTP(S) GETs for the dump download, standard library only.

Every failure becomes a :class:`DownloadError` whose message is one line naming the URL.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 30.0
_USER_AGENT = "discogs-pipeline-extractor/0.1"
HTTP_RANGE_NOT_SATISFIABLE = 416


class DownloadError(Exception):
    """A download that cannot go on; ``str(e)`` is one line."""


def open_url(
    url: str, *, start: int = 0, timeout: float = DEFAULT_TIMEOUT
) -> http.client.HTTPResponse:
    """GET ``url`` (from byte ``start`` with a Range request); the caller closes the response.

    An HTTP 416 is returned as an ``HTTPError`` for the caller to judge; every other
    failure is a :class:`DownloadError`.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"{url}: only http and https URLs are supported")
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})  # noqa: S310
    if start > 0:
        request.add_header("Range", f"bytes={start}-")
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(  # noqa: S310
            request, timeout=timeout
        )
    except urllib.error.HTTPError as e:
        if e.code == HTTP_RANGE_NOT_SATISFIABLE:
            raise
        e.close()
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DownloadError(f"cannot reach {url}: {e.reason}") from e
    except (OSError, http.client.HTTPException) as e:
        raise DownloadError(f"cannot reach {url}: {e}") from e
    return response


def fetch_text(url: str, *, timeout: float = DEFAULT_TIMEOUT, limit: int = 16 << 20) -> str:
    """The body of a small text resource (a listing, a checksum file)."""
    with open_url(url, timeout=timeout) as response:
        try:
            body = response.read(limit + 1)
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"{url}: reading the response failed: {e}") from e
    if len(body) > limit:
        raise DownloadError(f"{url}: response larger than {limit} bytes")
    return body.decode("utf-8", errors="replace")
