"""Normalisation of both wire shapes of a Discogs record into one.

Producers publish either the *normalised* shape (wrappers flattened, lists always arrays,
no XML attribute prefixes) or the older *raw* shape (the XML turned into JSON the xmltodict
way). :func:`normalise` turns either into the normalised shape and is idempotent, so a
normalised record passes through unchanged. Pure: no I/O.

Rules beyond the wire contract (documented in docs/wire-format.md):
- ids are decimal strings (``123`` and ``"123"`` are one record);
- an empty field (``None``, ``""``, ``{}``, ``[]``) is dropped, so absent and empty agree;
- an item of a wrapper list (a ``<track>`` of a ``<tracklist>``) is kept in its position
  even when empty: ``{}`` in a list of objects, ``""`` in a list of text, so a list has
  as many items as the dump's element has children;
- ``year`` is an integer when it parses, otherwise dropped;
- a string holding NUL (``\\u0000``) makes the record invalid: neither PostgreSQL text nor
  jsonb can store it, and silently altering data is worse than dead-lettering it.

This module is compiled to C with mypyc when the project is installed (it is most of a
consumer's CPU); the same source runs interpreted where it is not. It is written for both:
fully typed, and no ``Record`` or other class defined here (compiled classes do not pickle
the way decode workers need).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from common.dumpshape import ID_FIELDS, REF_FIELDS, REF_LISTS, SCALARS, TEXT_LISTS, WRAPPERS
from common.records import DataType, InvalidRecord, Record, canonical_json, release_year

_ID_RE = re.compile(r"[0-9]{1,19}")
# A canonical id: no sign, space or leading zero, and short enough to be below _MAX_ID.
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,17}").fullmatch
_MAX_ID = 2**63 - 1  # ids are stored as 64-bit integers downstream
_MAX_DEPTH = 32
# First characters of the raw shape's XML attribute and text keys.
_MARKS = frozenset({"@", "#"})
# Keys whose string values need more than copying (ids, years, wrappers, references).
_SPECIAL = frozenset({*ID_FIELDS, *WRAPPERS, *REF_FIELDS, "year", "is_main_release"})
# Message-level keys that are not part of the record.
_ENVELOPE_KEYS = frozenset({"type", "sha256", "version"})
# orjson's escape of a NUL character, not preceded by an escaped backslash (so a literal
# backslash followed by "u0000" in the text is not mistaken for one).
_NUL_RE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def normalise(data_type: DataType, obj: object, *, version: str | None = None) -> Record:
    """Normalise one record of either wire shape; raise :class:`InvalidRecord` if impossible.

    ``version``: the dump version to stamp on the record (the caller checks its form).
    """
    if not isinstance(obj, dict):
        raise InvalidRecord(f"record must be a JSON object, got {type(obj).__name__}")
    given_hash = obj.get("sha256")
    body = {k: v for k, v in obj.items() if k not in _ENVELOPE_KEYS}
    data = _object(body, ref=False, depth=0)
    if data.get("id") is None:
        raise InvalidRecord("record has no id")
    if data_type is DataType.RELEASES and "master_id" in body:
        _main_release_flag(body["master_id"], data)
    if given_hash is not None and (
        not isinstance(given_hash, str) or not given_hash or "\x00" in given_hash
    ):
        raise InvalidRecord("sha256 must be a non-empty string")
    try:
        encoded = canonical_json(data)
    except orjson.JSONEncodeError as e:  # an integer beyond 64 bits, a non-JSON value
        raise InvalidRecord(f"record cannot be serialised as JSON: {e}") from e
    if b"\\u0000" in encoded and _NUL_RE.search(encoded):  # substring test first: fast
        raise InvalidRecord("a string holds NUL (\\u0000), which PostgreSQL cannot store")
    sha = given_hash if isinstance(given_hash, str) else hashlib.sha256(encoded).hexdigest()
    return Record(id=data["id"], sha256=sha, data=data, version=version, encoded=encoded)


def _main_release_flag(raw: object, data: dict[str, Any]) -> None:
    if isinstance(raw, dict):
        flag = raw.get("@is_main_release", raw.get("is_main_release"))
        if flag is not None:
            data["is_main_release"] = str(flag).lower() == "true"


def _object(obj: dict[str, Any], *, ref: bool, depth: int) -> dict[str, Any]:
    """``obj`` normalised: ``obj`` itself when nothing in it changes (the normalised wire
    shape, nearly every record), else a new dict; copied only from the first change."""
    if depth > _MAX_DEPTH:
        raise InvalidRecord("record nests deeper than any Discogs record")
    out: dict[str, Any] | None = None
    for raw_key, value in obj.items():
        key = _key(raw_key, ref=ref) if raw_key[:1] in _MARKS else raw_key
        norm: Any
        if type(value) is str and key not in _SPECIAL:
            norm = value  # hot path: plain text, the bulk of every record
        elif key == "is_main_release" and _flag_given(out, obj, raw_key):
            continue  # the attribute and a normalised key both given: the first wins
        else:
            norm = _field(key, value, depth=depth + 1)
        keep = not _is_empty(norm)
        if out is None:
            if keep and norm is value and key == raw_key:
                continue
            out = _head(obj, raw_key)
        if keep:
            out[key] = norm
    return obj if out is None else out


def _flag_given(out: dict[str, Any] | None, obj: dict[str, Any], raw_key: str) -> bool:
    """Whether an item before ``raw_key`` already gave ``is_main_release``."""
    if out is not None:
        return "is_main_release" in out
    # Nothing changed yet: the items before raw_key are the output so far.
    return raw_key != "is_main_release" and "is_main_release" in _head(obj, raw_key)


def _head(obj: dict[str, Any], stop: str) -> dict[str, Any]:
    """A copy of the items of ``obj`` before key ``stop``."""
    head: dict[str, Any] = {}
    for key, value in obj.items():
        if key == stop:
            break
        head[key] = value
    return head


def _key(raw_key: str, *, ref: bool) -> str:
    if raw_key[:1] not in _MARKS:
        return raw_key
    if raw_key == "#text":
        return "name" if ref else "text"
    return raw_key[1:] if raw_key.startswith("@") else raw_key


def _field(key: str, value: Any, *, depth: int) -> Any:
    if key in ID_FIELDS:
        return _id(key, value)
    if key == "year":
        return release_year(value)
    if key in WRAPPERS:
        return _list(key, value, depth=depth)
    if key in REF_FIELDS:
        return _ref(key, value, depth=depth)
    return _plain(key, value, depth=depth)


def _id(key: str, value: Any) -> str | None:
    if type(value) is str and _CANONICAL_ID(value):  # hot path: already canonical
        return value
    if isinstance(value, dict):
        if not _has_text(value, "#text", "text", "id"):
            raise InvalidRecord(f"field {key!r} must be a string or integer id, got an object")
        value = value.get("#text", value.get("text", value.get("id")))
    if _is_empty(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRecord(f"field {key!r} must be a string or integer id")
    text = str(value).strip()
    if not _ID_RE.fullmatch(text) or int(text) > _MAX_ID:
        raise InvalidRecord(f"field {key!r} is not a Discogs id (decimal digits): {text[:40]!r}")
    canonical = str(int(text))  # "0123", " 123" and 123 are all "123"
    return value if canonical == value else canonical  # "0": kept, so its parent is too


def _has_text(obj: dict[str, Any], *keys: str) -> bool:
    """Whether ``obj`` holds one of ``keys``, or only XML attributes (an empty element)."""
    return any(k in obj for k in keys) or all(k.startswith("@") for k in obj)


def _list(key: str, value: Any, *, depth: int) -> list[Any]:
    """``value`` normalised to a list: ``value`` itself when it is one and nothing in it
    changes, else a new list."""
    if value is None or value == "":
        return []  # an empty wrapper element: no children
    if isinstance(value, dict):
        child = WRAPPERS[key]
        if child in value:  # the raw shape: {"track": ...}; a null child is an empty one
            value = value[child]
        elif not value:
            return []
    items: list[Any] = value if isinstance(value, list) else [value]
    if key in TEXT_LISTS:
        if _all_text(items):  # hot path: already a list of strings
            return items
        return [_text_item(key, item) for item in items]
    return _each(key, items, ref=key in REF_LISTS, plain=False, depth=depth)


def _each(key: str, items: list[Any], *, ref: bool, plain: bool, depth: int) -> list[Any]:
    """``items`` normalised one by one: ``plain``, as plain values with empty ones dropped;
    else as the objects of a wrapper list, an empty one kept as ``{}`` in its position.
    ``items`` itself when none changes, else a new list copied from the first change."""
    out: list[Any] | None = None
    for i, item in enumerate(items):
        if plain:
            norm = _plain(key, item, depth=depth)
        else:
            norm = _list_item(key, item, ref=ref, depth=depth)
        keep = not plain or not _is_empty(norm)
        if out is None:
            if keep and norm is item:
                continue
            out = items[:i]
        if keep:
            out.append(norm)
    return items if out is None else out


def _list_item(key: str, item: Any, *, ref: bool, depth: int) -> dict[str, Any]:
    if type(item) is dict:  # hot path: an object, as in the normalised shape
        return _object(item, ref=ref, depth=depth)
    if _is_empty(item):
        return {}  # an empty element keeps its place
    if ref and isinstance(item, str):
        return _object({"name": item}, ref=ref, depth=depth)
    raise InvalidRecord(f"field {key!r} must hold objects, got {type(item).__name__}")


def _all_text(items: list[Any]) -> bool:
    return all(type(item) is str for item in items)


def _text_item(key: str, item: Any) -> str:
    if type(item) is str:  # hot path
        return item
    if isinstance(item, dict):
        if not _has_text(item, "#text", "text"):
            raise InvalidRecord(f"field {key!r} must hold strings, got an object")
        item = item.get("#text", item.get("text"))
    if item is None or item == "":
        return ""  # an empty element keeps its place
    if isinstance(item, bool) or not isinstance(item, str | int | float):
        raise InvalidRecord(f"field {key!r} must hold strings, got {type(item).__name__}")
    return str(item)


def _ref(key: str, value: Any, *, depth: int) -> dict[str, Any] | None:
    if _is_empty(value):
        return None
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict):
        raise InvalidRecord(f"field {key!r} must be an object")
    return _object(value, ref=True, depth=depth)


def _plain(key: str, value: Any, *, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise InvalidRecord("record nests deeper than any Discogs record")
    if isinstance(value, dict) and set(value) == {"#text"}:
        value = value["#text"]
    if _is_empty(value):
        return None
    if key in SCALARS:
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRecord(f"field {key!r} must be text, got {type(value).__name__}")
        return value
    if isinstance(value, dict):
        return _object(value, ref=False, depth=depth)
    if isinstance(value, list):
        return _each(key, value, ref=False, plain=True, depth=depth + 1)
    return value


def _is_empty(value: Any) -> bool:
    return value is None or (not value and isinstance(value, str | list | dict))
