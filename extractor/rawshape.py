"""One record's XML in the raw (xmltodict-style) shape of the wire contract.

``@name`` for each attribute, ``#text`` for the text of an element that has attributes,
the text alone for an element with neither attributes nor children, and a list where a
child tag repeats; the text of an element that has children is not kept.

Two readers give that shape. :func:`quick_raw` reads the bytes with quick-xml (the
xmltodict-rs package), in one native call, and returns None for the few records whose
shape it might give differently (a namespace, or a tab, line break or ``<`` in an
attribute value, where XML turns whitespace into spaces) or that it cannot read;
:func:`element_to_raw` converts an ElementTree element (expat), for those. This is most of
an extractor worker's CPU, so setup.py compiles the module with mypyc; it is plain Python
and runs unchanged interpreted. Both walk the record recursively, so a record nested
deeper than :data:`MAX_DEPTH` is refused before the walk could exhaust the C stack of
the compiled code (which crashed the worker at about 100,000 levels).
"""

from __future__ import annotations

from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict_rs

from common.records import InvalidRecord

_MISSING: Any = object()
# Far beyond any Discogs record (six levels) and far within the C stack.
MAX_DEPTH = 100
_TOO_DEEP = f"record nests deeper than {MAX_DEPTH} elements"


def quick_raw(blob: bytes) -> Any:
    """The raw shape of the one element in ``blob``, or None where only expat reads it as
    :func:`element_to_raw` would."""
    if b"\r" in blob:  # XML reads every line end as a newline
        blob = blob.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        parsed = xmltodict_rs.parse(blob, strip_whitespace=False)
    except (ExpatError, ValueError):
        return None  # expat says what is wrong, and where
    root = next(iter(parsed.values()), None)  # the one element
    return root if _settle(root, 0) else None


def _settle(node: object, depth: int) -> bool:
    """Drop the text of elements that have children, as expat's reading does; False where
    the shape differs otherwise (an attribute value with whitespace XML would replace, or
    a namespace, which expat resolves)."""
    if isinstance(node, dict):
        return _settle_element(node, depth)
    if isinstance(node, list):
        for item in node:
            if not _settle(item, depth):
                return False
    return True


def _settle_element(node: dict[str, object], depth: int) -> bool:
    if depth > MAX_DEPTH:
        raise InvalidRecord(_TOO_DEEP)
    children = False
    for key, value in node.items():
        if ":" in key:
            return False
        if key.startswith("@"):
            if key.startswith("@xmlns"):
                return False
            if isinstance(value, str) and ("\n" in value or "\t" in value or "<" in value):
                return False
        elif not key.startswith("#"):
            children = True
            if not isinstance(value, str) and value is not None and not _settle(value, depth + 1):
                return False
    if children and "#text" in node:
        del node["#text"]
    return True


def element_to_raw(el: Any, depth: int = 0) -> Any:
    """``el`` (an :mod:`xml.etree.ElementTree` element) in the raw shape."""
    if depth > MAX_DEPTH:
        raise InvalidRecord(_TOO_DEEP)
    children = list(el)
    attrib = el.attrib
    if not children:
        text = el.text or None
        if not attrib:
            return text
        node: dict[str, Any] = {"@" + k: v for k, v in attrib.items()}
        if text is not None:
            node["#text"] = text
        return node
    out: dict[str, Any] = {"@" + k: v for k, v in attrib.items()}
    for child in children:
        tag = child.tag
        if not isinstance(tag, str):  # comments, processing instructions
            continue
        value = element_to_raw(child, depth + 1)
        prev = out.get(tag, _MISSING)
        if prev is _MISSING:
            out[tag] = value
        elif isinstance(prev, list):
            prev.append(value)
        else:
            out[tag] = [prev, value]
    return out
