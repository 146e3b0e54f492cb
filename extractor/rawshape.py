"""One parsed XML element in the raw (xmltodict-style) shape of the wire contract.

``@name`` for each attribute, ``#text`` for the text of an element that has attributes,
the text alone for an element with neither attributes nor children, and a list where a
child tag repeats. This runs once per element of every record, most of an extractor
worker's CPU, so setup.py compiles it with mypyc; it is plain Python and runs unchanged
interpreted.
"""

from __future__ import annotations

from typing import Any

_MISSING: Any = object()


def element_to_raw(el: Any) -> Any:
    """``el`` (an :mod:`xml.etree.ElementTree` element) in the raw shape."""
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
        value = element_to_raw(child)
        prev = out.get(tag, _MISSING)
        if prev is _MISSING:
            out[tag] = value
        elif isinstance(prev, list):
            prev.append(value)
        else:
            out[tag] = [prev, value]
    return out
